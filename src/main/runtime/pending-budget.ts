/**
 * Connections that have not yet proved who they are (an MQTT socket before its CONNACK, an HTTP
 * socket before a request with the token) share a budget of their own: at most `max` at once, the
 * oldest closed to make room for a new one, each closed after `deadlineMs`. Idle sockets from any
 * number of addresses can then never fill the listener's table — a legitimate client, whose
 * credentials follow its connect within milliseconds, gets in — and an authenticated connection
 * leaves the budget, so unauthenticated traffic cannot starve paired devices or the console's user.
 */
import type { Socket } from 'node:net'

export interface PendingLimits {
  max: number
  deadlineMs: number
}

export type PendingDrop = 'evicted' | 'deadline'

export class PendingBudget {
  /** Pending sockets by `address:port`, oldest first (a Map keeps insertion order). */
  private readonly pending = new Map<string, { socket: Socket; timer: NodeJS.Timeout }>()
  /** Sockets closed for the budget, by why (tests, logs). */
  readonly dropped = { evicted: 0, deadline: 0 }

  constructor(
    private readonly limits: PendingLimits,
    private readonly onDrop: (why: PendingDrop, remote: string) => void = () => undefined
  ) {}

  static key(socket: Socket): string {
    return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
  }

  get size(): number {
    return this.pending.size
  }

  /** A new connection: pending until `settle`d (authenticated) or closed. */
  admit(socket: Socket): void {
    const key = PendingBudget.key(socket)
    while (this.pending.size >= this.limits.max) {
      const [oldest, entry] = this.pending.entries().next().value as [string, { socket: Socket }]
      this.drop(oldest, entry.socket, 'evicted')
    }
    const timer = setTimeout(() => this.drop(key, socket, 'deadline'), this.limits.deadlineMs)
    timer.unref()
    this.pending.set(key, { socket, timer })
    socket.once('close', () => this.settle(key))
  }

  /** The connection at `key` proved who it is (or closed): it leaves the budget. */
  settle(key: string): void {
    const e = this.pending.get(key)
    if (!e) return
    clearTimeout(e.timer)
    this.pending.delete(key)
  }

  isPending(key: string): boolean {
    return this.pending.has(key)
  }

  private drop(key: string, socket: Socket, why: PendingDrop): void {
    this.settle(key)
    this.dropped[why]++
    this.onDrop(why, socket.remoteAddress ?? 'unknown')
    socket.destroy()
  }

  /** Closes every pending socket's timer (at stop). */
  clear(): void {
    for (const e of this.pending.values()) clearTimeout(e.timer)
    this.pending.clear()
  }
}
