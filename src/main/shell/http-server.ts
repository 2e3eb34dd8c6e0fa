/**
 * The headless shell's server: the console's API on loopback, for the browser UI and the `edgent` CLI:
 * - `POST /api/<method>` with a JSON body and `Authorization: Bearer <token>` (the CLI); the answer
 *   is {ok: true, data} or {ok: false, error};
 * - `GET /` and `/assets/*`: the built renderer (out/renderer), opened as `http://127.0.0.1:<port>/#token=…`;
 * - `POST /upload?name=<file name>` (bearer token): a file for a later call (modelImport), streamed
 *   to the data directory and refused past the console's import cap (413);
 * - `/ws`: the same API as a WebSocket for the renderer (first message `{type:'auth', token}`), with
 *   the console's events pushed to it (src/shared/contracts/console-api.ts).
 * The token and ports are written to the control file (control-file.ts), where the CLI finds them.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { existsSync } from 'node:fs'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import sirv from 'sirv'
import { WebSocketServer, type WebSocket } from 'ws'
import { TooLargeError, UserError, errorMessage } from '../../shared/errors.js'
import {
  UPLOAD_PATH,
  WS_AUTH_TIMEOUT_MS,
  WS_CLOSE_BAD_MESSAGE,
  WS_CLOSE_UNAUTHORIZED,
  WS_PATH,
  type WsServerMessage
} from '../../shared/contracts/console-api.js'
import { isMethod } from '../console/api/api-schemas.js'
import type { EdgentConsole } from '../console/console.js'
import { ConsoleService } from '../console/api/service.js'
import { formatBytes } from '../console/api/uploads.js'
import { packageRoot } from '../runtime/paths.js'
import type { Settings } from '../../shared/contracts/settings.js'
import { removeControlFile, writeControlFile } from './control-file.js'
import { PendingBudget } from '../runtime/pending-budget.js'
import { appVersion } from '../runtime/version.js'
import { ConsoleMetrics } from '../console/api/metrics.js'
import { openApiDocument } from '../console/api/openapi.js'

const MAX_BODY = 64 * 1024
/** Limits of the loopback API server (DESIGN.md, "Hardening"). */
export interface HttpLimits {
  /** An idle keep-alive connection is closed after this. */
  keepAliveMs: number
  /** A connection must send a complete request head within this. */
  headersTimeoutMs: number
  /** A whole request (an upload included) must arrive within this. */
  requestTimeoutMs: number
  /** A socket with no traffic at all (no request ever started) is closed after this. */
  idleMs: number
  /** Connections at once; past it new ones are closed at accept (a browser opens ~6, the CLI 1 per call). */
  maxConnections: number
  /**
   * Connections that have not yet sent the token, on top of maxConnections (PendingBudget): the oldest
   * is closed for a new one, so sockets any local process holds open cannot fill the table.
   */
  maxPending: number
  /** A connection that has not sent the token within this is closed, ms. */
  pendingDeadlineMs: number
}

export const HTTP_LIMITS: HttpLimits = {
  keepAliveMs: 5_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 600_000,
  idleMs: 30_000,
  maxConnections: 128,
  maxPending: 64,
  pendingDeadlineMs: 10_000
}
/** A WebSocket client that stops reading is dropped before its backlog grows past this (bytes). */
const MAX_WS_BACKLOG = 8 * 1024 * 1024

/** The Content-Security-Policy of the served renderer (the same as its meta tag). */
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self' ws://127.0.0.1:*; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

export function rendererDir(): string {
  return join(packageRoot(), 'out', 'renderer')
}

/** The HTTP status of an error, by its class: a size past a cap 413, another user error 400, the rest 500. */
export function httpStatusOf(err: unknown): 413 | 400 | 500 {
  if (err instanceof TooLargeError) return 413
  return err instanceof UserError ? 400 : 500
}

export class ControlApi {
  private server: Server | null = null
  private wss: WebSocketServer | null = null
  private pending: PendingBudget | null = null
  private metrics: ConsoleMetrics | null = null
  readonly token = randomBytes(24).toString('base64url')
  readonly service: ConsoleService
  port = 0

  constructor(
    private readonly core: EdgentConsole,
    private readonly opts: {
      host: string
      port: number
      dataDir: string
      brokerAddress?: () => string
      rendererDir?: string
      limits?: Partial<HttpLimits>
      /** What the console runs with (the Settings page compares it with what is stored). */
      running?: () => Settings
    }
  ) {
    this.service = new ConsoleService(core, {
      shell: 'headless',
      brokerAddress: opts.brokerAddress ?? (() => `127.0.0.1:${core.mqttPort}`),
      ...(opts.running ? { settings: { dataDir: opts.dataDir, running: opts.running } } : {})
    })
  }

  /** `POST /upload?name=…`: streams the body into the uploads folder; over the cap, 413 and nothing kept. */
  private onUpload(req: IncomingMessage, res: ServerResponse, send: (status: number, body: unknown) => void): void {
    // A refused upload: answer, then close the connection once the answer is out (the rest of the body is not read).
    const refuse = (status: number, body: unknown) => {
      res.setHeader('connection', 'close')
      res.once('finish', () => req.destroy())
      send(status, body)
    }
    const auth = req.headers.authorization ?? ''
    if (!this.tokenOk(auth.startsWith('Bearer ') ? auth.slice(7) : '')) {
      refuse(401, { ok: false, error: 'missing or wrong token' })
      return
    }
    this.pending?.settle(PendingBudget.key(req.socket))
    const name = new URL(req.url ?? '/', 'http://x').searchParams.get('name') ?? ''
    const declared = Number(req.headers['content-length'] ?? NaN)
    const cap = this.core.uploads.maxBytes
    if (declared > cap) {
      refuse(413, { ok: false, error: `upload: ${name || 'the file'} is ${declared} bytes, over the ${formatBytes(cap)} upload cap` })
      return
    }
    // The body is read without destroying the request when the cap stops the read (a destroyed socket
    // would take the 413 with it); a response on a socket the client already closed is not an error.
    res.on('error', () => undefined)
    this.service.upload(name, req.iterator({ destroyOnReturn: false })).then(
      (data) => send(200, { ok: true, data }),
      (err: unknown) => {
        const message = errorMessage(err)
        refuse(httpStatusOf(err), { ok: false, error: message })
      }
    )
  }

  /** The URL that opens the console in a browser, token included (the fragment never reaches the server's logs). */
  get url(): string {
    return `http://127.0.0.1:${this.port}/#token=${this.token}`
  }

  private tokenOk(given: string): boolean {
    const a = Buffer.from(given)
    const b = Buffer.from(this.token)
    return a.length === b.length && timingSafeEqual(a, b)
  }

  async start(): Promise<void> {
    const dir = this.opts.rendererDir ?? rendererDir()
    const statics = existsSync(join(dir, 'index.html')) ? sirv(dir, { dev: false, etag: true, single: false, dotfiles: false }) : null
    const limits = { ...HTTP_LIMITS, ...this.opts.limits }
    this.metrics = new ConsoleMetrics({ devices: () => this.core.devices(), load: () => this.core.load(), onEvent: (l) => this.service.onEvent(l) })
    const server = createServer((req, res) => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end(JSON.stringify(body))
      }
      const url = req.url ?? '/'
      if (url.split('?')[0] === UPLOAD_PATH && req.method === 'POST') {
        this.onUpload(req, res, send)
        return
      }
      // The API's description (no data in it: no token needed), generated from the schemas it validates with.
      if (url === '/openapi.json' && req.method === 'GET') return send(200, openApiDocument(appVersion(), `http://127.0.0.1:${this.port}`))
      // Prometheus: the token as a bearer token (scrape_configs: authorization: {credentials: …}).
      if (url === '/metrics' && req.method === 'GET') {
        const auth = req.headers.authorization ?? ''
        if (!this.tokenOk(auth.startsWith('Bearer ') ? auth.slice(7) : '')) return send(401, { ok: false, error: 'missing or wrong token' })
        this.pending?.settle(PendingBudget.key(req.socket))
        this.metrics!.text().then(
          (text) => {
            res.writeHead(200, { 'content-type': this.metrics!.contentType })
            res.end(text)
          },
          (err: unknown) => send(500, { ok: false, error: errorMessage(err) })
        )
        return
      }
      if (!url.startsWith('/api/')) {
        if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, { ok: false, error: 'method not allowed' })
        res.setHeader('content-security-policy', CSP)
        res.setHeader('x-content-type-options', 'nosniff')
        res.setHeader('referrer-policy', 'no-referrer')
        if (!statics) {
          res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' })
          return res.end('The console UI is not built: run `npm run build`, then reload.\n')
        }
        return statics(req, res, () => {
          res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
          res.end('not found\n')
        })
      }
      // Refused before the body: answered, then the connection is closed (a body trickled by someone
      // without the token is never read, and holds nothing).
      const refuse = (status: number, body: unknown) => {
        res.setHeader('connection', 'close')
        res.once('finish', () => req.destroy())
        send(status, body)
      }
      const m = /^\/api\/([a-zA-Z]+)$/.exec(url)
      if (req.method !== 'POST' || !m) return refuse(404, { ok: false, error: 'not found' })
      const auth = req.headers.authorization ?? ''
      if (!this.tokenOk(auth.startsWith('Bearer ') ? auth.slice(7) : '')) return refuse(401, { ok: false, error: 'missing or wrong token' })
      this.pending?.settle(PendingBudget.key(req.socket))
      const method = m[1]!
      if (!isMethod(method)) return send(404, { ok: false, error: `unknown method "${method}"` })
      let size = 0
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => {
        size += c.length
        if (size > MAX_BODY) {
          send(413, { ok: false, error: 'request body too large' })
          req.destroy()
          return
        }
        chunks.push(c)
      })
      req.on('end', () => {
        let args: unknown
        try {
          args = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {}
        } catch {
          return send(400, { ok: false, error: 'body is not JSON' })
        }
        // A call may outlast the idle timeout (an infer of thousands): the socket waits for it, and a
        // caller that goes away before the answer aborts it (a batch ends after its current inference).
        req.socket.setTimeout(0)
        const gone = new AbortController()
        res.once('close', () => {
          if (!res.writableFinished) gone.abort()
        })
        res.once('finish', () => req.socket.setTimeout(limits.idleMs))
        this.service.call(method, args, { signal: gone.signal }).then(
          (data) => send(200, { ok: true, data }),
          (err: unknown) => send(httpStatusOf(err), { ok: false, error: errorMessage(err) })
        )
      })
    })
    server.keepAliveTimeout = limits.keepAliveMs
    server.headersTimeout = limits.headersTimeoutMs
    server.requestTimeout = limits.requestTimeoutMs
    server.maxConnections = limits.maxConnections + limits.maxPending
    const pending = new PendingBudget({ max: limits.maxPending, deadlineMs: limits.pendingDeadlineMs }, (why) =>
      this.core.log.debug({ why }, 'closed an API connection that had not sent the token')
    )
    server.on('connection', (socket: Socket) => pending.admit(socket))
    this.pending = pending
    // A connection that never sends a byte is not covered by headersTimeout: the socket timeout closes
    // it (no 'timeout' listener, so Node destroys the socket); a WebSocket clears it on upgrade.
    server.timeout = limits.idleMs
    server.on('clientError', (err, socket) => {
      this.core.log.debug({ err: err.message }, 'HTTP client error')
      if (socket.writable && !(err as NodeJS.ErrnoException).code?.startsWith('ECONN')) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n')
      else socket.destroy()
    })
    const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY })
    wss.on('error', (err) => this.core.log.warn({ err: err.message }, 'WebSocket server error'))
    server.on('upgrade', (req, socket, head) => {
      // The socket is ours from here: a reset while the answer is written must not be an unhandled error.
      socket.on('error', (err) => this.core.log.debug({ err: err.message }, 'upgrade socket error'))
      if ((req.url ?? '').split('?')[0] !== WS_PATH || !this.originOk(req)) {
        socket.end('HTTP/1.1 403 Forbidden\r\nconnection: close\r\n\r\n')
        return
      }
      const key = PendingBudget.key(socket as Socket)
      wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws, key))
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.opts.port, this.opts.host, () => resolve())
    })
    const addr = server.address()
    this.port = typeof addr === 'object' && addr ? addr.port : this.opts.port
    this.server = server
    this.wss = wss
    writeControlFile(this.opts.dataDir, {
      pid: process.pid,
      httpPort: this.port,
      mqttPort: this.core.mqttPort,
      ...(this.core.mqttTlsPort ? { mqttTlsPort: this.core.mqttTlsPort } : {}),
      token: this.token,
      startedAt: new Date().toISOString()
    })
  }

  /** Browsers send Origin: only pages served by this server may open the socket (non-browser clients send none). */
  private originOk(req: IncomingMessage): boolean {
    const origin = req.headers.origin
    if (origin === undefined) return true
    return origin === `http://127.0.0.1:${this.port}` || origin === `http://localhost:${this.port}`
  }

  /** `key`: the connection's place in the pending budget, left when the token arrives. */
  private onSocket(ws: WebSocket, key: string): void {
    let authed = false
    let unsubscribe: (() => void) | null = null
    const send = (msg: WsServerMessage) => {
      if (ws.readyState !== ws.OPEN) return
      if (ws.bufferedAmount > MAX_WS_BACKLOG) {
        ws.terminate()
        return
      }
      ws.send(JSON.stringify(msg))
    }
    const timer = setTimeout(() => ws.close(WS_CLOSE_UNAUTHORIZED, 'no token'), WS_AUTH_TIMEOUT_MS)
    // A malformed frame (oversized, unmasked, bad opcode, bad UTF-8, RSV bits, long control frame):
    // ws closes the connection with the matching code and emits 'error' here, once.
    ws.on('error', (err) => this.core.log.debug({ err: err.message, code: (err as NodeJS.ErrnoException).code }, 'WebSocket client error'))
    // Calls in flight on this socket: aborted when it closes (a page closed mid-batch ends the batch).
    const inFlight = new Set<AbortController>()
    ws.on('close', () => {
      clearTimeout(timer)
      unsubscribe?.()
      for (const c of inFlight) c.abort()
    })
    ws.on('message', (raw, isBinary) => {
      let msg: unknown
      try {
        if (isBinary) throw new Error('binary')
        msg = JSON.parse(raw.toString())
      } catch {
        ws.close(WS_CLOSE_BAD_MESSAGE, 'messages are JSON text')
        return
      }
      const m = msg as { type?: unknown; token?: unknown; id?: unknown; method?: unknown; args?: unknown }
      if (!authed) {
        if (m.type !== 'auth' || typeof m.token !== 'string' || !this.tokenOk(m.token)) {
          ws.close(WS_CLOSE_UNAUTHORIZED, 'missing or wrong token')
          return
        }
        authed = true
        clearTimeout(timer)
        this.pending?.settle(key)
        unsubscribe = this.service.onEvent((event) => send({ type: 'event', event }))
        send({ type: 'ready', shell: 'headless' })
        return
      }
      if (typeof m.id !== 'number' || !Number.isInteger(m.id)) {
        ws.close(WS_CLOSE_BAD_MESSAGE, 'a request needs an integer id')
        return
      }
      const id = m.id
      if (!isMethod(m.method)) {
        send({ id, ok: false, error: `unknown method "${String(m.method)}"` })
        return
      }
      const gone = new AbortController()
      inFlight.add(gone)
      this.service
        .call(m.method, m.args, { signal: gone.signal })
        .then(
          (data) => send({ id, ok: true, data }),
          (err: unknown) => {
            if (!(err instanceof UserError))
              this.core.log.error({ err: err instanceof Error ? err.stack : String(err), method: m.method }, 'console API call failed')
            send({ id, ok: false, error: errorMessage(err) })
          }
        )
        .finally(() => inFlight.delete(gone))
    })
  }

  async stop(): Promise<void> {
    removeControlFile(this.opts.dataDir)
    const wss = this.wss
    this.wss = null
    if (wss) {
      for (const c of wss.clients) c.terminate()
      await new Promise<void>((r) => wss.close(() => r()))
    }
    this.pending?.clear()
    this.metrics?.stop()
    const s = this.server
    this.server = null
    if (s) {
      s.closeAllConnections()
      await new Promise<void>((r) => s.close(() => r()))
    }
  }
}
