/**
 * Log lines per burst, not per try: a hostile or broken client can cause thousands of identical
 * warnings a second (wrong tokens, refused publishes, bad frames). The first line of a key is
 * written at once; repeats within the window are counted and written as one summary line when the
 * next line of that key comes after the window, or when the window ends (a timer, unref'd).
 */
import type { Logger } from 'pino'

const WINDOW_MS = 10_000
/** Distinct keys remembered at once; past this the oldest are summarised and dropped (bounded memory). */
const MAX_KEYS = 1024

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
    if (this.bursts.size >= MAX_KEYS) {
      const oldest = this.bursts.keys().next().value as string
      this.flush(oldest, this.bursts.get(oldest)!)
    }
    this.log[level](obj, msg)
    this.bursts.set(key, { since: now, suppressed: 0, level, msg, obj })
    this.timer ??= setInterval(() => this.sweep(), this.windowMs).unref()
  }

  private flush(key: string, b: Burst): void {
    this.bursts.delete(key)
    if (b.suppressed > 0) this.log[b.level]({ ...b.obj, repeated: b.suppressed, windowMs: this.windowMs }, `${b.msg} (repeated ${b.suppressed} more times)`)
  }

  private sweep(): void {
    const now = Date.now()
    for (const [key, b] of this.bursts) if (now - b.since >= this.windowMs) this.flush(key, b)
    if (this.bursts.size === 0 && this.timer) {
      clearInterval(this.timer)
      this.timer = null
    }
  }

  /** Writes every pending summary (at shutdown). */
  close(): void {
    for (const [key, b] of this.bursts) this.flush(key, b)
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }
}
