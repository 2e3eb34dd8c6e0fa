/**
 * Log lines per burst, not per try: a hostile or broken client can cause thousands of identical
 * warnings a second (wrong tokens, refused publishes, bad frames). The first line of a key is
 * written at once; repeats within the window are counted and written as one summary line when the
 * next line of that key comes after the window, or when the window ends (a timer, unref'd).
 *
 * Keys often hold what the client chose (its address, its id): rotating them would make every line
 * a first line. So each key's family — the part before its first ':', which is the caller's own
 * word (`refused`, `blocked`, `guard`, …) — may write at most FAMILY_LINES first lines per window;
 * past that, lines are only counted, and one summary per family says how many and for how many
 * distinct keys. The log grows by a bounded number of lines per window whatever a client sends.
 */
import type { Logger } from 'pino'

const WINDOW_MS = 10_000
/** Distinct keys remembered at once; past this the oldest are summarised and dropped (bounded memory). */
const MAX_KEYS = 1024
/** First lines one family may write per window. */
export const FAMILY_LINES = 20

interface Family {
  since: number
  lines: number
  suppressed: number
  keys: Set<string>
  level: 'warn' | 'info' | 'error'
  msg: string
}

export const familyOf = (key: string): string => key.split(':', 1)[0]!

interface Burst {
  since: number
  suppressed: number
  level: 'warn' | 'info' | 'error'
  msg: string
  obj: Record<string, unknown>
}

/** A key for a kind of message: long numbers masked, so that "declares 5000 bytes" and "declares 7000 bytes" are one burst. */
export function kindOf(text: string): string {
  return text.replace(/\d{3,}/g, '#').slice(0, 120)
}

export class LogLimiter {
  private readonly bursts = new Map<string, Burst>()
  private readonly families = new Map<string, Family>()
  private timer: NodeJS.Timeout | null = null

  constructor(
    private readonly log: Logger,
    private readonly windowMs = WINDOW_MS
  ) {}

  warn(key: string, obj: Record<string, unknown>, msg: string): void {
    this.write('warn', key, obj, msg)
  }

  error(key: string, obj: Record<string, unknown>, msg: string): void {
    this.write('error', key, obj, msg)
  }

  /** Lines suppressed so far under `key` in its current window (for tests and the UI). */
  suppressed(key: string): number {
    return this.bursts.get(key)?.suppressed ?? 0
  }

  private write(level: Burst['level'], key: string, obj: Record<string, unknown>, msg: string): void {
    const now = Date.now()
    const b = this.bursts.get(key)
    if (b && now - b.since < this.windowMs) {
      b.suppressed++
      b.obj = obj
      return
    }
    if (b) this.flush(key, b)
    if (!this.familyAdmits(level, key, msg)) return
    if (this.bursts.size >= MAX_KEYS) {
      const oldest = this.bursts.keys().next().value as string
      this.flush(oldest, this.bursts.get(oldest)!)
    }
    this.log[level](obj, msg)
    this.bursts.set(key, { since: now, suppressed: 0, level, msg, obj })
    this.timer ??= setInterval(() => this.sweep(), this.windowMs).unref()
  }

  /** Whether a first line of `key` may be written: its family is under FAMILY_LINES this window. */
  private familyAdmits(level: Family['level'], key: string, msg: string): boolean {
    const name = familyOf(key)
    const now = Date.now()
    let f = this.families.get(name)
    if (f && now - f.since >= this.windowMs) {
      this.flushFamily(name, f)
      f = undefined
    }
    if (!f) {
      f = { since: now, lines: 0, suppressed: 0, keys: new Set(), level, msg }
      this.families.set(name, f)
    }
    if (f.lines < FAMILY_LINES) {
      f.lines++
      return true
    }
    f.suppressed++
    f.msg = msg
    if (f.keys.size < MAX_KEYS) f.keys.add(key)
    return false
  }

  private flushFamily(name: string, f: Family): void {
    this.families.delete(name)
    if (f.suppressed > 0)
      this.log[f.level](
        { family: name, suppressed: f.suppressed, distinctKeys: f.keys.size, windowMs: this.windowMs },
        `${f.suppressed} more "${name}" lines in ${this.windowMs / 1000} s, for ${f.keys.size}${f.keys.size >= MAX_KEYS ? '+' : ''} other addresses or ids (last: ${f.msg})`
      )
  }

  /** Lines of a family counted, not written, in its current window (tests). */
  familySuppressed(key: string): number {
    return this.families.get(familyOf(key))?.suppressed ?? 0
  }

  private flush(key: string, b: Burst): void {
    this.bursts.delete(key)
    if (b.suppressed > 0) this.log[b.level]({ ...b.obj, repeated: b.suppressed, windowMs: this.windowMs }, `${b.msg} (repeated ${b.suppressed} more times)`)
  }

  private sweep(): void {
    const now = Date.now()
    for (const [key, b] of this.bursts) if (now - b.since >= this.windowMs) this.flush(key, b)
    for (const [name, f] of this.families) if (now - f.since >= this.windowMs) this.flushFamily(name, f)
    if (this.bursts.size === 0 && this.families.size === 0 && this.timer) {
      clearInterval(this.timer)
      this.timer = null
    }
  }

  /** Writes every pending summary (at shutdown). */
  close(): void {
    for (const [key, b] of this.bursts) this.flush(key, b)
    for (const [name, f] of this.families) this.flushFamily(name, f)
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }
}
