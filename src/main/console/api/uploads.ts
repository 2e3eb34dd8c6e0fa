/**
 * Files uploaded through a shell (the headless server's `POST /upload`, Electron's upload channel)
 * for a console API call to use (`modelImport`): written to `<data dir>/uploads/<id>` through a
 * temporary name, refused past a size cap (nothing kept), named by an id the caller passes back.
 * Uploads are removed once used, and those left over from a previous run at start.
 */
import { randomBytes } from 'node:crypto'
import { createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { UploadView } from '../../../shared/contracts/console-api.js'
import { TooLargeError, UserError, errorMessage } from '../../../shared/errors.js'

const ID_RE = /^[a-f0-9]{24}$/

/** A size as users read it. */
export const formatBytes = (n: number): string => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} bytes`)

export class Uploads {
  readonly dir: string

  constructor(
    dataDir: string,
    /** Largest upload accepted, bytes. */
    readonly maxBytes: number
  ) {
    this.dir = join(resolve(dataDir), 'uploads')
  }

  /** Removes what a previous run left. */
  start(): void {
    rmSync(this.dir, { recursive: true, force: true })
    mkdirSync(this.dir, { recursive: true })
  }

  /** Uploads not yet imported stay until the next start removes them (an import may still read one). */
  stop(): void {}

  /** Receives one file from a stream (or bytes); over the cap, nothing is kept and a UserError names the cap. */
  async receive(fileName: string, source: AsyncIterable<Uint8Array> | Uint8Array): Promise<UploadView> {
    const name = fileName.replace(/^.*[\\/]/, '').slice(0, 200)
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
    try {
      for await (const chunk of source instanceof Uint8Array ? [source] : source) {
        bytes += chunk.length
        if (bytes > this.maxBytes) throw new TooLargeError(`upload: ${name} is over the ${formatBytes(this.maxBytes)} upload cap`)
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
      out.destroy()
      rmSync(tmp, { force: true })
      throw err
    }
  }

  /** The file of an upload id, else a UserError. */
  path(id: string): string {
    const p = join(this.dir, id)
    if (!ID_RE.test(id) || !existsSync(p) || !statSync(p).isFile()) throw new UserError(`unknown upload "${id}" (upload the file first)`)
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
