/**
 * The renderer's one way to the console: `ConsoleApi`. In Electron the preload exposes it as
 * `window.edgent`; in a browser (the headless shell) it is carried over the WebSocket of the page's
 * own origin, authenticated by the token in the URL fragment (`#token=…`, kept for this tab only).
 */
import {
  METHOD_NAMES,
  UPLOAD_PATH,
  WS_CLOSE_UNAUTHORIZED,
  WS_PATH,
  type ArgsOf,
  type ConsoleApi,
  type ConsoleEvent,
  type MethodName,
  type ResultOf,
  type UploadView,
  type WsServerMessage
} from '../../shared/contracts/console-api'

declare global {
  interface Window {
    edgent?: ConsoleApi
  }
}

export type ConnectionState = { state: 'connecting' } | { state: 'open' } | { state: 'closed'; reason: string; fatal: boolean }

/** The token from `#token=…` (then removed from the address bar) or from this tab's storage. */
export function takeToken(): string | null {
  const m = /(?:^#|&)token=([A-Za-z0-9_-]+)/.exec(window.location.hash)
  if (m) {
    sessionStorage.setItem('edgent-token', m[1]!)
    history.replaceState(null, '', window.location.pathname + window.location.search)
    return m[1]!
  }
  return sessionStorage.getItem('edgent-token')
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void }

/** The console API over a WebSocket, reconnecting after a drop (not after a refused token). */
export class WsConsole {
  private ws: WebSocket | null = null
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly listeners = new Set<(e: ConsoleEvent) => void>()
  private readonly stateListeners = new Set<(s: ConnectionState) => void>()
  private ready: Promise<void> | null = null
  private retryMs = 500
  state: ConnectionState = { state: 'connecting' }

  constructor(
    private readonly url: string,
    private readonly token: string | null
  ) {}

  private setState(s: ConnectionState): void {
    this.state = s
    for (const l of this.stateListeners) l(s)
  }

  onState(l: (s: ConnectionState) => void): () => void {
    this.stateListeners.add(l)
    return () => this.stateListeners.delete(l)
  }

  private connect(): Promise<void> {
    if (this.ready) return this.ready
    if (!this.token) {
      const reason = 'no access token: open the console with the URL that `edgent serve` printed (it ends with #token=…)'
      this.setState({ state: 'closed', reason, fatal: true })
      return Promise.reject(new Error(reason))
    }
    this.setState({ state: 'connecting' })
    this.ready = new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(this.url)
      this.ws = ws
      let opened = false
      ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: this.token }))
      ws.onmessage = (ev) => {
        const msg = JSON.parse(String(ev.data)) as WsServerMessage
        if ('type' in msg && msg.type === 'ready') {
          opened = true
          this.retryMs = 500
          this.setState({ state: 'open' })
          resolve()
        } else if ('type' in msg && msg.type === 'event') {
          for (const l of this.listeners) l(msg.event)
        } else if ('id' in msg) {
          const p = this.pending.get(msg.id)
          if (!p) return
          this.pending.delete(msg.id)
          if (msg.ok) p.resolve(msg.data)
          else p.reject(new Error(msg.error))
        }
      }
      ws.onclose = (ev) => {
        this.ws = null
        this.ready = null
        const fatal = ev.code === WS_CLOSE_UNAUTHORIZED
        if (fatal) sessionStorage.removeItem('edgent-token')
        const reason = fatal
          ? 'the console refused the access token: open the console with the URL that `edgent serve` printed'
          : `connection to the console lost${ev.reason ? ` (${ev.reason})` : ''}; reconnecting…`
        const err = new Error(reason)
        for (const p of this.pending.values()) p.reject(err)
        this.pending.clear()
        this.setState({ state: 'closed', reason, fatal })
        if (!opened) reject(err)
        if (!fatal) {
          setTimeout(() => void this.connect().catch(() => undefined), this.retryMs)
          this.retryMs = Math.min(this.retryMs * 2, 10_000)
        }
      }
    })
    return this.ready
  }

  async call<M extends MethodName>(method: M, args: ArgsOf<M>): Promise<ResultOf<M>> {
    await this.connect()
    const ws = this.ws
    if (!ws) throw new Error('not connected to the console')
    const id = this.nextId++
    return new Promise<ResultOf<M>>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      ws.send(JSON.stringify({ id, method, args }))
    })
  }

  onEvent(l: (e: ConsoleEvent) => void): () => void {
    this.listeners.add(l)
    void this.connect().catch(() => undefined)
    return () => this.listeners.delete(l)
  }

  /** A file to the console: `POST /upload` on the page's own origin, with the token (a File is streamed from disk, never read whole into the page). */
  async upload(data: ArrayBuffer | Blob, fileName: string): Promise<UploadView> {
    const res = await fetch(`${UPLOAD_PATH}?name=${encodeURIComponent(fileName)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.token ?? ''}`, 'content-type': 'application/octet-stream' },
      body: data
    })
    const r = (await res.json().catch(() => ({ ok: false, error: `the console answered ${res.status}` }))) as { ok: boolean; data?: UploadView; error?: string }
    if (!r.ok) throw new Error(r.error ?? `the console answered ${res.status}`)
    return r.data!
  }

  /** The same shape as the preload's API. */
  asApi(): ConsoleApi {
    const api: Record<string, unknown> = {
      shell: 'headless',
      onEvent: (l: (e: ConsoleEvent) => void) => this.onEvent(l),
      upload: (data: ArrayBuffer | Blob, fileName: string) => this.upload(data, fileName)
    }
    for (const m of METHOD_NAMES) api[m] = (args: unknown) => this.call(m, args as never)
    return api as unknown as ConsoleApi
  }
}

export interface Connection {
  api: ConsoleApi
  /** Connection state (always open in Electron). */
  onState(l: (s: ConnectionState) => void): () => void
  state(): ConnectionState
}

export function connect(): Connection {
  if (window.edgent) {
    const api = window.edgent
    return { api, onState: () => () => undefined, state: () => ({ state: 'open' }) }
  }
  const proto = window.location.protocol === 'https:' ? 'wss:' : 'ws:'
  const ws = new WsConsole(`${proto}//${window.location.host}${WS_PATH}`, takeToken())
  return { api: ws.asApi(), onState: (l) => ws.onState(l), state: () => ws.state }
}
