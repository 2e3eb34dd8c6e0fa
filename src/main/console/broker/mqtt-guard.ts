/**
 * A guard in front of aedes' packet parser. aedes buffers a whole packet before it looks at it, and
 * before CONNECT is authenticated; so the socket's bytes pass through this guard first, which reads
 * only MQTT fixed headers ([MQTT-2.2]: type nibble + variable-length "remaining length"):
 *   - the first packet must be CONNECT ([MQTT-3.1.0-1]) and small;
 *   - no later packet may declare more than the packet limit;
 *   - a remaining-length field longer than 4 bytes is malformed ([MQTT-2.2.3]).
 * A violating connection is destroyed before the offending chunk reaches aedes.
 * Once a client is known to be an agent, its PUBLISH packets also pass a token bucket: past the rate
 * the socket stops being read until the bucket refills, so TCP itself slows a flooding client down —
 * nothing is dropped and nothing queues in the console (what mosquitto and EMQX do for rate limits).
 * A second bucket counts its bytes (EMQX's bytes_rate): a client sending few but huge packets is
 * slowed the same way.
 *
 * The other direction: what the broker writes to a client is handed to its socket at once, so that
 * aedes never waits for one client's drain (it did, with a delivery concurrency shared by every
 * client: one consumer that stopped reading held everyone's messages up to its 60 s drain timeout);
 * and a client whose unread bytes pass `maxQueuedBytes` is dropped as a slow consumer (mosquitto's
 * max_queued_bytes, EMQX's mqueue): a bound on the memory one client can hold in the console.
 */
import { Duplex } from 'node:stream'
import type { Socket } from 'node:net'

export interface GuardLimits {
  maxConnectBytes: number
  maxPacketBytes: number
  /** Bytes written to the client that its socket has not yet handed to the kernel; past it, the client is dropped. */
  maxQueuedBytes: number
}

export class PacketGuard {
  private first = true
  private state: 'header' | 'length' | 'body' = 'header'
  private type = 0
  private length = 0
  private multiplier = 1
  private lengthBytes = 0
  private remaining = 0
  /** PUBLISH packets whose header was read since the last `takePublishes()`. */
  private publishes = 0
  violation: string | null = null

  takePublishes(): number {
    const n = this.publishes
    this.publishes = 0
    return n
  }

  constructor(private readonly limits: GuardLimits) {}

  /** Scans a chunk; false (and `violation` set) when the connection must be dropped. */
  feed(chunk: Uint8Array): boolean {
    let i = 0
    while (i < chunk.length) {
      if (this.state === 'body') {
        const take = Math.min(this.remaining, chunk.length - i)
        this.remaining -= take
        i += take
        if (this.remaining === 0) this.state = 'header'
        continue
      }
      const byte = chunk[i++]!
      if (this.state === 'header') {
        this.type = byte >> 4
        if (this.first && this.type !== 1) return this.fail(`first packet is type ${this.type}, not CONNECT`)
        if (this.type === 3) this.publishes++
        this.state = 'length'
        this.length = 0
        this.multiplier = 1
        this.lengthBytes = 0
        continue
      }
      // remaining length, 7 bits per byte, least significant first
      this.length += (byte & 0x7f) * this.multiplier
      this.multiplier *= 128
      if (++this.lengthBytes > 4) return this.fail('malformed remaining length')
      if (byte & 0x80) continue
      const limit = this.first ? this.limits.maxConnectBytes : this.limits.maxPacketBytes
      if (this.length > limit)
        return this.fail(`${this.first ? 'CONNECT' : `packet type ${this.type}`} declares ${this.length} bytes, over the ${limit}-byte limit`)
      this.first = false
      this.remaining = this.length
      this.state = this.remaining > 0 ? 'body' : 'header'
    }
    return true
  }

  private fail(reason: string): false {
    this.violation = reason
    return false
  }
}

export interface PublishRate {
  perSecond: number
  burst: number
  /** Bytes per second the client may send (every packet counted); absent: no byte limit. */
  bytesPerSecond?: number
  /** Bytes it may send at once above that rate. */
  burstBytes?: number
}

/**
 * The guarded stream: `limitPublishes` sets (or lifts, null) the client's PUBLISH rate; `queuedBytes`
 * is what was written to the client and not yet taken by the kernel.
 */
export type GuardedStream = Duplex & { limitPublishes(rate: PublishRate | null): void; queuedBytes(): number }

/** The socket as aedes sees it: the same bytes, unless the guard drops the connection. */
export function guardSocket(socket: Socket, limits: GuardLimits, onViolation: (reason: string) => void): GuardedStream {
  const guard = new PacketGuard(limits)
  let rate: PublishRate | null = null
  let tokens = 0
  let byteTokens = 0
  let at = 0
  // The socket is read when aedes wants bytes and the client is not over its rate.
  let wanted = true
  let throttled: NodeJS.Timeout | null = null
  const flow = () => {
    if (wanted && !throttled && !socket.destroyed) socket.resume()
    else socket.pause()
  }
  /** Whether `bytes` more may be queued for the client; if not, the client is dropped as a slow consumer. */
  const room = (bytes: number): boolean => {
    if (socket.writableLength + bytes <= limits.maxQueuedBytes) return true
    onViolation(
      `slow consumer: ${socket.writableLength} bytes written to it not yet read, and ${bytes} more would pass the ${limits.maxQueuedBytes}-byte limit`
    )
    socket.destroy()
    stream.destroy()
    return false
  }
  // Written through to the socket and acknowledged at once: the socket's own buffer is the client's
  // queue (bounded by `room`), and the broker never waits on it.
  const stream = new Duplex({
    // nothing stays in this stream's own buffer (every write is acknowledged at once): a high mark
    // that a packet cannot reach keeps write() from asking aedes to wait for a drain
    writableHighWaterMark: 2 ** 30,
    read() {
      wanted = true
      flow()
    },
    write(chunk: Buffer, _enc, cb) {
      if (!socket.destroyed && room(chunk.length)) socket.write(chunk)
      cb()
    },
    // aedes writes a packet in pieces (header, topic, payload) under cork(): one writev to the socket, not one send each.
    writev(chunks, cb) {
      const bytes = chunks.reduce((n, c) => n + (c.chunk as Buffer).length, 0)
      if (!socket.destroyed && room(bytes)) {
        socket.cork()
        for (const c of chunks) socket.write(c.chunk as Buffer)
        socket.uncork()
      }
      cb()
    },
    final(cb) {
      socket.end(cb)
    },
    destroy(err, cb) {
      socket.destroy()
      cb(err)
    }
  })
  socket.on('data', (chunk: Buffer) => {
    if (!guard.feed(chunk)) {
      onViolation(guard.violation!)
      socket.destroy()
      stream.destroy()
      return
    }
    const n = guard.takePublishes()
    if (rate && (n > 0 || rate.bytesPerSecond)) {
      const r = rate
      const refill = () => {
        const now = performance.now()
        const dt = (now - at) / 1000
        tokens = Math.min(r.burst, tokens + dt * r.perSecond)
        if (r.bytesPerSecond) byteTokens = Math.min(r.burstBytes ?? r.bytesPerSecond, byteTokens + dt * r.bytesPerSecond)
        at = now
      }
      refill()
      tokens -= n
      if (r.bytesPerSecond) byteTokens -= chunk.length
      // Stop reading until both buckets are back above zero.
      const waitMs = Math.max(tokens < 0 ? (-tokens / r.perSecond) * 1000 : 0, byteTokens < 0 && r.bytesPerSecond ? (-byteTokens / r.bytesPerSecond) * 1000 : 0)
      if (waitMs > 0 && !throttled) {
        throttled = setTimeout(() => {
          throttled = null
          refill()
          flow()
        }, Math.ceil(waitMs))
      }
    }
    if (!stream.push(chunk)) wanted = false
    flow()
  })
  socket.on('end', () => stream.push(null))
  socket.on('error', (err) => stream.destroy(err))
  socket.on('close', () => {
    if (throttled) clearTimeout(throttled)
    stream.destroy()
  })
  return Object.assign(stream, {
    queuedBytes: () => socket.writableLength,
    limitPublishes(r: PublishRate | null) {
      rate = r
      tokens = r ? r.burst : 0
      byteTokens = r ? (r.burstBytes ?? r.bytesPerSecond ?? 0) : 0
      at = performance.now()
    }
  })
}
