/**
 * The embedded broker's connection limits, measured: one address holding idle sockets is capped and
 * cannot lock the fleet out; sockets that never CONNECT are closed after the connect timeout; idle
 * sockets from many addresses (plain or TLS, handshake never finished) only evict each other from
 * the unauthenticated budget, so agents keep getting in (issue 30, item 6).
 */
import { mkdtempSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { pino } from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { EmbeddedBroker } from '../../../../src/main/console/broker/broker.js'
import { ensureBrokerTls } from '../../../../src/main/console/broker/tls.js'

const silent = pino({ level: 'silent' })

/** The paired agent of these tests, from 127.0.0.1. */
const connectAgent = (port: number) =>
  mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'pi', username: 'pi', password: 'token-of-the-pi', protocolVersion: 4, reconnectPeriod: 0 })

/** Opens one idle socket per source address given (the broker's answer, if any, is read and dropped). */
function openSockets(port: number, addresses: string[]): Promise<Socket[]> {
  return Promise.all(
    addresses.map(
      (localAddress) =>
        new Promise<Socket>((resolve) => {
          const s = connect({ port, host: '127.0.0.1', localAddress }, () => resolve(s))
          s.on('error', () => undefined)
          s.resume()
        })
    )
  )
}

/** Opens n idle sockets from one address; resolves with, per socket, when the broker closed it (ms after open, or null). */
async function idleSockets(port: number, n: number, localAddress: string, watchMs: number): Promise<(number | null)[]> {
  const sockets = await openSockets(port, Array(n).fill(localAddress))
  const t0 = performance.now()
  const closed = sockets.map(
    (s) =>
      new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), watchMs)
        s.once('close', () => {
          clearTimeout(timer)
          resolve(performance.now() - t0)
        })
      })
  )
  const r = await Promise.all(closed)
  for (const s of sockets) s.destroy()
  return r
}

describe('broker connection limits', () => {
  let broker: EmbeddedBroker | null = null
  afterEach(async () => {
    await broker?.stop()
    broker = null
  })
  const start = async (o: Partial<ConstructorParameters<typeof EmbeddedBroker>[0]>) => {
    broker = new EmbeddedBroker({
      host: '127.0.0.1',
      port: 0,
      maxPacketBytes: 1 << 20,
      maxConnectBytes: 4096,
      consoleSecret: 'secret',
      checkAgent: async (id, t) => id === 'pi' && t === 'token-of-the-pi',
      log: silent,
      ...o
    })
    await broker.start()
    return broker.port
  }

  it('caps one address, closes sockets that never CONNECT, and lets an agent in from elsewhere meanwhile', async () => {
    const port = await start({ maxConnectionsPerAddress: 8, connectTimeoutMs: 2500 })
    const pending = idleSockets(port, 20, '127.66.0.1', 8000)
    await new Promise((r) => setTimeout(r, 300))
    const agent = await connectAgent(port)
    expect(agent.connected).toBe(true)
    const closedAt = await pending
    const atAccept = closedAt.filter((t) => t !== null && t < 1200).length
    const byTimeout = closedAt.filter((t) => t !== null && t >= 1200).length
    console.log(
      `per-address cap 8, 20 idle sockets: ${atAccept} closed at accept, ${byTimeout} by the 2.5 s connect timeout, ${closedAt.filter((t) => t === null).length} left open`
    )
    expect(atAccept).toBe(12)
    expect(byTimeout).toBe(8)
    await agent.endAsync(true)
  }, 20_000)

  it('gives idle sockets from many addresses a budget of their own: they evict each other, an agent gets in', async () => {
    // Before: 16 addresses × 64 idle sockets filled the 1024-socket table and no agent got in (0/28).
    const port = await start({ maxConnections: 10, maxPending: 10, maxConnectionsPerAddress: 100, connectTimeoutMs: 60_000 })
    const idle = await openSockets(
      port,
      Array.from({ length: 40 }, (_, i) => `127.67.${i >> 3}.${(i & 7) + 1}`)
    )
    await new Promise((r) => setTimeout(r, 200))
    expect(broker!.pending.size).toBeLessThanOrEqual(10)
    expect(broker!.pending.dropped.evicted).toBeGreaterThanOrEqual(30)
    for (let k = 0; k < 5; k++) {
      const agent = await connectAgent(port)
      expect(agent.connected).toBe(true)
      await agent.endAsync(true)
    }
    for (const s of idle) s.destroy()
  }, 20_000)

  it('keeps a TLS agent getting in while idle sockets that never finish a handshake come from many addresses', async () => {
    const t = await ensureBrokerTls(mkdtempSync(join(tmpdir(), 'edgent-tls-budget-')))
    await start({
      maxConnections: 64,
      maxPending: 16,
      maxConnectionsPerAddress: 64,
      connectTimeoutMs: 60_000,
      tls: { host: '127.0.0.1', port: 0, cert: t.cert, key: t.key }
    })
    const tlsPort = broker!.tlsPort
    const idle = await openSockets(
      tlsPort,
      Array.from({ length: 16 * 20 }, (_, i) => `127.68.${i >> 4}.${(i & 15) + 1}`)
    )
    let ok = 0
    for (let k = 0; k < 10; k++) {
      const agent = await mqtt.connectAsync(`mqtts://127.0.0.1:${tlsPort}`, {
        clientId: 'pi',
        username: 'pi',
        password: 'token-of-the-pi',
        protocolVersion: 4,
        reconnectPeriod: 0,
        ca: t.ca,
        servername: 'localhost',
        connectTimeout: 10_000
      })
      if (agent.connected) ok++
      await agent.endAsync(true)
    }
    console.log(`320 idle TLS sockets from 20 addresses: ${ok}/10 TLS agents in, ${broker!.pending.dropped.evicted} idle sockets evicted`)
    expect(ok).toBe(10)
    for (const s of idle) s.destroy()
  }, 30_000)
})
