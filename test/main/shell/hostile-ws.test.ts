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
  /** Opens n idle sockets (from `localAddress`); each with when the server closed it. */
  const idle = (port: number, n: number, localAddress = '127.0.0.1') =>
    Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<{ socket: ReturnType<typeof connect>; closedAt: Promise<number> }>((resolve) => {
            const socket = connect({ port, host: '127.0.0.1', localAddress }, () =>
              resolve({ socket, closedAt: new Promise((r) => socket.on('close', () => r(Date.now()))) })
            )
            socket.on('error', () => undefined)
          })
      )
    )

  it('gives connections without the token a budget of their own, closed after a deadline, while the API keeps answering', async () => {
    const core = await startConsole()
    const limits = { idleMs: 60_000, maxConnections: 8, maxPending: 4, pendingDeadlineMs: 2500 }
    const api = new ControlApi(core, { host: '127.0.0.1', port: 0, dataDir: core.opts.dataDir, limits })
    await api.start()
    const call = () => fetch(`http://127.0.0.1:${api.port}/api/devices`, { method: 'POST', headers: { authorization: `Bearer ${api.token}` }, body: '{}' })
    try {
      const opened = await idle(api.port, 20)
      const t0 = Date.now()
      const closedAt = await Promise.all(opened.map((o) => o.closedAt))
      // 16 evicted by newer ones at once, the newest 4 closed by the deadline: nothing stays open.
      expect(closedAt.filter((t) => t - t0 < 1200)).toHaveLength(16)
      expect(closedAt.filter((t) => t - t0 >= 1200)).toHaveLength(4)
      // Any local process holding 200 idle sockets from 20 addresses (before: 128 took every slot):
      // a call with the token still gets in, every time.
      const held = (await Promise.all(Array.from({ length: 20 }, (_, i) => idle(api.port, 10, `127.69.0.${i + 1}`)))).flat()
      for (let k = 0; k < 5; k++) expect((await call()).status).toBe(200)
      for (const h of held) h.socket.destroy()
    } finally {
      await api.stop()
      await core.stop()
    }
  }, 30_000)

  it('closes a request without the token before reading its body (a trickled body held a slot past 70 s)', async () => {
    const core = await startConsole()
    const api = new ControlApi(core, { host: '127.0.0.1', port: 0, dataDir: core.opts.dataDir })
    await api.start()
    try {
      for (const path of ['/api/devices', '/upload?name=x.onnx']) {
        const s = connect(api.port, '127.0.0.1')
        s.on('error', () => undefined)
        let answer = ''
        s.on('data', (d: Buffer) => (answer += d.toString()))
        const closed = new Promise<number>((r) => s.on('close', () => r(Date.now())))
        await new Promise<void>((r) => s.once('connect', () => r()))
        s.write(`POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100000\r\n\r\n`)
        const t0 = Date.now()
        const trickle = setInterval(() => s.writable && s.write('x'), 100)
        const at = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), 8000))])
        clearInterval(trickle)
        s.destroy()
        expect(answer, path).toMatch(/^HTTP\/1\.1 401/)
        expect(at - t0, path).toBeLessThan(3000)
      }
    } finally {
      await api.stop()
      await core.stop()
    }
  }, 30_000)
})
