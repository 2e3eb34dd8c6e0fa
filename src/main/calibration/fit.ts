/**
 * Fitting a calibration profile from a campaign's measurements: per side and regression key, an
 * ordinary least-squares fit on the training configurations, checked on the held-out ones (every
 * fourth configuration of the grid, fixed by the grid's order).
 */
import type { FitReport } from '../../shared/contracts/console-api.js'
import { product, type Layer } from '../../shared/contracts/manifest.js'
import { median } from 'simple-statistics'
import { forestPredict } from '../../shared/algorithms/forest.js'
import { fitForest } from './forest-fit.js'
import {
  FEATURES,
  FIT_FEATURES,
  SIDES,
  fitRegression,
  fitStats,
  predictSumOfOps,
  evaluateRegression,
  type CalibrationProfile,
  type FitPoint,
  type FitStats,
  type Regression,
  type RegressionKey,
  type Side
} from '../../shared/algorithms/latency.js'

export interface MeasurementRow {
  side: Side
  /** The configuration (its spec as JSON): rows of one configuration are passes over it. */
  config?: string
  regressionKey: RegressionKey
  features: number[]
  runMs: number
  loadMs: number
  modelBytes: number
  heldOut: boolean
}

export type { FitReport } from '../../shared/contracts/console-api.js'

/**
 * One row per side and configuration: the fastest pass's run time (interference only ever adds
 * time), the median pass's load time. Rows without a configuration are kept as they are.
 */
export function aggregatePasses<R extends { side: Side; config?: string; runMs: number; loadMs: number }>(rows: readonly R[]): R[] {
  const out: R[] = []
  const groups = new Map<string, R[]>()
  for (const r of rows) {
    if (r.config === undefined) out.push(r)
    else {
      const k = `${r.side}\u0000${r.config}`
      const g = groups.get(k)
      if (g) g.push(r)
      else groups.set(k, [r])
    }
  }
  for (const g of groups.values()) {
    const fastest = g.reduce((a, b) => (b.runMs < a.runMs ? b : a))
    out.push({ ...fastest, loadMs: median(g.map((r) => r.loadMs)) })
  }
  return out
}

/** y = median(measured): every coefficient zero. For a layer type whose variables never vary. */
export function fitConstant(key: RegressionKey, points: readonly FitPoint[], names: readonly string[] = FEATURES[key]): Regression & FitStats {
  const reg: Regression = { features: [...names], coefficients: names.map(() => 0), intercept: median(points.map((p) => p.y)) }
  return { ...reg, ...fitStats(reg, points) }
}

/** A regression is fitted only on at least this many training points per parameter (coefficients + intercept). */
export const POINTS_PER_PARAMETER = 3

/**
 * Fit hygiene: the campaign's variables when there are ≥ 3 training points per parameter and a
 * held-out point to check them on; else the paper's (fewer) variables under the same rule; else a
 * constant (the median of what was measured), which is also what sizes that never vary get. A fit
 * that fell back says why (`fallback`), in the profile (its regression's note), the report, the UI
 * and the export. Null when there is no training point at all.
 */
export function chooseFit(
  key: RegressionKey,
  train: readonly FitPoint[],
  held: readonly FitPoint[],
  names: readonly string[]
): { fit: Regression & FitStats; fallback: string | null; width: number } | null {
  if (train.length === 0) return null
  const reasons: string[] = []
  const forms = [names, ...(FEATURES[key].length < names.length && names.length === FIT_FEATURES[key].length ? [FEATURES[key]] : [])]
  for (const [i, form] of forms.entries()) {
    const needed = POINTS_PER_PARAMETER * (form.length + 1)
    const label = i === 0 ? `${form.length + 1}-parameter fit (${form.join(', ')})` : `the paper's ${form.length + 1}-parameter form (${form.join(', ')})`
    if (train.length < needed) {
      reasons.push(`${label} needs ${needed} training points, has ${train.length}`)
      continue
    }
    if (held.length === 0) {
      reasons.push(`${label} has no held-out point to check it on`)
      break
    }
    try {
      // The paper's variables are the first of the campaign's (FIT_FEATURES = FEATURES + macs).
      const fit = fitRegression(key, narrow(train, form.length), { features: form, weighting: 'relative' })
      return { fit, fallback: i === 0 ? null : `fell back to the paper's form: ${reasons.join('; ')}`, width: form.length }
    } catch (err) {
      // Sizes that never vary (the served model's softmax and dropout layers): no slope to fit.
      reasons.push(`${label}: ${(err as Error).message}`)
    }
  }
  return { fit: fitConstant(key, train, names), fallback: `constant (median of ${train.length}): ${reasons.join('; ')}`, width: names.length }
}

/** Points with only their first `width` variables. */
const narrow = (points: readonly FitPoint[], width: number): FitPoint[] => points.map((p) => (p.x.length === width ? p : { x: p.x.slice(0, width), y: p.y }))

/**
 * Fits every key's regression per side from a campaign's rows. For blocks, the fitted block term is
 * compared on the held-out blocks with the sum over their ops (the other keys' regressions of the same
 * side; `layerOf` gives a row's layer record with its ops): the better of the two is what the profile
 * predicts blocks with (`preferSum`), and both figures are kept.
 */
export function fitProfile(
  id: string,
  name: string,
  rows: readonly MeasurementRow[],
  source: Record<string, unknown>,
  layerOf: (config: string) => Layer | null = () => null
): { profile: CalibrationProfile; report: FitReport[] } {
  const report: FitReport[] = []
  const sides: Record<Side, Partial<Record<RegressionKey, Regression>>> = { device: {}, edge: {} }
  const passes = aggregatePasses(rows)
  const junctions: Partial<Record<Side, JunctionFit>> = {}
  const gridHeldOut: Partial<Record<Side, { linear: number | null; paper: number | null; forest: number | null; n: number }>> = {}
  for (const side of SIDES) {
    const mine = passes.filter((r) => r.side === side)
    const groups = new Map<RegressionKey, { train: FitPoint[]; held: FitPoint[] }>()
    const add = (key: RegressionKey, p: FitPoint, held: boolean) => {
      const g = groups.get(key) ?? { train: [], held: [] }
      ;(held ? g.held : g.train).push(p)
      groups.set(key, g)
    }
    for (const r of mine) {
      add(r.regressionKey, { x: r.features, y: r.runMs }, r.heldOut)
      // model-loading points only where a whole model was loaded (not for layers of the served model)
      if (r.modelBytes > 0) add('modelLoad', { x: [r.modelBytes], y: r.loadMs }, r.heldOut)
    }
    for (const [key, g] of groups) {
      // The variables the points carry: FIT_FEATURES (this version's campaigns) or the paper's
      // (measurements imported from an older export).
      const width = g.train[0]?.x.length ?? g.held[0]?.x.length ?? FEATURES[key].length
      const names = FIT_FEATURES[key].length === width ? FIT_FEATURES[key] : FEATURES[key]
      const chosen = chooseFit(key, g.train, g.held, names)
      if (!chosen) {
        report.push({
          side,
          key,
          n: 0,
          r2: null,
          mape: null,
          heldOutN: g.held.length,
          heldOutMape: null,
          heldOutR2: null,
          error: 'no training point: no regression'
        })
        continue
      }
      const { fit, fallback } = chosen
      const held = fitStats(fit, narrow(g.held, chosen.width))
      const { n, r2, mape, ...reg } = fit
      // The tree ensemble beside the linear fit, on the same points (not for blocks, whose sum over ops is
      // compared separately, nor model loading).
      const forest = key === 'block' || key === 'modelLoad' ? null : fitForest(names, g.train, g.held)
      // The paper's variables alone, where the campaign's form has more and was fitted (not a fallback).
      const paperForm = !fallback && chosen.width > FEATURES[key].length ? fitPaperForm(key, g.train, g.held) : null
      sides[side][key] = {
        ...reg,
        n,
        r2,
        mape,
        heldOut: { n: held.n, r2: held.r2, mape: held.mape },
        ...(fallback ? { note: fallback } : {}),
        ...(forest ? { forest } : {}),
        ...(paperForm ? { paperForm } : {})
      }
      report.push({
        side,
        key,
        n,
        r2,
        mape,
        heldOutN: held.n,
        heldOutMape: held.mape,
        heldOutR2: held.r2,
        ...(forest ? { forestHeldOutMape: forest.heldOut?.mape ?? null } : {}),
        ...(paperForm ? { paperHeldOutMape: paperForm.heldOut?.mape ?? null } : {}),
        ...(fallback ? { error: fallback, fallback: true } : {})
      })
    }
    gridHeldOut[side] = pooledHeldOut(sides[side], mine)
    compareBlocks(side, sides[side], report, mine, layerOf)
    const j = fitJunctions(side, sides[side], mine, layerOf)
    if (j) junctions[side] = j
  }
  const profile: CalibrationProfile = {
    format: 'edgent-calibration',
    schema: 1,
    id,
    name,
    createdAt: new Date().toISOString(),
    units: { latency: 'ms', size: 'elements', modelSize: 'bytes' },
    device: sides.device,
    edge: sides.edge,
    overheadMs: 0,
    // Layers were timed one session each; a plan runs one session per segment (junctionMs) — with
    // junction terms fitted on the grid's blocks on both sides. Without them (a model campaign has
    // no blocks) the plain sum: the fallback junction (a single-Dropout run per junction) took back
    // a model campaign's whole dropout time at each of 23 junctions, and put the final exit on a
    // Pi-class device at 100 Mbps (Chromium test, Planner page).
    composition: junctions.device && junctions.edge ? 'fused' : 'sum',
    regressor: 'linear',
    gridHeldOut,
    ...(Object.keys(junctions).length ? { junctions } : {}),
    source
  }
  return { profile, report }
}

/** The paper's variables alone on the same points (the first of the campaign's), with its held-out error; null when it cannot be fitted. */
function fitPaperForm(key: RegressionKey, train: readonly FitPoint[], held: readonly FitPoint[]): Regression['paperForm'] | null {
  const width = FEATURES[key].length
  try {
    const fit = fitRegression(key, narrow(train, width), { features: FEATURES[key], weighting: 'relative' })
    const h = fitStats(fit, narrow(held, width))
    return { features: [...FEATURES[key]], coefficients: fit.coefficients, intercept: fit.intercept, heldOut: { n: h.n, mape: h.mape } }
  } catch {
    return null
  }
}

/**
 * The held-out grid error of each regressor of one side, pooled over every held-out configuration
 * (blocks and model loading aside): the linear fits, the paper's variables alone and the tree
 * ensembles, each where a key has it (its linear fit elsewhere, as a profile with that regressor predicts).
 */
function pooledHeldOut(
  fits: Partial<Record<RegressionKey, Regression>>,
  rows: readonly MeasurementRow[]
): { linear: number | null; paper: number | null; forest: number | null; n: number } {
  let lin = 0
  let pa = 0
  let fo = 0
  let n = 0
  for (const r of rows) {
    const reg = fits[r.regressionKey]
    if (!r.heldOut || !(r.runMs > 0) || !reg || r.regressionKey === 'block') continue
    const x = r.features.slice(0, reg.coefficients.length)
    const linear = evaluateRegression(reg, x)
    lin += Math.abs(linear - r.runMs) / r.runMs
    fo += Math.abs((reg.forest ? forestPredict(reg.forest, r.features) : linear) - r.runMs) / r.runMs
    pa += Math.abs((reg.paperForm ? evaluateRegression(reg.paperForm, r.features.slice(0, reg.paperForm.coefficients.length)) : linear) - r.runMs) / r.runMs
    n++
  }
  return { linear: n ? lin / n : null, paper: n ? pa / n : null, forest: n ? fo / n : null, n }
}

export type JunctionFit = {
  fixedMs: number
  perElementMs: number
  n: number
  /** Held-out blocks: MAPE of the sum over ops with the junctions, and without. */
  heldOut: { n: number; mape: number | null; sumMape: number | null }
}

/**
 * The junction terms of one side (latency.ts, junctionMs), fitted on the grid's multi-op blocks —
 * segments of several ops run as one session, like a plan's: each block's measured time minus the
 * sum of its ops' predictions is −Σ over its internal tensors (fixed + perElement × elements), by
 * least squares on relative error over the training blocks, checked on the held-out ones. Null
 * without at least 6 training blocks (3 per term) or when an op has no regression here.
 */
export function fitJunctions(
  side: Side,
  fits: Partial<Record<RegressionKey, Regression>>,
  rows: readonly MeasurementRow[],
  layerOf: (config: string) => Layer | null
): JunctionFit | null {
  const { block: _term, ...ops } = fits
  const sum = { format: 'edgent-calibration', schema: 1, id: 'sum-of-ops', device: ops, edge: ops, overheadMs: 0, composition: 'sum' } as CalibrationProfile
  const pts: { k: number; e: number; sum: number; y: number; held: boolean }[] = []
  for (const r of rows) {
    if (r.side !== side || r.regressionKey !== 'block' || !r.config || !(r.runMs > 0)) continue
    const layer = layerOf(r.config)
    const nodes = layer?.type === 'block' ? (layer.nodes ?? []) : []
    if (nodes.length < 2) continue
    let s: number
    try {
      s = predictSumOfOps(sum, side, nodes)
    } catch {
      return null
    }
    const internal = nodes.slice(0, -1)
    pts.push({ k: internal.length, e: internal.reduce((a, n) => a + product(n.outputShape), 0), sum: s, y: r.runMs, held: r.heldOut })
  }
  const train = pts.filter((p) => !p.held)
  if (train.length < 6) return null
  // Weighted least squares (weights 1/y) for sum − y = fixed·k + perElement·e, no intercept.
  let a11 = 0
  let a12 = 0
  let a22 = 0
  let b1 = 0
  let b2 = 0
  for (const p of train) {
    const w = 1 / p.y ** 2
    a11 += w * p.k * p.k
    a12 += w * p.k * p.e
    a22 += w * p.e * p.e
    b1 += w * p.k * (p.sum - p.y)
    b2 += w * p.e * (p.sum - p.y)
  }
  const det = a11 * a22 - a12 * a12
  if (!(Math.abs(det) > 1e-12 * a11 * a22)) return null
  const fixedMs = (b1 * a22 - b2 * a12) / det
  const perElementMs = (a11 * b2 - a12 * b1) / det
  if (!Number.isFinite(fixedMs) || !Number.isFinite(perElementMs)) return null
  const held = pts.filter((p) => p.held)
  const mape = (f: (p: (typeof pts)[number]) => number) => (held.length ? held.reduce((a, p) => a + Math.abs(f(p) - p.y) / p.y, 0) / held.length : null)
  return {
    fixedMs,
    perElementMs,
    n: train.length,
    heldOut: { n: held.length, mape: mape((p) => p.sum - fixedMs * p.k - perElementMs * p.e), sumMape: mape((p) => p.sum) }
  }
}

/** The block term against the sum over ops on the held-out blocks of one side (see fitProfile). */
function compareBlocks(
  side: Side,
  fits: Partial<Record<RegressionKey, Regression>>,
  report: FitReport[],
  rows: readonly MeasurementRow[],
  layerOf: (config: string) => Layer | null
): void {
  const term = fits.block
  const entry = report.find((r) => r.side === side && r.key === 'block')
  if (!term || !entry) return
  const held = rows.flatMap((r) => {
    if (r.regressionKey !== 'block' || !r.heldOut || !r.config || !(r.runMs > 0)) return []
    const layer = layerOf(r.config)
    return layer?.type === 'block' && layer.nodes?.length ? [{ layer, runMs: r.runMs }] : []
  })
  if (!held.length) return
  const { block: _term, ...others } = fits
  const withoutTerm = { format: 'edgent-calibration', schema: 1, id: 'sum-of-ops', device: others, edge: others, overheadMs: 0 } as CalibrationProfile
  let err = 0
  try {
    for (const h of held) err += Math.abs(predictSumOfOps(withoutTerm, side, h.layer.type === 'block' ? (h.layer.nodes ?? []) : []) - h.runMs) / h.runMs
  } catch {
    return // an op of the blocks has no regression on this side: only the term can predict them
  }
  const sumMape = err / held.length
  // A term that fell back to a constant predicts every block alike, whatever its size: it may beat
  // the sum on the grid's blocks (all small) and still miss an imported model's by far (the camera
  // model's: docs/DESIGN.md, "Latency"). The sum scales with the block; the constant is kept for
  // blocks without their ops (older manifests).
  const constant = term.coefficients.every((c) => c === 0)
  const preferSum = constant || entry.heldOutMape === null || sumMape < entry.heldOutMape
  fits.block = { ...term, preferSum, sumHeldOut: { n: held.length, mape: sumMape } }
  entry.sumHeldOutMape = sumMape
  entry.preferSum = preferSum
}

/** A stored profile's fit report (the figures each regression keeps beside its coefficients). */
export function reportFromProfile(profile: CalibrationProfile): FitReport[] {
  const p = profile as unknown as Record<
    'device' | 'edge',
    Record<string, { n?: number; r2?: number | null; mape?: number | null; heldOut?: { n: number; mape: number | null; r2: number | null } }>
  >
  const out: FitReport[] = []
  for (const side of ['device', 'edge'] as const) {
    for (const [key, r] of Object.entries(p[side] ?? {})) {
      out.push({
        side,
        key: key as FitReport['key'],
        n: r.n ?? 0,
        r2: r.r2 ?? null,
        mape: r.mape ?? null,
        heldOutN: r.heldOut?.n ?? 0,
        heldOutMape: r.heldOut?.mape ?? null,
        heldOutR2: r.heldOut?.r2 ?? null
      })
    }
  }
  return out
}
