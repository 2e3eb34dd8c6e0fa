/**
 * The agent's model cache: models fetched from the console (src/shared/contracts/model-transfer.ts), one
 * folder per model and checksum (`<cache>/<id>-<sha12>/`). A fetch asks for the model's package,
 * then each file chunk by chunk into `<cache>/.partial/<id>-<sha12>/` — so a fetch cut by a dropped
 * connection, or by a restart, resumes from the bytes already on disk. Every chunk is checked
 * against its SHA-256 (a bad one is refused and asked for again), every file against the package's
 * SHA-256 (a bad one is fetched again once, then the fetch fails); only a folder whose every file
 * checked out is renamed into place, so nothing unchecked is ever loaded.
 */
import { createHash } from 'node:crypto'
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { UserError, errorMessage } from '../../src/shared/errors.js'
import { encodeJson } from '../../src/shared/contracts/messages.js'
import {
  MAX_CHUNK_BYTES,
  cacheName,
  decodeChunk,
  packageBytes,
  type Chunk,
  type FetchRequestIn,
  type PackageFile
} from '../../src/shared/contracts/model-transfer.js'

export interface ModelCacheOptions {
  dir: string
  log: Logger
  publishFetch(payload: Uint8Array): void
  /** ms without an answer before a fetch request is sent again. */
  timeoutMs?: number
  /** Requests sent for one chunk before the fetch fails. */
  maxAttempts?: number
}

export interface FetchStats {
  fetchedBytes: number
  resumedBytes: number
  refusedChunks: number
}

interface Wait {
  payload: Uint8Array
  resolve(c: Chunk): void
  reject(err: Error): void
}

/** Consecutive refused chunks after which a fetch gives up. */
const MAX_REFUSALS = 8

const sha256Of = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex')
const sizeOf = (path: string): number => (existsSync(path) ? statSync(path).size : 0)

export class ModelCache {
  private readonly waits = new Map<string, Wait>()
  private readonly fetching = new Map<string, { bytes: number; totalBytes: number }>()
  private seq = 0
  private stopped = false

  constructor(private readonly opts: ModelCacheOptions) {
    mkdirSync(join(opts.dir, '.partial'), { recursive: true })
  }

  /** Folders of complete cached models. */
  complete(): string[] {
    return readdirSync(this.opts.dir)
      .filter((n) => !n.startsWith('.') && existsSync(join(this.opts.dir, n, 'manifest.json')))
      .map((n) => join(this.opts.dir, n))
  }

  remove(dir: string): void {
    rmSync(dir, { recursive: true, force: true })
  }

  /** Bytes held and total of a model being fetched, or null. */
  progress(model: string): { bytes: number; totalBytes: number } | null {
    return this.fetching.get(model) ?? null
  }

  /** The connection is back: every request still waiting is sent again (its answer may have been lost). */
  reconnected(): void {
    for (const w of this.waits.values()) this.opts.publishFetch(w.payload)
  }

  stop(): void {
    this.stopped = true
    for (const w of this.waits.values()) w.reject(new UserError('agent stopping'))
    this.waits.clear()
  }

  /** A chunk from the console: handed to the request it answers; a malformed one is dropped (the request asks again). */
  onChunk(payload: Uint8Array): void {
    let c: Chunk
    try {
      c = decodeChunk(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength))
    } catch (err) {
      this.opts.log.warn({ err: errorMessage(err), bytes: payload.length }, 'malformed model chunk dropped')
      return
    }
    this.waits.get(c.header.transfer)?.resolve(c)
  }

  /** Fetches a model into the cache; resolves with its folder once every file checked out. */
  async fetch(model: string, sha256: string): Promise<{ dir: string; stats: FetchStats }> {
    const stats: FetchStats = { fetchedBytes: 0, resumedBytes: 0, refusedChunks: 0 }
    const name = cacheName(model, sha256)
    const final = join(this.opts.dir, name)
    if (existsSync(join(final, 'manifest.json'))) return { dir: final, stats }
    const partial = join(this.opts.dir, '.partial', name)
    mkdirSync(partial, { recursive: true })
    const head = await this.request({ model, sha256 })
    if (head.header.error) throw new UserError(`the console refused to send model ${model}: ${head.header.error}`)
    const pkg = head.header.package
    if (!pkg || pkg.model !== model || pkg.sha256 !== sha256) throw new UserError(`the console answered the fetch of model ${model} with another package`)
    const totalBytes = packageBytes(pkg)
    const progress = { bytes: 0, totalBytes }
    this.fetching.set(model, progress)
    try {
      for (const f of pkg.files) await this.fetchFile(model, sha256, f, partial, stats, progress)
    } finally {
      this.fetching.delete(model)
    }
    rmSync(final, { recursive: true, force: true })
    renameSync(partial, final)
    return { dir: final, stats }
  }

  private async fetchFile(model: string, sha256: string, f: PackageFile, partial: string, stats: FetchStats, progress: { bytes: number }): Promise<void> {
    const path = join(partial, f.name)
    for (let attempt = 1; attempt <= 2; attempt++) {
      let have = sizeOf(path)
      if (have > f.bytes) {
        rmSync(path, { force: true })
        have = 0
      }
      if (attempt === 1) stats.resumedBytes += have
      progress.bytes += have
      let refusals = 0
      while (have < f.bytes) {
        const c = await this.request({ model, sha256, file: f.name, offset: have, length: MAX_CHUNK_BYTES })
        if (c.header.error) throw new UserError(`the console refused to send ${model}/${f.name}: ${c.header.error}`)
        const problem = this.check(c, f, have)
        if (problem) {
          stats.refusedChunks++
          this.opts.log.warn({ model, file: f.name, offset: have, problem }, 'model chunk refused: asking for it again')
          if (++refusals > MAX_REFUSALS) throw new UserError(`model ${model}: ${MAX_REFUSALS} chunks of ${f.name} in a row were refused (${problem})`)
          continue
        }
        refusals = 0
        appendFileSync(path, c.data)
        have += c.data.length
        stats.fetchedBytes += c.data.length
        progress.bytes += c.data.length
      }
      const got = sha256Of(path)
      if (got === f.sha256) return
      this.opts.log.warn({ model, file: f.name, expected: f.sha256, got }, 'fetched file does not match its SHA-256: fetching it again')
      rmSync(path, { force: true })
      progress.bytes -= have
    }
    throw new UserError(`model ${model}: ${f.name} did not match its SHA-256 after two transfers; it is not loaded`)
  }

  /** What is wrong with a chunk for (file, offset), or null. */
  private check(c: Chunk, f: PackageFile, offset: number): string | null {
    const h = c.header
    if (h.file !== f.name || h.offset !== offset) return `answers ${h.file ?? '(package)'}@${h.offset}, asked ${f.name}@${offset}`
    if (h.totalBytes !== f.bytes) return `file size ${h.totalBytes}, the package says ${f.bytes}`
    if (c.data.length === 0 || offset + c.data.length > f.bytes) return `${c.data.length} bytes at ${offset} do not fit a ${f.bytes}-byte file`
    const digest = createHash('sha256').update(c.data).digest('hex')
    if (digest !== h.chunkSha256) return `chunk SHA-256 ${digest.slice(0, 12)}… is not the ${(h.chunkSha256 ?? 'none').slice(0, 12)}… sent with it`
    return null
  }

  /** One fetch request, sent again every timeoutMs (and on reconnect) until answered. */
  private request(fields: Omit<FetchRequestIn, 'transfer' | 'schema'>): Promise<Chunk> {
    if (this.stopped) return Promise.reject(new UserError('agent stopping'))
    const transfer = `f${(++this.seq).toString(36)}`
    const payload = encodeJson({ schema: 1, transfer, ...fields })
    const timeoutMs = this.opts.timeoutMs ?? 15_000
    const maxAttempts = this.opts.maxAttempts ?? 20
    return new Promise<Chunk>((resolve, reject) => {
      let attempts = 1
      const timer = setInterval(() => {
        if (++attempts > maxAttempts) {
          done()
          reject(new UserError(`no answer from the console to the fetch of ${fields.model}/${fields.file ?? '(package)'} after ${maxAttempts} requests`))
          return
        }
        this.opts.publishFetch(payload)
      }, timeoutMs)
      const done = () => {
        clearInterval(timer)
        this.waits.delete(transfer)
      }
      this.waits.set(transfer, {
        payload,
        resolve: (c) => {
          done()
          resolve(c)
        },
        reject: (err) => {
          done()
          reject(err)
        }
      })
      this.opts.publishFetch(payload)
    })
  }
}
