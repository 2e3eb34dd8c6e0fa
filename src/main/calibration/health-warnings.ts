/**
 * What the health reports taken with a campaign's chunks say about its measurements: a side that was
 * throttled (the firmware's "now" flags: under-voltage, frequency capped, throttled, soft temperature
 * limit) or whose CPU frequency changed by more than 5 % during the campaign measured at more than one
 * speed. One sentence per finding.
 */
import { throttling } from '../../shared/contracts/health.js'
import type { Health } from '../../shared/contracts/messages.js'
import type { Side } from '../../shared/algorithms/latency.js'

export function healthWarnings(rows: readonly { side: Side; health: unknown }[]): string[] {
  const out: string[] = []
  for (const side of ['device', 'edge'] as const) {
    const hs = rows.filter((r) => r.side === side).map((r) => r.health as Health)
    if (!hs.length) continue
    const who = side === 'device' ? 'the device' : 'the edge'
    const now = hs.map((h) => throttling(h.throttled).now).filter((flags) => flags.length)
    if (now.length) {
      const flags = [...new Set(now.flat())]
      out.push(`${who} was throttled at ${now.length} of ${hs.length} chunks (${flags.join(', ')}): its measurements may be slower than its steady speed`)
    }
    const mhz = hs.map((h) => h.cpuCurMHz).filter((v): v is number => v !== null)
    if (mhz.length > 1) {
      const lo = Math.min(...mhz)
      const hi = Math.max(...mhz)
      if (hi > lo * 1.05)
        out.push(
          `${who}'s CPU frequency changed during the campaign (${lo}–${hi} MHz): its measurements mix speeds (a fixed governor such as "performance" avoids it)`
        )
    }
    const temps = hs.map((h) => h.temperatureC).filter((v): v is number => v !== null)
    if (temps.length && Math.max(...temps) >= 80) out.push(`${who} reached ${Math.max(...temps)} °C: close to where a Raspberry Pi throttles`)
  }
  return out
}
