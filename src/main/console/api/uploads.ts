/**
 * Files uploaded through a shell (the headless server's `POST /upload`, Electron's upload channel)
 * for a console API call to use (`modelImport`): written to `<data dir>/uploads/<id>` through a
 * temporary name, refused past a size cap (nothing kept), named by an id the caller passes back.
 * Uploads are removed once used, those left over from a previous run at start, and those never
 * used after UPLOAD_TTL_MS; together they hold at most `maxTotalBytes` (bytes still arriving count),
 * so nobody can fill the disk by uploading and never importing.
 */
import { randomBytes } from 'node:crypto'
import { createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { UploadView } from '../../../shared/contracts/console-api.js'
import { TooLargeError, UserError, errorMessage } from '../../../shared/errors.js'
import { safeText } from '../../../shared/text.js'

const ID_RE = /^[a-f0-9]{24}$/

/** An upload nobody imported is removed after this long, ms. */
export const UPLOAD_TTL_MS = 30 * 60_000

export interface UploadLimits {
  /** Largest upload accepted, bytes. */
  maxBytes: number
  /** What the kept uploads and those arriving may hold together, bytes (default: twice maxBytes). */
  maxTotalBytes?: number
  ttlMs?: number
  /** The clock (tests). */
  now?: () => number
}

/** A size as users read it. */
export const formatBytes = (n: number): string => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} bytes`)

export class Uploads {
  readonly dir: string
  readonly maxBytes: number
  readonly maxTotalBytes: number
  private readonly ttlMs: number
  private readonly now: () => number
  /** Bytes of uploads still arriving. */
  private arriving = 0
  /** Ids being read by an import: never expired under it. */
  private readonly inUse = new Set<string>()
  private timer: NodeJS.Timeout | null = null

  constructor(dataDir: string, limits: UploadLimits) {
    this.dir = join(resolve(dataDir), 'uploads')
    this.maxBytes = limits.maxBytes
    this.maxTotalBytes = limits.maxTotalBytes ?? 2 * limits.maxBytes
    this.ttlMs = limits.ttlMs ?? UPLOAD_TTL_MS
    this.now = limits.now ?? Date.now
  }

  /** Removes what a previous run left, and expires uploads nobody used from now on. */
  start(): void {
    rmSync(this.dir, { recursive: true, force: true })
    mkdirSync(this.dir, { recursive: true })
    this.timer = setInterval(() => this.expire(), Math.min(60_000, this.ttlMs))
    this.timer.unref()
  }

  /** Uploads not yet imported stay until the next start removes them (an import may still read one). */
  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  /** Removes uploads older than the time to live (not one an import is reading); how many. */
  expire(): number {
    let removed = 0
    for (const id of this.list()) {
      if (this.inUse.has(id)) continue
      const st = statSync(join(this.dir, id), { throwIfNoEntry: false })
      if (st && this.now() - st.mtimeMs > this.ttlMs) {
        rmSync(join(this.dir, id), { force: true })
        removed++
      }
    }
    return removed
  }

  /** Bytes the kept uploads hold. */
  private keptBytes(): number {
    return this.list().reduce((a, id) => a + (statSync(join(this.dir, id), { throwIfNoEntry: false })?.size ?? 0), 0)
  }

  /** Marks uploads as read by an import until `release` (they do not expire meanwhile). */
  hold(ids: readonly string[]): () => void {
    for (const id of ids) this.inUse.add(id)
    return () => {
      for (const id of ids) this.inUse.delete(id)
    }
  }

  /** Receives one file from a stream (or bytes); over the cap, nothing is kept and a UserError names the cap. */
  async receive(fileName: string, source: AsyncIterable<Uint8Array> | Uint8Array): Promise<UploadView> {
    const name = safeText(fileName.replace(/^.*[\\/]/, '').slice(0, 200))
    if (!name) throw new UserError('upload: the file has no name')
    mkdirSync(this.dir, { recursive: true })
    const id = randomBytes(12).toString('hex')
    const tmp = join(this.dir, `.${id}`)
    const out = createWriteStream(tmp, { mode: 0o600 })
    // A write that fails (disk full), or completes after a refused upload destroyed the stream, must
    // not become an uncaught 'error': the first one is kept and thrown here.
    let failed: Error | null = null
    out.on('error', (err) => {
      failed ??= err
    })
    let bytes = 0
    this.expire()
    const kept = this.keptBytes()
    try {
      for await (const chunk of source instanceof Uint8Array ? [source] : source) {
        bytes += chunk.length
        this.arriving += chunk.length
        if (bytes > this.maxBytes) throw new TooLargeError(`upload: ${name} is over the ${formatBytes(this.maxBytes)} upload cap`)
        if (kept + this.arriving > this.maxTotalBytes)
          throw new TooLargeError(
            `upload: ${name} would take the uploads waiting for an import past their ${formatBytes(this.maxTotalBytes)} total (${formatBytes(kept)} kept): import them, or wait ${Math.round(this.ttlMs / 60_000)} min for unused ones to expire`
          )
        if (failed) throw new UserError(`upload: cannot write ${name} to ${this.dir} (${errorMessage(failed)})`)
        if (!out.write(chunk))
          await new Promise<void>((r) => {
            out.once('drain', () => r())
            out.once('close', () => r()) // destroyed by an error: `failed` says which
          })
      }
      if (failed) throw new UserError(`upload: cannot write ${name} to ${this.dir} (${errorMessage(failed)})`)
      await new Promise<void>((done, fail) => out.end((err?: Error | null) => (err ? fail(err) : done())))
      renameSync(tmp, join(this.dir, id))
      return { upload: id, fileName: name, bytes }
    } catch (err) {
      // The stream opens its file asynchronously: removed only once it is closed, or it would reappear.
      if (!out.closed) await new Promise<void>((r) => out.destroy().once('close', () => r()))
      rmSync(tmp, { force: true })
      throw err
    } finally {
      this.arriving -= bytes
    }
  }

  /** The file of an upload id, else a UserError. */
  path(id: string): string {
    const p = join(this.dir, id)
    if (!ID_RE.test(id) || !existsSync(p) || !statSync(p).isFile())
      throw new UserError(`unknown upload "${id}" (upload the file first; an upload not used within ${Math.round(this.ttlMs / 60_000)} min is removed)`)
    return p
  }

  remove(id: string): void {
    if (ID_RE.test(id)) rmSync(join(this.dir, id), { force: true })
  }

  /** Upload ids present (tests). */
  list(): string[] {
    return existsSync(this.dir) ? readdirSync(this.dir).filter((n) => ID_RE.test(n)) : []
  }
}
