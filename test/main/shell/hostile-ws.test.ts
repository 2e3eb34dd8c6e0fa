/**
 * Hostile clients of the headless shell's HTTP/WebSocket server, against a real `edgent serve`
 * process: malformed WebSocket frames before any token (the six ways the `ws` parser refuses a
 * frame), refused upgrades answered by a TCP reset, and idle or half-open HTTP connections.
 * After each probe the console must still be running and answering its API.
 */
import { randomBytes } from 'node:crypto'
import { statSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { callConsole } from '../../../src/main/cli/client.js'
import { ControlApi } from '../../../src/main/shell/http-server.js'
import { startConsole } from '../console/harness.js'
import { startServe, type ServeProcess } from '../serve-process.js'

/** A client frame: FIN, optional RSV1, opcode, masked unless told otherwise. */
function frame(opcode: number, payload: Uint8Array, o: { mask?: boolean; rsv1?: boolean } = {}): Buffer {
  const mask = o.mask ?? true
  const len = payload.length
  const head: number[] = [0x80 | (o.rsv1 ? 0x40 : 0) | opcode]
  const m = mask ? 0x80 : 0
  if (len < 126) head.push(m | len)
  else if (len < 65536) head.push(m | 126, len >> 8, len & 0xff)
  else head.push(m | 127, 0, 0, 0, 0, (len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff)
  const key = mask ? randomBytes(4) : Buffer.alloc(0)
  const body = Buffer.from(payload)
  if (mask) for (let i = 0; i < body.length; i++) body[i]! ^= key[i & 3]!
  return Buffer.concat([Buffer.from(head), key, body])
}

const upgradeRequest = (port: number, path: string, extra = ''): string =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`

/** Opens a raw WebSocket (handshake done by hand), sends `bytes`, resolves when the server closes it. */
function rawWebSocket(port: number, bytes: Buffer): Promise<{ upgraded: boolean; closed: boolean }> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1', () => s.write(upgradeRequest(port, '/ws')))
    let got = ''
    let upgraded = false
    const timer = setTimeout(() => {
      s.destroy()
      resolve({ upgraded, closed: false })
    }, 5000)
    s.on('data', (d: Buffer) => {
      if (upgraded) return
      got += d.toString('latin1')
      if (got.includes('\r\n\r\n')) {
        upgraded = got.startsWith('HTTP/1.1 101')
        s.write(bytes)
      }
    })
    s.on('close', () => {
      clearTimeout(timer)
      resolve({ upgraded, closed: true })
    })
    s.on('error', () => undefined)
  })
}

/** Sends a refused upgrade and resets the connection at once (RST, not FIN). */
function resetUpgrade(port: number, path: string, extra = ''): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(upgradeRequest(port, path, extra))
      s.resetAndDestroy()
    })
    s.on('close', () => resolve())
    s.on('error', () => undefined)
  })
}

describe('hostile clients of the WebSocket and HTTP server', () => {
  let serve: ServeProcess
  const alive = async (): Promise<void> => {
    expect(serve.died()).toBeNull()
    const devices = await callConsole(serve.control, 'devices', {}, 10_000)
    expect(Array.isArray(devices)).toBe(true)
  }

  beforeAll(async () => {
    serve = await startServe({ args: ['--no-local-agent'] })
  }, 90_000)
  afterAll(async () => {
    await serve?.stop()
  })

  const text = (s: string) => Buffer.from(s, 'utf8')
  const modes: [string, Buffer][] = [
    ['a text frame over the 64 KiB limit', frame(1, Buffer.alloc(70_000, 0x61))],
    ['an unmasked client frame', frame(1, text('{"type":"auth"}'), { mask: false })],
    ['reserved opcode 3', frame(3, text('x'))],
    ['invalid UTF-8 in a text frame', frame(1, Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d]))],
    ['RSV1 without a negotiated extension', frame(1, text('{}'), { rsv1: true })],
    ['a ping longer than 125 bytes', frame(9, Buffer.alloc(200, 1))]
  ]
  for (const [what, bytes] of modes) {
    it(`survives ${what} before any token`, async () => {
      const r = await rawWebSocket(serve.httpPort, bytes)
      expect(r.upgraded).toBe(true)
      expect(r.closed).toBe(true) // the server drops the connection
      await alive()
    })
  }

  it('survives refused upgrades (wrong path, foreign origin) answered by a TCP reset', async () => {
    for (let i = 0; i < 20; i++) {
      await resetUpgrade(serve.httpPort, '/other')
      await resetUpgrade(serve.httpPort, '/ws', 'Origin: https://evil.example\r\n')
    }
    await new Promise((r) => setTimeout(r, 300))
    await alive()
  })

  it('keeps its data directory to its user: directory 0700, database and TLS key 0600', () => {
    expect(statSync(serve.dataDir).mode & 0o777).toBe(0o700)
    expect(statSync(join(serve.dataDir, 'edgent.db')).mode & 0o777).toBe(0o600)
    expect(statSync(join(serve.dataDir, 'tls', 'server.key')).mode & 0o777).toBe(0o600)
    expect(statSync(join(serve.dataDir, 'tls')).mode & 0o777).toBe(0o700)
  })

  it('logs what it refused, and the whole run left no unhandled error behind', () => {
    const log = serve.stderr()
    expect(log).not.toMatch(/Unhandled 'error' event|uncaught/i)
  })
})

describe('connection limits of the loopback API', () => {
  it('closes idle sockets and refuses connections past the limit, while the API keeps answering', async () => {
    const core = await startConsole()
    const api = new ControlApi(core, { host: '127.0.0.1', port: 0, dataDir: core.opts.dataDir, limits: { idleMs: 2500, maxConnections: 8 } })
    await api.start()
    try {
      const opened = await Promise.all(
        Array.from(
          { length: 20 },
          () =>
            new Promise<{ closedAt: Promise<number> }>((resolve) => {
              const s = connect(api.port, '127.0.0.1', () => resolve({ closedAt: new Promise((r) => s.on('close', () => r(Date.now()))) }))
              s.on('error', () => undefined)
            })
        )
      )
      const t0 = Date.now()
      const closedAt = await Promise.all(opened.map((o) => o.closedAt))
      const prompt = closedAt.filter((t) => t - t0 < 1200).length
      const idle = closedAt.filter((t) => t - t0 >= 1200).length
      // 12 refused at accept, 8 accepted and closed by the idle timeout (nothing stays open)
      expect(prompt).toBe(12)
      expect(idle).toBe(8)
      const res = await fetch(`http://127.0.0.1:${api.port}/api/devices`, { method: 'POST', headers: { authorization: `Bearer ${api.token}` }, body: '{}' })
      expect(res.status).toBe(200)
    } finally {
      await api.stop()
      await core.stop()
    }
  }, 30_000)
})
