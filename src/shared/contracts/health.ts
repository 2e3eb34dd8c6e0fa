/**
 * The firmware's throttling bits (Raspberry Pi `vcgencmd get_throttled`) in words, and which of them
 * hold now (bits 0–3) or have held since boot (bits 16–19): one reading for the agent's report, the
 * campaign warnings, the CLI and the Fleet page.
 */
const FLAGS: readonly [bit: number, name: string][] = [
  [0, 'under-voltage now'],
  [1, 'frequency capped now'],
  [2, 'throttled now'],
  [3, 'soft temperature limit now'],
  [16, 'under-voltage has occurred'],
  [17, 'frequency capping has occurred'],
  [18, 'throttling has occurred'],
  [19, 'soft temperature limit has occurred']
]

/** The bits that hold now (the others say what happened since boot). */
export const THROTTLED_NOW_BITS = 0xf

export function throttledFlags(bits: number): string[] {
  return FLAGS.filter(([b]) => (bits >> b) & 1).map(([, n]) => n)
}

/** A report's throttling, split into what holds now and what happened since boot (empty lists when none). */
export function throttling(t: { bits: number } | null): { now: string[]; past: string[] } {
  if (!t) return { now: [], past: [] }
  return { now: throttledFlags(t.bits & THROTTLED_NOW_BITS), past: throttledFlags(t.bits & ~THROTTLED_NOW_BITS) }
}
