/**
 * Number fields that refuse what they cannot take instead of changing it (a count of 0 is not run as
 * 1, −1 ms is not run as 1 ms): the text the user typed, parsed, or the reason it was refused.
 */
export interface NumberRule {
  /** The field's name in the message ("inferences", "latency requirement (ms)"). */
  name: string
  min?: number
  /** Exclusive lower bound (a requirement must be > 0). */
  above?: number
  max?: number
  integer?: boolean
}

export type Parsed = { ok: true; value: number } | { ok: false; error: string }

export function parseNumber(text: string, r: NumberRule): Parsed {
  const t = text.trim()
  if (t === '') return { ok: false, error: `${r.name}: enter a number` }
  const v = Number(t)
  if (!Number.isFinite(v)) return { ok: false, error: `${r.name}: "${t}" is not a number` }
  if (r.integer && !Number.isInteger(v)) return { ok: false, error: `${r.name}: a whole number, not ${t}` }
  if (r.above !== undefined && !(v > r.above)) return { ok: false, error: `${r.name}: must be more than ${r.above}, not ${t}` }
  if (r.min !== undefined && v < r.min) return { ok: false, error: `${r.name}: at least ${r.min}, not ${t}` }
  if (r.max !== undefined && v > r.max) return { ok: false, error: `${r.name}: at most ${r.max.toLocaleString('en')}, not ${t}` }
  return { ok: true, value: v }
}

/** Parses several fields at once: the values, or every refusal. */
export function parseAll<K extends string>(fields: Record<K, [string, NumberRule]>): { ok: true; values: Record<K, number> } | { ok: false; errors: string[] } {
  const values = {} as Record<K, number>
  const errors: string[] = []
  for (const k of Object.keys(fields) as K[]) {
    const [text, rule] = fields[k]
    const p = parseNumber(text, rule)
    if (p.ok) values[k] = p.value
    else errors.push(p.error)
  }
  return errors.length ? { ok: false, errors } : { ok: true, values }
}
