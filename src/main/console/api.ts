/**
 * The console's control API on loopback: POST /api/<method> with a JSON body and
 * `Authorization: Bearer <token>`; the answer is {ok: true, data} or {ok: false, error}. The token and
 * port are written to <data dir>/console.json (mode 0600), where the `edgent` commands find them.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, request as httpRequest, type Server } from 'node:http'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { z } from 'zod'
import { UserError, describeIssues } from '../../shared/errors.js'
import type { EdgentConsole } from './console.js'

const MAX_BODY = 64 * 1024

const schemas = {
  status: z.object({}).loose(),
  devices: z.object({}).loose(),
  pair: z.object({ id: z.string() }),
  unpair: z.object({ id: z.string() }),
  campaignStart: z.object({ agent: z.string(), kind: z.string(), reps: z.number().int().positive().max(200).default(5) }),
  campaignStatus: z.object({ id: z.string() }),
  campaignCancel: z.object({ id: z.string() }),
  campaigns: z.object({}).loose(),
  infer: z.object({
    agent: z.string(),
    count: z.number().int().positive().max(100_000),
    latencyMs: z.number().positive(),
    bandwidthKbps: z.number().positive().optional(),
    plan: z.object({ exit: z.number().int().positive(), deviceLayers: z.number().int().nonnegative() }).optional()
  })
}
export type ApiMethod = keyof typeof schemas

export interface ConsoleFile {
  pid: number
  httpPort: number
  mqttPort: number
  token: string
  startedAt: string
}

export class ControlApi {
  private server: Server | null = null
  readonly token = randomBytes(24).toString('base64url')
  port = 0

  constructor(private readonly core: EdgentConsole, private readonly opts: { host: string; port: number; dataDir: string }) {}

  private async call(method: ApiMethod, args: unknown): Promise<unknown> {
    const parsed = schemas[method].safeParse(args)
    if (!parsed.success) throw new UserError(describeIssues(method, parsed.error.issues))
    const a = parsed.data as Record<string, unknown>
    switch (method) {
      case 'status':
        return { model: this.core.model.id, mqttPort: this.core.mqttPort, devices: this.core.devices().length }
      case 'devices':
        return this.core.devices()
      case 'pair':
        return this.core.pair(a['id'] as string)
      case 'unpair':
        return this.core.unpair(a['id'] as string)
      case 'campaignStart':
        return { id: this.core.startCampaign(a['agent'] as string, a['kind'] as string, a['reps'] as number) }
      case 'campaignStatus': {
        const s = this.core.campaigns.status(a['id'] as string)
        if (!s) throw new UserError(`unknown campaign "${a['id'] as string}"`)
        return s
      }
      case 'campaignCancel':
        this.core.campaigns.cancel(a['id'] as string)
        return { id: a['id'] }
      case 'campaigns':
        return this.core.campaigns.list()
      case 'infer':
        return this.core.infer(a as Parameters<EdgentConsole['infer']>[0])
    }
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' })
        res.end(JSON.stringify(body))
      }
      const m = /^\/api\/([a-zA-Z]+)$/.exec(req.url ?? '')
      if (req.method !== 'POST' || !m) return send(404, { ok: false, error: 'not found' })
      const auth = req.headers.authorization ?? ''
      const given = Buffer.from(auth.startsWith('Bearer ') ? auth.slice(7) : '')
      const want = Buffer.from(this.token)
      if (given.length !== want.length || !timingSafeEqual(given, want)) return send(401, { ok: false, error: 'missing or wrong token' })
      const method = m[1] as ApiMethod
      if (!(method in schemas)) return send(404, { ok: false, error: `unknown method "${method}"` })
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
        this.call(method, args).then(
          (data) => send(200, { ok: true, data }),
          (err: unknown) => send(err instanceof UserError ? 400 : 500, { ok: false, error: err instanceof Error ? err.message : String(err) })
        )
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.opts.port, this.opts.host, () => resolve())
    })
    const addr = server.address()
    this.port = typeof addr === 'object' && addr ? addr.port : this.opts.port
    this.server = server
    const file: ConsoleFile = { pid: process.pid, httpPort: this.port, mqttPort: this.core.mqttPort, token: this.token, startedAt: new Date().toISOString() }
    writeFileSync(join(this.opts.dataDir, 'console.json'), JSON.stringify(file, null, 2), { mode: 0o600 })
  }

  async stop(): Promise<void> {
    rmSync(join(this.opts.dataDir, 'console.json'), { force: true })
    const s = this.server
    this.server = null
    if (s) await new Promise<void>((r) => s.close(() => r()))
  }
}

/** The running console of a data directory, if any (its console.json and a live pid). */
export function findConsole(dataDir: string): ConsoleFile | null {
  let f: ConsoleFile
  try {
    f = JSON.parse(readFileSync(join(dataDir, 'console.json'), 'utf8')) as ConsoleFile
  } catch {
    return null
  }
  try {
    process.kill(f.pid, 0)
  } catch {
    return null
  }
  return f
}

/** Calls a running console's API. */
export function callConsole<T>(c: ConsoleFile, method: ApiMethod, args: Record<string, unknown>, timeoutMs = 600_000): Promise<T> {
  const body = JSON.stringify(args)
  return new Promise<T>((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: c.httpPort, path: `/api/${method}`, method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${c.token}`, 'content-length': Buffer.byteLength(body) }, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (d: Buffer) => chunks.push(d))
        res.on('end', () => {
          try {
            const r = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { ok: boolean; data?: T; error?: string }
            if (r.ok) resolve(r.data as T)
            else reject(new UserError(r.error ?? `console answered ${res.statusCode}`))
          } catch {
            reject(new UserError(`console answered ${res.statusCode} without JSON`))
          }
        })
      }
    )
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', (err) => reject(new UserError(`cannot reach the console on 127.0.0.1:${c.httpPort} (${err.message})`)))
    req.end(body)
  })
}
