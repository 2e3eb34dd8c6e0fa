/**
 * Text from outside (a device's hello, an uploaded file's name, a class list) as it may be shown:
 * control characters (NUL and the rest of C0, DEL, C1) and Unicode's bidirectional controls (U+202E
 * turns `gpj.exe` around on screen) become U+FFFD, visibly replaced rather than silently dropped.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

export const safeText = (s: string): string => s.replace(UNSAFE, '\uFFFD')

/** 6.666666666666667 → "6.67", 1399.441624848761 → "1399": three significant digits, and every digit of the integer part. */
export const shortNumber = (v: number): string =>
  Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(Math.max(3, Math.ceil(Math.log10(Math.abs(v) + 1))))))

/** "cpu: cgroup v1 CFS quota (quota 0.15) · uplink: application-level rate limit (kbps 1000)" */
export function emulationText(e: Record<string, unknown> | undefined): string {
  if (!e) return 'none announced (a real device)'
  return Object.entries(e)
    .filter(([k]) => k !== 'kind')
    .map(([k, v]) => {
      if (v && typeof v === 'object') {
        const o = v as Record<string, unknown>
        const extra = Object.entries(o)
          .filter(([kk, vv]) => kk !== 'method' && kk !== 'note' && (typeof vv === 'number' || typeof vv === 'string'))
          .map(([kk, vv]) => `${kk} ${typeof vv === 'number' ? shortNumber(vv) : vv}`)
          .join(', ')
        return `${k}: ${String(o['method'] ?? '')}${extra ? ` (${extra})` : ''}`
      }
      return `${k}: ${String(v)}`
    })
    .join(' · ')
}
