/** The MQTT guard in front of aedes: fixed headers only, both directions bounded, on a real loopback socket. */
import { createServer, connect, type AddressInfo, type Socket } from 'node:net'
import mqttPacket from 'mqtt-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { PacketGuard, guardSocket, type GuardedStream } from '../../../../src/main/console/broker/mqtt-guard.js'
import { connectPacket } from '../../../fixtures/mqtt-raw.js'

const limits = { maxConnectBytes: 4096, maxPacketBytes: 64 * 1024, maxQueuedBytes: 256 * 1024 }
const publish = (bytes: number) =>
  mqttPacket.generate({
    cmd: 'publish',
    topic: 'edgent/v1/agents/a/probe',
    payload: Buffer.alloc(bytes),
    qos: 0,
    retain: false,
    dup: false
  } as mqttPacket.IPublishPacket)

describe('PacketGuard', () => {
  it('passes a CONNECT and packets under the limit, even with headers split across reads, and counts publishes', () => {
    const g = new PacketGuard(limits)
    const bytes = Buffer.concat([connectPacket('a', 'token-token-token'), publish(100), publish(1000)])
    for (let i = 0; i < bytes.length; i += 3) expect(g.feed(bytes.subarray(i, i + 3))).toBe(true)
    expect(g.takePublishes()).toBe(2)
    expect(g.takePublishes()).toBe(0)
  })

  it('refuses, naming why: a first packet that is not CONNECT, an oversized CONNECT or packet, a malformed length', () => {
    const cases: [Buffer, string][] = [
      [publish(10), 'first packet is type 3, not CONNECT'],
      [Buffer.from([0x10, 0x80, 0x80, 0x01]), 'CONNECT declares 16384 bytes, over the 4096-byte limit'],
      [Buffer.concat([connectPacket('a', 'token-token-token'), publish(64 * 1024)]), 'packet type 3 declares'],
      [Buffer.concat([connectPacket('a', 'token-token-token'), Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])]), 'malformed remaining length']
    ]
    for (const [bytes, why] of cases) {
      const g = new PacketGuard(limits)
      expect(g.feed(bytes)).toBe(false)
      expect(g.violation).toContain(why)
    }
  })
})

describe('guardSocket', () => {
  const open: (Socket | GuardedStream)[] = []
  afterEach(() => {
    for (const s of open.splice(0)) s.destroy()
  })

  /** A server socket wrapped by the guard, and the client socket connected to it. */
  async function pair(): Promise<{ stream: GuardedStream; client: Socket; violations: string[]; server: Socket }> {
    const violations: string[] = []
    const srv = createServer()
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
    const accepted = new Promise<Socket>((r) => srv.once('connection', r))
    const client = connect((srv.address() as AddressInfo).port, '127.0.0.1')
    const server = await accepted
    srv.close()
    const stream = guardSocket(server, limits, (why) => violations.push(why))
    open.push(client, server, stream)
    return { stream, client, violations, server }
  }

  it('hands what the broker writes to the socket at once (no backpressure to wait on) while the client reads', async () => {
    const { stream, client } = await pair()
    let got = 0
    client.on('data', (d: Buffer) => (got += d.length))
    for (let i = 0; i < 100; i++) expect(stream.write(Buffer.alloc(1024))).toBe(true)
    await new Promise<void>((r) => {
      const t = setInterval(() => got === 100 * 1024 && (clearInterval(t), r()), 10)
    })
    expect(stream.queuedBytes()).toBe(0)
  })

  it('drops a client that stops reading once its unread bytes pass the limit, naming it a slow consumer', async () => {
    const { stream, client, violations, server } = await pair()
    client.pause()
    // far more than the kernel's buffers and the limit together; write() never asks to wait, up to the one that drops it
    const accepted: boolean[] = []
    for (let i = 0; i < 400 && !server.destroyed; i++) accepted.push(stream.write(Buffer.alloc(64 * 1024)))
    expect(server.destroyed).toBe(true)
    expect(accepted.slice(0, -1).every(Boolean)).toBe(true)
    expect(violations).toHaveLength(1)
    expect(violations[0]).toMatch(/^slow consumer: \d+ bytes written to it not yet read, and 65536 more would pass the 262144-byte limit$/)
    expect(stream.queuedBytes()).toBeLessThanOrEqual(limits.maxQueuedBytes)
  })

  it('stops reading a client past its publish rate, and reads it again when the bucket refills', async () => {
    const { stream, client } = await pair()
    const seen: number[] = []
    stream.on('data', (d: Buffer) => seen.push(d.length))
    client.write(connectPacket('a', 'token-token-token'))
    await new Promise((r) => setTimeout(r, 50))
    stream.limitPublishes({ perSecond: 10, burst: 2 })
    const t0 = performance.now()
    for (let i = 0; i < 6; i++) {
      client.write(publish(10))
      await new Promise((r) => setTimeout(r, 5)) // one read each, so the bucket sees them arrive
    }
    const bytes = connectPacket('a', 'token-token-token').length + 6 * publish(10).length
    await new Promise<void>((r) => {
      const t = setInterval(() => seen.reduce((a, b) => a + b, 0) >= bytes && (clearInterval(t), r()), 5)
    })
    // 6 publishes at 10/s with a burst of 2: the later ones wait for the bucket (~0.3 s, not the ~30 ms
    // they took to send), and nothing is dropped
    expect(performance.now() - t0).toBeGreaterThan(150)
  })

  it('stops reading a client past its byte rate (few but huge packets), and reads it all in time', async () => {
    const { stream, client } = await pair()
    let seen = 0
    stream.on('data', (d: Buffer) => (seen += d.length))
    client.write(connectPacket('a', 'token-token-token'))
    await new Promise((r) => setTimeout(r, 50))
    // 1 MiB/s with 128 KiB at once; the packet rate far away
    stream.limitPublishes({ perSecond: 1000, burst: 1000, bytesPerSecond: 2 ** 20, burstBytes: 128 * 1024 })
    const t0 = performance.now()
    const big = publish(60 * 1024)
    for (let i = 0; i < 8; i++) client.write(big) // 480 KiB: ~350 KiB over the burst, ~0.35 s at 1 MiB/s
    const bytes = connectPacket('a', 'token-token-token').length + 8 * big.length
    await new Promise<void>((r) => {
      const t = setInterval(() => seen >= bytes && (clearInterval(t), r()), 5)
    })
    expect(performance.now() - t0).toBeGreaterThan(200)
  })
})
