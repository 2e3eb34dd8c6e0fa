/**
 * Two co-inference runs side by side (issue 35 item 10): every measure of their summaries with its
 * difference and which run is better on it, their end-to-end latency quantiles, and the difference at
 * p50 and p95 beside the measurement's own noise — a 95 % percentile-bootstrap interval over each
 * run's inferences (Efron & Tibshirani 1993), seeded so the same runs always compare the same way.
 * What the numbers cannot show (a different model, device, requirement, uplink or plan) is listed;
 * stage medians under 0.05 ms in both runs are left out, and a difference under 1 % names no better run.
 */
import { quantileSorted } from 'simple-statistics'
import type { ComparisonRow, RunComparison, RunView } from '../contracts/console-api.js'
import { shortNumber } from '../text.js'

export const COMPARE_QUANTILES = [0.05, 0.25, 0.5, 0.75, 0.95, 0.99] as const
export const BOOTSTRAP_RESAMPLES = 1000
/** Each run's inferences resampled at most this many (evenly chosen beyond): bounds a comparison's cost. */
const BOOTSTRAP_MAX = 2000

type Direction = 'lower' | 'higher' | null

/** A small deterministic generator (mulberry32): the bootstrap is reproducible. */
function rng(seed: number): () => number {
  let t = seed >>> 0
  return () => {
    t = (t + 0x6d2b79f5) >>> 0
    let r = Math.imul(t ^ (t >>> 15), 1 | t)
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296
  }
}

function evenly(sorted: readonly number[], n: number): number[] {
  if (sorted.length <= n) return [...sorted]
  return Array.from({ length: n }, (_, i) => sorted[Math.floor((i * sorted.length) / n)]!)
}

/** b − a at quantile q, with its 95 % percentile-bootstrap interval. */
export function bootstrapDifference(
  a: readonly number[],
  b: readonly number[],
  q: number,
  resamples = BOOTSTRAP_RESAMPLES,
  seed = 1
): { deltaMs: number; lowMs: number; highMs: number; clear: boolean } {
  const sa = evenly(
    [...a].sort((x, y) => x - y),
    BOOTSTRAP_MAX
  )
  const sb = evenly(
    [...b].sort((x, y) => x - y),
    BOOTSTRAP_MAX
  )
  const deltaMs = quantileSorted(sb, q) - quantileSorted(sa, q)
  const next = rng(seed)
  const draw = (s: number[], into: Float64Array) => {
    for (let i = 0; i < s.length; i++) into[i] = s[Math.floor(next() * s.length)]!
    into.sort()
    return quantileSorted(into as unknown as number[], q)
  }
  const ba = new Float64Array(sa.length)
  const bb = new Float64Array(sb.length)
  const diffs = new Float64Array(resamples)
  for (let r = 0; r < resamples; r++) diffs[r] = draw(sb, bb) - draw(sa, ba)
  diffs.sort()
  const lowMs = quantileSorted(diffs as unknown as number[], 0.025)
  const highMs = quantileSorted(diffs as unknown as number[], 0.975)
  return { deltaMs, lowMs, highMs, clear: lowMs > 0 || highMs < 0 }
}

/** A difference under 1 % of the larger value names no better run (a stage of 0.01 ms against 0.01 ms). */
const TIE = 0.01
/** Stage medians under this in both runs are left out (ms): a dozen rows of 0.00 say nothing. */
const STAGE_SHOWN_MS = 0.05

function row(measure: string, unit: string, a: number | null | undefined, b: number | null | undefined, dir: Direction): ComparisonRow {
  const av = a ?? null
  const bv = b ?? null
  const delta = av !== null && bv !== null ? bv - av : null
  const tie = delta === null || Math.abs(delta) <= TIE * Math.max(Math.abs(av!), Math.abs(bv!))
  const better = tie || dir === null ? null : delta! < 0 === (dir === 'lower') ? 'b' : 'a'
  return { measure, unit, a: av, b: bv, delta, better }
}

/** A value in a line that says what differs: numbers short (1399.441624848761 → 1399). */
const shown = (v: unknown): unknown => (typeof v === 'number' ? shortNumber(v) : v)

const planText = (r: RunView): string | null => {
  const p = r.summary?.plan
  return p ? `exit ${p.exit}, ${p.deviceLayers}/${p.layers} layers on the device${p.codec && p.codec !== 'f32' ? `, ${p.codec}` : ''}` : null
}

/** Two runs side by side; `e2eA`/`e2eB`: each run's completed inferences' end-to-end latencies, ms. */
export function compareRuns(a: RunView, b: RunView, e2eA: readonly number[], e2eB: readonly number[]): RunComparison {
  const sa = a.summary
  const sb = b.summary
  const rows: ComparisonRow[] = [
    row('inferences completed', '', sa?.completed, sb?.completed, null),
    row('lost', '', sa?.lost, sb?.lost, 'lower'),
    row('latency requirement', 'ms', sa?.latencyMs, sb?.latencyMs, null),
    row('uplink planned for', 'kbps', sa?.uplinkKbps, sb?.uplinkKbps, null),
    row('predicted (first plan)', 'ms', sa?.plan.predictedMs, sb?.plan.predictedMs, null),
    row('p50 end to end', 'ms', sa?.p50Ms, sb?.p50Ms, 'lower'),
    row('p95 end to end', 'ms', sa?.p95Ms, sb?.p95Ms, 'lower'),
    row('requirement met', 'share', sa?.metShare, sb?.metShare, 'higher'),
    row('accuracy', 'share', sa?.accuracy, sb?.accuracy, 'higher'),
    row('plan changes', '', sa?.planChanges, sb?.planChanges, null),
    row('prediction error, corrected', 'MAPE', sa?.prediction.mapeCorrected, sb?.prediction.mapeCorrected, 'lower'),
    row('prediction error, uncorrected', 'MAPE', sa?.prediction.mapeUncorrected, sb?.prediction.mapeUncorrected, 'lower')
  ]
  const stages = [...new Set([...Object.keys(sa?.stagesMedianMs ?? {}), ...Object.keys(sb?.stagesMedianMs ?? {})])]
  for (const st of stages) {
    const pick = (s: RunView['summary']) => (s?.stagesMedianMs as Record<string, number> | null | undefined)?.[st]
    if (Math.max(pick(sa) ?? 0, pick(sb) ?? 0) < STAGE_SHOWN_MS) continue
    rows.push(row(`stage ${st.replace(/Ms$/, '')} (median)`, 'ms', pick(sa), pick(sb), 'lower'))
  }
  const differs: string[] = []
  const note = (what: string, x: unknown, y: unknown) => {
    if (x !== y) differs.push(`${what}: ${shown(x) ?? 'not recorded'} → ${shown(y) ?? 'not recorded'}`)
  }
  note('device', a.agentId, b.agentId)
  note('model', a.model, b.model)
  note('latency requirement (ms)', sa?.latencyMs, sb?.latencyMs)
  note('percentile', sa?.percentile ?? 'typical', sb?.percentile ?? 'typical')
  // A live estimate moves from run to run: only a fixed uplink, or estimates 25 % apart, make runs unlike.
  const ua = sa?.uplinkKbps
  const ub = sb?.uplinkKbps
  const fixed = sa?.bandwidthSource === 'fixed' || sb?.bandwidthSource === 'fixed'
  if (ua !== undefined && ub !== undefined && (fixed || Math.abs(ub - ua) > 0.25 * Math.max(ua, ub))) note('uplink (kbps)', ua, ub)
  note('bandwidth', sa?.bandwidthSource, sb?.bandwidthSource)
  note('first plan', planText(a), planText(b))
  const sortedA = [...e2eA].sort((x, y) => x - y)
  const sortedB = [...e2eB].sort((x, y) => x - y)
  const q = (s: number[], p: number) => (s.length ? quantileSorted(s, p) : null)
  return {
    runs: [a, b],
    rows,
    differs,
    quantiles: COMPARE_QUANTILES.map((p) => ({ q: p, a: q(sortedA, p), b: q(sortedB, p) })),
    differences:
      sortedA.length >= 2 && sortedB.length >= 2
        ? [0.5, 0.95].map((p, i) => ({ q: p, ...bootstrapDifference(sortedA, sortedB, p, BOOTSTRAP_RESAMPLES, 1 + i) }))
        : []
  }
}

/** How a comparison's values are shown (the CLI and the page each pass their own number formats). */
export interface ComparisonFormat {
  ms: (v: number) => string
  pct: (fraction: number) => string
}

/** A comparison value as shown: shares and errors as percentages, milliseconds as ms, the rest to 2 decimals. */
export function comparisonCell(v: ComparisonRow['a'], unit: string, f: ComparisonFormat): string {
  if (v === null) return '—'
  if (typeof v === 'string') return v
  if (unit === 'share' || unit === 'MAPE') return f.pct(v)
  return unit === 'ms' ? f.ms(v) : String(Math.round(v * 100) / 100)
}

/** b − a as shown: signed, and a difference that rounds to nothing shown as the zero it rounds to. */
export function comparisonDelta(r: ComparisonRow, f: ComparisonFormat): string {
  if (r.delta === null) return ''
  const t = comparisonCell(r.delta, r.unit, f)
  const zero = comparisonCell(0, r.unit, f)
  return t === zero || t === `-${zero}` ? zero : `${r.delta > 0 ? '+' : ''}${t}`
}
