/**
 * Failure backoff for broker logins, per source address and per agent id. After `threshold` failed
 * logins a key is blocked for `baseMs`, doubling with each further failure up to `maxMs`; a blocked
 * address is dropped at accept, before a byte is parsed. An id's failures block nobody: its token is
 * still checked, so that a flood of wrong tokens for a paired id cannot keep its real agent out (the
 * id's count only marks it as under attack in the log). A success clears the key; failures older than
 * `windowMs` are forgotten. The table is bounded (`maxKeys`, oldest dropped first), so spoofed ids or
 * many addresses cannot grow it.
 */
export interface BackoffOptions {
  threshold: number
  baseMs: number
  maxMs: number
  windowMs: number
  maxKeys: number
}

export const ADDRESS_BACKOFF: BackoffOptions = { threshold: 10, baseMs: 1_000, maxMs: 60_000, windowMs: 60_000, maxKeys: 10_000 }
export const ID_BACKOFF: BackoffOptions = { threshold: 10, baseMs: 1_000, maxMs: 30_000, windowMs: 60_000, maxKeys: 10_000 }
/**
 * An agent dropped as a slow consumer (mqtt-guard.ts) twice within two minutes waits 5 s before its
 * next login is accepted, doubling to 60 s: a client that reconnects only to stop reading again
 * cannot keep the console writing for it. Its token was right: the wait is the holder's own doing.
 */
export const SLOW_CONSUMER_BACKOFF: BackoffOptions = { threshold: 2, baseMs: 5_000, maxMs: 60_000, windowMs: 120_000, maxKeys: 10_000 }

interface Entry {
  failures: number
  last: number
  blockedUntil: number
}

export class FailureBackoff {
  private readonly entries = new Map<string, Entry>()

  constructor(
    private readonly o: BackoffOptions,
    private readonly now: () => number = Date.now
  ) {}

  /** Milliseconds `key` stays blocked (0: not blocked). */
  blockedFor(key: string): number {
    const e = this.entries.get(key)
    if (!e) return 0
    return Math.max(0, e.blockedUntil - this.now())
  }

  /** Records a failure; returns the block it now carries (ms, 0 below the threshold). */
  fail(key: string): number {
    const now = this.now()
    let e = this.entries.get(key)
    if (e && now - e.last > this.o.windowMs) e = undefined
    if (!e) e = { failures: 0, last: now, blockedUntil: 0 }
    e.failures++
    e.last = now
    if (e.failures >= this.o.threshold) e.blockedUntil = now + Math.min(this.o.maxMs, this.o.baseMs * 2 ** Math.min(30, e.failures - this.o.threshold))
    this.entries.delete(key) // re-insert: the map's order is the order of last failure
    this.entries.set(key, e)
    while (this.entries.size > this.o.maxKeys) this.entries.delete(this.entries.keys().next().value as string)
    return Math.max(0, e.blockedUntil - now)
  }

  succeed(key: string): void {
    this.entries.delete(key)
  }
}
