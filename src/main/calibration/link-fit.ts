/**
 * The math of a layers (or model) campaign's link stage (the campaign runs it: console/features/campaigns/link-stage.ts): what the grid cannot time, measured with real
 * co-inferences of a few probe plans of the served model, pinned, with the device's emulated uplink
 * set to a LAN-class rate (its serialisation wait subtracted), teaching the online correction nothing.
 *
 * - Messaging: what co-inference costs besides the two segments and the serialisation wait —
 *   encoding, the MQTT publish and its acknowledgement, the broker, the hand-offs to and from the
 *   edge's worker, the result's way back. Each inference's residual (end to end minus both segments
 *   minus the wait) is fitted as fixed + perByte × bytes sent, on the first exit edge-only (the
 *   smallest upload) and cut after its first layer (a large one). Measured at 100 Mbps, not faster:
 *   while a frame waits for the link, part of the messaging is done in the meantime, so a probe
 *   with no wait would overstate it on any real link (README, "Predictions against real plans").
 * - Segments as plans run them: a plan's segment runs once per inference, right after messaging and
 *   the other side's work, on a machine busy with both; the grid times layers alone. Per side, the
 *   probes' measured segments against the fitted profile's composed predictions give
 *   fixed + scale × prediction, and where the probes pin them down a cost per element the segment
 *   receives (an edge segment's activation arrives fresh from the network), per element it hands on
 *   (a device segment ending in a large activation) and per ms of idle before it (fitSegments). The
 *   probes: the first and the last exit each side alone, cut after the first layer, in the middle
 *   and three quarters into the last exit, cut before the last layer (whose edge segment is one
 *   small layer: without it the fixed cost of a small segment is a guess), and the middle of the
 *   middle exit.
 *
 * The probes are plans of the served model: a plans campaign reports its error with and without them.
 */
import { Matrix, solve } from 'ml-matrix'
import { median } from 'simple-statistics'
import type { InferRow, LinkStage } from '../../shared/contracts/console-api.js'
import { type CalibrationProfile, type SegmentTerms, segmentTermsMs } from '../../shared/algorithms/latency.js'
import { exitPath, product, type Manifest } from '../../shared/contracts/manifest.js'
import { type CostTable, candidateAt } from '../../shared/algorithms/planner.js'

/** The probes' emulated uplink, kbit/s (100 Mbps: a 100 kB activation waits 8 ms; see above). */
export const LINK_PROBE_KBPS = 100_000
/** Measured co-inferences per probe plan and pass (after one warm-up): 20, as the probes' medians steady the fit (~3 s a pass here). */
export const LINK_PROBE_REPS = 20
/** Passes over the probes in a campaign (a layers campaign: one after each pass over its grid). */
export const LINK_PASSES = 3

/** One inference's residual: end to end minus both segments and the serialisation wait of what it sent. */
export const residualMs = (r: InferRow, kbps: number): number => r.e2eMs - r.deviceMs - r.edgeMs - (r.uploadBytes * 8) / kbps

/** The probe plans of a model: (exit, deviceLayers), deduplicated, in order. */
export function probePlans(m: Manifest): { exit: number; deviceLayers: number }[] {
  const first = m.exits[0]!.exit
  const last = m.exits[m.exits.length - 1]!.exit
  const n1 = exitPath(m, first).length
  const nL = exitPath(m, last).length
  const mid = m.exits[Math.floor(m.exits.length / 2)]!.exit
  const nM = exitPath(m, mid).length
  const all = [
    { exit: first, deviceLayers: 0 },
    { exit: first, deviceLayers: Math.min(1, n1) },
    { exit: first, deviceLayers: Math.max(0, n1 - 1) },
    { exit: first, deviceLayers: n1 },
    { exit: last, deviceLayers: 0 },
    { exit: last, deviceLayers: Math.min(1, nL) },
    { exit: last, deviceLayers: Math.floor(nL / 2) },
    { exit: last, deviceLayers: Math.floor((3 * nL) / 4) },
    { exit: last, deviceLayers: Math.max(0, nL - 1) },
    { exit: last, deviceLayers: nL },
    { exit: mid, deviceLayers: Math.floor(nM / 2) }
  ]
  return all.filter((p, i) => all.findIndex((q) => q.exit === p.exit && q.deviceLayers === p.deviceLayers) === i)
}

/** A messaging model: fixed + perByte × bytes sent [+ perIdle × the device segment before the send], ms. */
export interface MessagingFit {
  fixedMs: number
  perByteMs: number
  perIdleMs?: number
  /** The terms kept, and their leave-one-out mean absolute error on the probes (ms). */
  form: string
  looErrorMs: number | null
}

/** A sending probe: its median residual, the bytes it sent, and the device segment before it (as the profile predicts it). */
export interface MessagingPoint {
  bytes: number
  residualMs: number
  idleMs?: number
}

/**
 * Messaging through the sending probes' median residuals: fixed + perByte × bytes by least squares
 * (both clamped at 0), or, where the probes pin it down, with a cost per ms of the device segment
 * before the send — the console's side of messaging (receipt, hand-off, result) wakes slower after
 * a longer wait (the residual the bytes-only model leaves grows with the device segment before the
 * send: README, "Predictions against real plans"). The idle form is kept only when its leave-one-out error on the probes is
 * lower and its terms are not negative (more bytes or a longer wait never make messaging cheaper).
 */
export function fitMessaging(points: readonly MessagingPoint[]): MessagingFit {
  const bytesOnly = (pts: readonly MessagingPoint[]): { fixedMs: number; perByteMs: number } => {
    const { a, b } = line(pts.map((p) => ({ x: p.bytes, y: p.residualMs })))
    const perByteMs = Math.max(0, b)
    return { fixedMs: Math.max(0, perByteMs === b ? a : median(pts.map((p) => p.residualMs))), perByteMs }
  }
  const withIdle = (pts: readonly MessagingPoint[]): { fixedMs: number; perByteMs: number; perIdleMs: number } | null => {
    try {
      const X = new Matrix(pts.map((p) => [1, p.bytes / 1e6, p.idleMs ?? 0]))
      const [a, b, c] = solve(X, Matrix.columnVector(pts.map((p) => p.residualMs)), true).to1DArray() as [number, number, number]
      if (![a, b, c].every(Number.isFinite) || b < 0 || c < 0 || a < 0) return null
      return { fixedMs: a, perByteMs: b / 1e6, perIdleMs: c }
    } catch {
      return null
    }
  }
  const at = (f: { fixedMs: number; perByteMs: number; perIdleMs?: number }, p: MessagingPoint) =>
    f.fixedMs + f.perByteMs * p.bytes + (f.perIdleMs ?? 0) * (p.idleMs ?? 0)
  const loo = (fitOn: (pts: readonly MessagingPoint[]) => { fixedMs: number; perByteMs: number; perIdleMs?: number } | null): number | null => {
    if (points.length < 3) return null
    let e = 0
    for (let i = 0; i < points.length; i++) {
      const f = fitOn(points.filter((_, j) => j !== i))
      if (!f) return null
      e += Math.abs(at(f, points[i]!) - points[i]!.residualMs)
    }
    return e / points.length
  }
  const plain = { ...bytesOnly(points), form: 'fixed + per byte', looErrorMs: loo(bytesOnly) }
  const idles = points.map((p) => p.idleMs ?? 0)
  // 2 × 3 − 1 probes, and waits that differ (a factor of 2 and a millisecond at least)
  if (points.length < 5 || !(Math.max(...idles) >= Math.max(1, 2 * Math.min(...idles)))) return plain
  const idle = withIdle(points)
  const idleLoo = loo(withIdle)
  if (!idle || idleLoo === null || plain.looErrorMs === null || idleLoo >= plain.looErrorMs) return plain
  return { ...idle, form: 'fixed + per byte + per device ms before', looErrorMs: idleLoo }
}

/** The bounds of a believable segment scale: outside them the probes did not pin the line down. */
export const SEGMENT_SCALE_RANGE = [0.5, 2] as const

/** One probe's segment on one side: the composed prediction, the measured median, and the variables of the extra terms. */
export interface SegmentPoint {
  predictedMs: number
  measuredMs: number
  /** Elements the segment receives (the image, or the activation at the cut). */
  inputElements?: number
  /** The idle before it: an edge segment's is the device segment (0 for edge-only plans). */
  idleMs?: number
  /** Elements the segment hands on (a device segment's: the activation at the cut). */
  outputElements?: number
  /** Its plan sends something (a device segment of a split plan); false for a device-only plan's. */
  sends?: boolean
}

type SegmentVar = 'pred' | 'in' | 'out' | 'idle' | 'sends'
const OPTIONAL_VARS: readonly SegmentVar[] = ['in', 'out', 'idle', 'sends']
/**
 * The forms a segment fit may take: the composed prediction and any of the other variables, simplest
 * first (fewest terms; in the order of OPTIONAL_VARS within a size).
 */
const SEGMENT_FORMS: readonly (readonly SegmentVar[])[] = Array.from({ length: 1 << OPTIONAL_VARS.length }, (_, mask) => [
  'pred' as SegmentVar,
  ...OPTIONAL_VARS.filter((_, i) => mask & (1 << i))
]).sort((a, b) => a.length - b.length)
const varOf = (p: SegmentPoint, v: SegmentVar): number =>
  v === 'pred' ? p.predictedMs : v === 'in' ? (p.inputElements ?? 0) : v === 'out' ? (p.outputElements ?? 0) : v === 'idle' ? (p.idleMs ?? 0) : p.sends ? 1 : 0

/** Weighted (1/measured²) least squares of measured on 1 + vars; null when singular or not finite. */
function solveSegment(points: readonly SegmentPoint[], vars: readonly SegmentVar[]): number[] | null {
  try {
    const X = new Matrix(points.map((p) => [1, ...vars.map((v) => varOf(p, v))].map((x) => x / p.measuredMs)))
    const beta = solve(X, Matrix.columnVector(points.map(() => 1)), true).to1DArray()
    return beta.every(Number.isFinite) ? beta : null
  } catch {
    return null
  }
}

const believable = (beta: readonly number[], vars: readonly SegmentVar[]): boolean =>
  vars.every((v, i) => (v === 'pred' ? beta[i + 1]! >= SEGMENT_SCALE_RANGE[0] && beta[i + 1]! <= SEGMENT_SCALE_RANGE[1] : beta[i + 1]! >= 0))

/** A variable pins a term down when the points hold it at ≥ 2 distinct values spanning a factor of 2 or more. */
const spans = (points: readonly SegmentPoint[], v: SegmentVar): boolean => {
  const xs = points.map((p) => varOf(p, v))
  const lo = Math.min(...xs)
  const hi = Math.max(...xs)
  return hi > 0 && hi >= 2 * lo
}

/**
 * A side's segments as plans run them, from the probes: measured = fixed + scale × predicted
 * [+ perInputElement × input elements] [+ perOutputElement × output elements] [+ perIdle × idle], by least squares on relative error
 * (segments span 0.05 to tens of ms). A form is a candidate when the probes pin it down — at least
 * 2 × parameters − 1 probes (3 for the line, 7 for all four terms), every variable spanning a factor of 2, a scale
 * within SEGMENT_SCALE_RANGE and no negative extra term (more input or more idle never makes a
 * segment faster) — and the candidate with the least leave-one-out error on the probes is chosen
 * (the simpler one on a tie) — unless the offset alone (scale 1, fixed = the weighted mean of
 * measured − predicted) has as little (a line fitted on a few probes can under-predict the plans it
 * was not fitted on). No candidate (a one-exit model's probes, nearly equal predictions): the
 * offset. What each term buys is measured by plans campaigns (README, "Predictions against real
 * plans"; `edgent campaign run --kind plans` scores every variant).
 */
export function fitSegments(points: readonly SegmentPoint[]): SegmentTerms & { form: string; looError: number | null } {
  const usable = points.filter((p) => p.measuredMs > 0 && p.predictedMs >= 0)
  const predict = (beta: readonly number[], vars: readonly SegmentVar[], p: SegmentPoint) => vars.reduce((a, v, i) => a + beta[i + 1]! * varOf(p, v), beta[0]!)
  // The offset alone (weighted 1/measured², as the forms are) competes too, by its own leave-one-out
  // error: a line through noisy probes can predict worse than the composition shifted.
  const offsetOf = (pts: readonly SegmentPoint[]) => {
    const ws = pts.map((p) => 1 / p.measuredMs ** 2)
    const t = ws.reduce((a, v) => a + v, 0)
    return t > 0 ? pts.reduce((a, p, i) => a + ws[i]! * (p.measuredMs - p.predictedMs), 0) / t : 0
  }
  let offsetLoo: number | null = null
  if (usable.length >= 3) {
    offsetLoo = 0
    for (let i = 0; i < usable.length; i++) {
      const p = usable[i]!
      offsetLoo += Math.abs(p.predictedMs + offsetOf(usable.filter((_, j) => j !== i)) - p.measuredMs) / p.measuredMs
    }
    offsetLoo /= usable.length
  }
  let best: { beta: number[]; vars: readonly SegmentVar[]; loo: number } | null = null
  for (const vars of SEGMENT_FORMS) {
    const params = vars.length + 1
    if (usable.length < 2 * params - 1 || !vars.every((v) => spans(usable, v))) continue
    const beta = solveSegment(usable, vars)
    if (!beta || !believable(beta, vars)) continue
    let loo = 0
    for (let i = 0; i < usable.length; i++) {
      const rest = usable.filter((_, j) => j !== i)
      const b = solveSegment(rest, vars) ?? beta
      loo += Math.abs(predict(b, vars, usable[i]!) - usable[i]!.measuredMs) / usable[i]!.measuredMs
    }
    loo /= usable.length
    if (!best || loo < best.loo - 1e-9) best = { beta, vars, loo }
  }
  if (!best || (offsetLoo !== null && offsetLoo <= best.loo)) return { fixedMs: offsetOf(usable), scale: 1, form: 'offset', looError: offsetLoo }
  const { beta, vars } = best
  const coef = (v: SegmentVar) => (vars.includes(v) ? beta[vars.indexOf(v) + 1]! : undefined)
  const perInputElementMs = coef('in')
  const perOutputElementMs = coef('out')
  const perIdleMs = coef('idle')
  const sendingMs = coef('sends')
  return {
    fixedMs: beta[0]!,
    scale: coef('pred')!,
    ...(perInputElementMs !== undefined ? { perInputElementMs } : {}),
    ...(perOutputElementMs !== undefined ? { perOutputElementMs } : {}),
    ...(perIdleMs !== undefined ? { perIdleMs } : {}),
    ...(sendingMs !== undefined ? { sendingMs } : {}),
    form: [
      'fixed',
      ...vars.map(
        (v) => ({ pred: 'scale × composed', in: 'per input element', out: 'per output element', idle: 'per idle ms', sends: 'when the plan sends' })[v]
      )
    ].join(' + '),
    looError: best.loo
  }
}

/** Ordinary least squares y = a + b x (b = 0 when x does not vary). */
function line(pts: readonly { x: number; y: number }[]): { a: number; b: number } {
  const n = pts.length
  if (!n) return { a: 0, b: 0 }
  const mx = pts.reduce((s, p) => s + p.x, 0) / n
  const my = pts.reduce((s, p) => s + p.y, 0) / n
  const sxx = pts.reduce((s, p) => s + (p.x - mx) ** 2, 0)
  const b = sxx > 0 ? pts.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0) / sxx : 0
  return { a: my - b * mx, b }
}

/**
 * The link stage's fits from the probe plans' co-inferences (`got[i]`: the rows of `plans[i]`), against
 * `table` (the fitted profile's raw cost table for the served model, before this stage's terms).
 */
export function fitLinkStage(
  manifest: Manifest,
  plans: readonly { exit: number; deviceLayers: number }[],
  got: readonly InferRow[][],
  table: CostTable
): LinkStage {
  const probes: LinkStage['probes'] = []
  for (const [i, plan] of plans.entries()) {
    const rows = got[i]!
    if (!rows.length) throw new Error(`no co-inference of the link stage's probe (exit ${plan.exit}, ${plan.deviceLayers} device layers) completed`)
    const c = candidateAt(table, plan.exit, plan.deviceLayers)!
    const cutElements = plan.deviceLayers === 0 ? product(manifest.input.shape) : product(exitPath(manifest, plan.exit)[plan.deviceLayers - 1]!.outputShape)
    probes.push({
      ...plan,
      layers: c.layers,
      n: rows.length,
      bytes: median(rows.map((r) => r.uploadBytes)),
      residualMs: median(rows.map((r) => residualMs(r, LINK_PROBE_KBPS))),
      deviceMs: median(rows.map((r) => r.deviceMs)),
      edgeMs: median(rows.map((r) => r.edgeMs)),
      predictedDeviceMs: c.deviceMs,
      predictedEdgeMs: c.edgeMs,
      inputElements: cutElements,
      deviceInputElements: product(manifest.input.shape),
      outputElements: plan.deviceLayers === c.layers ? product(exitPath(manifest, plan.exit).at(-1)!.outputShape) : cutElements
    })
  }
  const sending = probes.filter((p) => p.deviceLayers < p.layers)
  // The device's terms first: an edge segment's idle is the device segment as the profile will predict it.
  const device = fitSegments(
    probes
      .filter((p) => p.deviceLayers > 0)
      .map((p) => ({
        predictedMs: p.predictedDeviceMs,
        measuredMs: p.deviceMs,
        outputElements: p.outputElements,
        inputElements: p.deviceInputElements,
        sends: p.deviceLayers < p.layers
      }))
  )
  // The wait before an edge segment and before the send: the device segment as the profile will predict it.
  const idleOf = (p: (typeof sending)[number]) =>
    p.deviceLayers === 0
      ? 0
      : segmentTermsMs(device, p.predictedDeviceMs, {
          inputElements: p.deviceInputElements ?? 0,
          outputElements: p.outputElements ?? 0,
          idleMs: 0,
          sends: true
        })
  const edge = fitSegments(sending.map((p) => ({ predictedMs: p.predictedEdgeMs, measuredMs: p.edgeMs, inputElements: p.inputElements, idleMs: idleOf(p) })))
  const messaging = fitMessaging(sending.map((p) => ({ bytes: p.bytes, residualMs: p.residualMs, idleMs: idleOf(p) })))
  return { messaging, segments: { device, edge }, probes, why: null }
}

/** The link stage a profile's campaign ran (its `source.link`), if any. */
export function linkOf(profile: CalibrationProfile): LinkStage | null {
  const m = profile.source?.['link'] as LinkStage | undefined
  return m && typeof m === 'object' && 'probes' in m ? m : null
}
