/**
 * One running console per data directory: `<data dir>/console.lock` names the process that holds it
 * (pid, shell, host, boot, start time). It is created whole or not at all (written to a private file,
 * then hard-linked into place: link fails if the lock exists), released on stop, and taken over
 * when its holder is gone (no such pid, or the machine rebooted since). A second console on the same
 * directory is refused with the holder's details.
 */
import { randomBytes } from 'node:crypto'
import { linkSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { UserError } from '../../shared/errors.js'

export interface LockHolder {
  pid: number
  /** 'headless' (edgent serve) or 'desktop' (the Electron window). */
  shell: string
  host: string
  /** The kernel's boot id (Linux), to tell a pid from before a reboot. */
  bootId: string | null
  startedAt: string
  nonce: string
}

export const LOCK_FILE = 'console.lock'

function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  } catch {
    return null
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Why a holder no longer holds the lock, or null when it does (or cannot be told from here). */
function staleReason(h: LockHolder): string | null {
  if (h.host !== hostname()) return null // another machine on a shared directory: cannot check, assume held
  const boot = bootId()
  if (boot && h.bootId && boot !== h.bootId) return 'the machine has rebooted since'
  if (!alive(h.pid)) return `process ${h.pid} is gone`
  return null
}

function readHolder(file: string): { text: string; holder: LockHolder | null } | null {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  try {
    const h = JSON.parse(text) as LockHolder
    return { text, holder: Number.isInteger(h.pid) && typeof h.host === 'string' ? h : null }
  } catch {
    return { text, holder: null }
  }
}

export class InstanceLock {
  private released = false
  /** Set when the lock was taken over from a holder that had gone (for the log). */
  tookOver: string | null = null

  private constructor(
    readonly file: string,
    readonly holder: LockHolder
  ) {}

  /** Takes the data directory's lock, or throws a UserError naming the process that holds it. */
  static acquire(dataDir: string, shell: string): InstanceLock {
    const file = join(dataDir, LOCK_FILE)
    const me: LockHolder = {
      pid: process.pid,
      shell,
      host: hostname(),
      bootId: bootId(),
      startedAt: new Date().toISOString(),
      nonce: randomBytes(8).toString('hex')
    }
    const text = `${JSON.stringify(me, null, 2)}\n`
    const tmp = `${file}.${me.nonce}`
    writeFileSync(tmp, text, { mode: 0o600 })
    try {
      let tookOver: string | null = null
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          linkSync(tmp, file)
          const lock = new InstanceLock(file, me)
          lock.tookOver = tookOver
          return lock
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        }
        const cur = readHolder(file)
        if (!cur) continue // released meanwhile
        if (cur.holder) {
          const why = staleReason(cur.holder)
          if (!why) throw new UserError(heldMessage(dataDir, cur.holder))
          tookOver = `${cur.holder.shell} console pid ${cur.holder.pid}: ${why}`
        } else {
          tookOver = 'an unreadable lock file'
        }
        // Remove the stale lock only if it is still the one judged stale.
        if (readHolder(file)?.text === cur.text) rmSync(file, { force: true })
      }
      throw new UserError(`could not take the lock ${file}: another console keeps starting on ${dataDir}`)
    } finally {
      rmSync(tmp, { force: true })
    }
  }

  /** Removes the lock, if it is still this process's. */
  release(): void {
    if (this.released) return
    this.released = true
    const cur = readHolder(this.file)
    if (cur?.holder?.nonce === this.holder.nonce) rmSync(this.file, { force: true })
  }
}

export function heldMessage(dataDir: string, h: LockHolder): string {
  const what = h.shell === 'desktop' ? 'the desktop console' : 'edgent serve'
  const where = h.host === hostname() ? `pid ${h.pid}` : `pid ${h.pid} on ${h.host}`
  return `a console is already running on ${dataDir}: ${what}, ${where}, since ${h.startedAt} — use it (the CLI finds it), stop it, or choose another --data-dir`
}
