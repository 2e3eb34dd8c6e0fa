/**
 * Kind `plans`: the check of predictions against real plans. Every (exit, deviceLayers) of the
 * device's served model co-infers a few times in each of PLANS_PASSES passes, pinned, at one fixed uplink (the device's emulated
 * link set to it), as fused segments on both sides — exactly what a plan runs. Each plan's device
 * segment, edge segment and end-to-end time (medians, after PLANS_WARMUP) are compared with what the device's latency
 * source predicted when the campaign started, **without** online correction (the raw cost table),
 * and the campaign does not teach the correction anything (`learn: false`).
 */
import { median, quantile } from 'simple-statistics'
import type { ErrorStats, InferRow, LatencySource, LinkStage, PlanCheckPoint, PlanParts, PlansSummary } from '../../shared/contracts/console-api.js'
import { type Candidate, type CostTable, candidateAt, latencyOf } from '../../shared/algorithms/planner.js'
import type { Regressor } from '../../shared/algorithms/latency.js'

/**
 * The fixed uplink of a plans campaign by default, kbit/s: a LAN-class link, where compute and
 * messaging are most of a plan's time (at the paper's 50–1500 kbps the upload of any cut but the
 * last dwarfs them, and hides a poor compute prediction).
 */
export const PLANS_DEFAULT_KBPS = 100_000

/**
 * Co-inferences before each plan's measured ones: a plan's first runs create and warm its sessions on
 * both sides (the first runs of a new session are several times slower), which a plan serving a
 * stream of inferences pays once. They are stored with the plan's run and left out of its medians.
 */
export const PLANS_WARMUP = 2

/**
 * Passes over every plan; a plan's figures are medians over all of them. This shared machine runs
 * at different speeds from one stretch of seconds to the next (edge segments 20 % slower across the
 * board a minute after the link stage measured them, in one campaign): one batch per plan would
 * measure each plan in whichever stretch it fell; passes spread every plan over the campaign.
 */
export const PLANS_PASSES = 3

/**
 * |predicted − measured| / measured over a set of points: the shares within ±5 % and ±10 % (the
 * field's figure: nn-Meter, LitePred), the median and the 90th percentile (null without points).
 */
export function errorStats(pairs: readonly { predicted: number; measured: number }[]): ErrorStats {
  const rel = pairs.filter((p) => p.measured > 0).map((p) => Math.abs(p.predicted - p.measured) / p.measured)
  if (!rel.length) return { n: 0, median: null, p90: null, within5: null, within10: null }
  // a hair of tolerance: 10.000000001 % is a 10 % error printed
  const within = (bound: number) => rel.filter((r) => r <= bound + 1e-9).length / rel.length
  return { n: rel.length, median: median(rel), p90: quantile(rel, 0.9), within5: within(0.05), within10: within(0.1) }
}

/** One plan's parts measured in each pass (medians over that pass's inferences). */
export interface PlanPasses {
  deviceLayers: number
  layers: number
  passes: PlanParts[]
}

/** A pass's medians of a plan's inferences. */
export function passParts(rows: readonly Pick<InferRow, 'deviceMs' | 'edgeMs' | 'e2eMs'>[]): PlanParts {
  return { deviceMs: median(rows.map((r) => r.deviceMs)), edgeMs: median(rows.map((r) => r.edgeMs)), e2eMs: median(rows.map((r) => r.e2eMs)) }
}

/**
 * The measurement's own noise (test–retest): each plan measured again in a later pass, scored as if
 * the earlier pass had predicted the later one — over every plan and every pair of its passes. No
 * predictor can be expected to agree with a measurement more often than the measurement agrees
 * with itself; a share within ±10 % below this one is noise, not the model.
 */
export function retestErrors(plans: readonly PlanPasses[]): PlansSummary['errors'] {
  const pairs = (side: keyof PlanParts, keep: (p: PlanPasses) => boolean) =>
    plans.filter(keep).flatMap((p) => p.passes.flatMap((a, i) => p.passes.slice(i + 1).map((b) => ({ predicted: a[side], measured: b[side] }))))
  return {
    device: errorStats(pairs('deviceMs', (p) => p.deviceLayers > 0)),
    edge: errorStats(pairs('edgeMs', (p) => p.deviceLayers < p.layers)),
    e2e: errorStats(pairs('e2eMs', () => true))
  }
}

/** The errors of a plans campaign: device segments (deviceLayers > 0), edge segments (deviceLayers < layers), end to end. */
export function planErrors(points: readonly PlanCheckPoint[]): PlansSummary['errors'] {
  return {
    device: errorStats(points.filter((p) => p.deviceLayers > 0).map((p) => ({ predicted: p.predicted.deviceMs, measured: p.measured.deviceMs }))),
    edge: errorStats(points.filter((p) => p.deviceLayers < p.layers).map((p) => ({ predicted: p.predicted.edgeMs, measured: p.measured.edgeMs }))),
    e2e: errorStats(points.map((p) => ({ predicted: p.predicted.e2eMs, measured: p.measured.e2eMs })))
  }
}

/** An empty summary for a campaign about to start. */
export function plansSummary(uplinkKbps: number, inferencesPerPass: number, source: LatencySource, table: CostTable): PlansSummary {
  return {
    uplinkKbps,
    inferencesPerPlan: inferencesPerPass * PLANS_PASSES,
    passes: PLANS_PASSES,
    warmupPerPass: PLANS_WARMUP,
    source: {
      kind: source.kind,
      profileId: source.profileId,
      predictor: source.kind === 'profile' ? `profile ${table.profile}` : 'the measured per-layer tables'
    },
    points: [],
    unsendable: [],
    errors: planErrors([])
  }
}

/** A plan's candidate in a cost table and its raw prediction of the three parts at the uplink. */
function predicted(table: CostTable, exit: number, deviceLayers: number, uplinkKbps: number): { c: Candidate; parts: PlanParts } {
  const c = candidateAt(table, exit, deviceLayers)
  if (!c) throw new Error(`${table.profile} has no exit ${exit} with ${deviceLayers} device layers`)
  return { c, parts: { deviceMs: c.deviceMs, edgeMs: c.edgeMs, e2eMs: latencyOf(c, { uplinkKbps, latencyMs: 1 }) } }
}

/** Another latency source's raw predictions for the same measured plans (its errors on them). */
export function scorePredictor(table: CostTable, points: readonly PlanCheckPoint[], uplinkKbps: number): PlansSummary['errors'] {
  return planErrors(points.map((x) => ({ ...x, predicted: predicted(table, x.exit, x.deviceLayers, uplinkKbps).parts })))
}

/** One plan's point: the raw prediction for the candidate against the medians of its co-inferences. */
export function planPoint(
  table: CostTable,
  exit: number,
  deviceLayers: number,
  uplinkKbps: number,
  runIds: string[],
  rows: readonly InferRow[]
): PlanCheckPoint {
  const { c, parts } = predicted(table, exit, deviceLayers, uplinkKbps)
  return {
    exit,
    deviceLayers,
    layers: c.layers,
    runIds,
    completed: rows.length,
    predicted: parts,
    measured: passParts(rows)
  }
}

/**
 * How far this machine's speed moved between a profile's link stage and this campaign: per side, the
 * median over the probe plans of this campaign's measured segment over the link stage's (both
 * measured the same plans the same way, a few minutes apart), and the errors with that drift taken
 * out of the predictions — a diagnostic of what no profile can predict, never a prediction (the
 * online correction is what follows such drift in use). Null without probes measured here.
 */
export function speedDrift(points: readonly PlanCheckPoint[], probes: LinkStage['probes']): PlansSummary['drift'] {
  const pairs = probes.flatMap((q) => {
    const p = points.find((x) => x.exit === q.exit && x.deviceLayers === q.deviceLayers)
    return p ? [{ p, q }] : []
  })
  if (!pairs.length) return undefined
  const ratio = (side: 'deviceMs' | 'edgeMs') => {
    const r = pairs.filter(({ p, q }) => p.measured[side] > 0 && q[side] > 0).map(({ p, q }) => p.measured[side] / q[side])
    return r.length ? median(r) : null
  }
  const device = ratio('deviceMs')
  const edge = ratio('edgeMs')
  const errors = planErrors(
    points.map((x) => {
      const d = x.predicted.deviceMs * ((device ?? 1) - 1)
      const e = x.predicted.edgeMs * ((edge ?? 1) - 1)
      return {
        ...x,
        predicted: { deviceMs: x.predicted.deviceMs + d, edgeMs: x.predicted.edgeMs + e, e2eMs: x.predicted.e2eMs + d + e }
      }
    })
  )
  return { device, edge, probes: pairs.length, errors }
}

/** A latency source that could plan a device, as a raw cost table for its served model (a plans campaign scores it). */
export interface PredictorTable {
  name: string
  table: CostTable
  /** The grid's held-out MAPE per side (fitted profiles). */
  gridHeldOut?: { device: number | null; edge: number | null }
  /** A variant of a stored profile: its id and the regressor it predicts with. */
  profileId?: string
  regressor?: Regressor
}
