/**
 * Per-agent token buckets: what one agent may send per second (activations, model fetches, command
 * replies, presence messages). A bucket holds up to `burst` tokens and refills at `perSecond`; a
 * message that finds it empty is refused — never queued — and the refusal is logged once per burst
 * by the caller. Buckets are keyed by agent and kind; the table is bounded.
 */
export interface Rate {
  perSecond: number
  burst: number
}

interface Bucket {
  tokens: number
  at: number
}

const MAX_BUCKETS = 4096

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>()

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Takes one token from `key`'s bucket; false when there is none (the message is refused). */
  take(key: string, rate: Rate): boolean {
    const now = this.now()
    let b = this.buckets.get(key)
    if (!b) {
      if (this.buckets.size >= MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value as string)
      b = { tokens: rate.burst, at: now }
      this.buckets.set(key, b)
    }
    b.tokens = Math.min(rate.burst, b.tokens + ((now - b.at) / 1000) * rate.perSecond)
    b.at = now
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }
}

/**
 * What one agent may send, per kind. A real agent sends one activation per inference and waits for its
 * result (≤ a few hundred per second even device-only on a desktop-class device), one fetch per 1 MiB
 * chunk in flight, one reply per command and a hello when it connects or its models change.
 */
export const AGENT_RATES = {
  activation: { perSecond: 500, burst: 500 },
  fetch: { perSecond: 50, burst: 50 },
  response: { perSecond: 100, burst: 100 },
  hello: { perSecond: 10, burst: 20 },
  /** A heartbeat every few seconds. */
  health: { perSecond: 2, burst: 5 }
} as const satisfies Record<string, Rate>

/**
 * Largest JSON message of each kind an agent may send, bytes: past it the message is dropped before
 * it is parsed (a 1.9 MB hello cost every neighbour 17× its p95 in JSON parsing). Activations are
 * bounded by the frame's own limit, responses by the packet limit (a layer table can be large).
 */
export const AGENT_MESSAGE_BYTES = {
  hello: 64 * 1024,
  state: 4 * 1024,
  health: 64 * 1024,
  fetch: 4 * 1024
} as const

/** Activations of one agent queued or running at the edge at once (an agent sends the next after the result). */
export const MAX_ACTIVATIONS_IN_FLIGHT = 2
