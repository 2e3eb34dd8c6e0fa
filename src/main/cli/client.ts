/**
 * The CLI's client of a running console: the console API (`ConsoleApi`, src/shared/contracts/console-api.ts)
 * over the loopback control API (`POST /api/<method>`, bearer token from the control file), typed
 * per method.
 */
import { request as httpRequest } from 'node:http'
import { resolve } from 'node:path'
import type { ArgsOf, MethodName, ResultOf } from '../../shared/contracts/console-api.js'
import { UserError } from '../../shared/errors.js'
import { findConsole, type ConsoleFile } from '../shell/control-file.js'

/** Calls one method of a running console. */
export function callConsole<M extends MethodName>(c: ConsoleFile, method: M, args: ArgsOf<M>, timeoutMs = 600_000): Promise<ResultOf<M>> {
  const body = JSON.stringify(args)
  return new Promise<ResultOf<M>>((done, fail) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: c.httpPort,
        path: `/api/${method}`,
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${c.token}`, 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (d: Buffer) => chunks.push(d))
        res.on('end', () => {
          try {
            const r = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { ok: boolean; data?: ResultOf<M>; error?: string }
            if (r.ok) done(r.data as ResultOf<M>)
            else fail(new UserError(r.error ?? `console answered ${res.statusCode}`))
          } catch {
            fail(new UserError(`console answered ${res.statusCode} without JSON`))
          }
        })
      }
    )
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', (err) => fail(new UserError(`cannot reach the console on 127.0.0.1:${c.httpPort} (${err.message})`)))
    req.end(body)
  })
}

/** The console running on a data directory, else a UserError saying how to start one. */
export function runningConsole(dataDir: string): ConsoleFile {
  const c = findConsole(resolve(dataDir))
  if (!c) throw new UserError(`no console is running on ${resolve(dataDir)}: start one with \`edgent serve\``)
  return c
}

export { findConsole, type ConsoleFile } from '../shell/control-file.js'
