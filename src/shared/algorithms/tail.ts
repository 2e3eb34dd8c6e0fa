/**
 * Tail-aware planning: a latency requirement at a percentile ("95 % of inferences within 40 ms")
 * instead of at the typical inference. The planner's cost table predicts each part's typical time
 * (its median, for a calibrated source); the device's measured dispersion around it turns that into
 * the percentile: each segment scaled by the percentile of its times relative to their plan's median
 * (on the device and on the edge), and what is neither segment (the link, messaging) by the
 * percentile of its excess over its plan's median, in ms. Measured over the device's latest
 * inferences, plan by plan, so a plan's bias (which the online correction learns) is not counted as
 * dispersion, and a slow plan does not count as the tail of a fast one.
 */
import { median, quantile } from 'simple-statistics'
import { UserError } from '../errors.js'
import type { CostTable } from './planner.js'

/** The percentiles a requirement may be given at: 50 (the typical inference, the planner's default) to 99.9. */
export const PERCENTILE_RANGE = [50, 99.9] as const

/** Inferences the dispersion is measured over (the device's latest), and the least that measure it. */
export const TAIL_WINDOW = 500
export const TAIL_MIN_SAMPLES = 30
/** A plan's inferences count toward the dispersion only when it has at least this many in the window. */
export const TAIL_MIN_PER_PLAN = 5

/** How a percentile is predicted from the typical time: per-side factors and an excess in ms for the rest. */
export interface TailModel {
  percentile: number
  /** Device and edge segments: the percentile of measured / the plan's median (≥ 1). */
  deviceFactor: number
  edgeFactor: number
  /** Link and messaging (end to end less both segments), for plans that send: the percentile of the excess over the plan's median, ms (≥ 0). */
  extraMs: number
  /** Inferences measured (of the window), and plans they came from. */
  samples: number
  plans: number
  /** Why the dispersion is not measured (too few inferences): the factors are then 1 and the extra 0. */
  why: string | null
}

export interface TailSample {
  planId: string
  /** The exit that answered (a confidence-exit plan's frames leave at several: each is its own group). */
  exit?: number
  deviceLayers: number
  deviceMs: number
  edgeMs: number
  e2eMs: number | null
}

export function checkPercentile(p: number): void {
  if (!Number.isFinite(p) || p < PERCENTILE_RANGE[0] || p > PERCENTILE_RANGE[1]) {
    throw new UserError(`percentile must be a number from ${PERCENTILE_RANGE[0]} to ${PERCENTILE_RANGE[1]}, got ${p}`)
  }
}

/** The tail model at `percentile` from a device's latest inferences (any order). */
export function measureTail(rows: readonly TailSample[], percentile: number): TailModel {
  checkPercentile(percentile)
  const byPlan = new Map<string, TailSample[]>()
  // per plan and exit: a policy's frames that left at different exits are different work, not dispersion
  for (const r of rows) {
    if (r.e2eMs === null || !(r.e2eMs > 0)) continue
    const k = `${r.planId}/${r.exit ?? ''}`
    const g = byPlan.get(k)
    if (g) g.push(r)
    else byPlan.set(k, [r])
  }
  const dev: number[] = []
  const edge: number[] = []
  const rest: number[] = []
  let samples = 0
  let plans = 0
  for (const g of byPlan.values()) {
    if (g.length < TAIL_MIN_PER_PLAN) continue
    plans++
    samples += g.length
    const relative = (xs: number[], out: number[]) => {
      const m = median(xs)
      if (m > 0) for (const x of xs) out.push(x / m)
    }
    if (g[0]!.deviceMs > 0)
      relative(
        g.map((r) => r.deviceMs),
        dev
      )
    if (g.some((r) => r.edgeMs > 0)) {
      relative(
        g.map((r) => r.edgeMs),
        edge
      )
      const residual = g.map((r) => r.e2eMs! - r.deviceMs - r.edgeMs)
      const m = median(residual)
      for (const x of residual) rest.push(x - m)
    }
  }
  const q = percentile / 100
  const base = { percentile, samples, plans }
  if (samples < TAIL_MIN_SAMPLES) {
    return {
      ...base,
      deviceFactor: 1,
      edgeFactor: 1,
      extraMs: 0,
      why: `${samples} inferences in plans run ≥ ${TAIL_MIN_PER_PLAN} times among the latest ${TAIL_WINDOW} (needs ${TAIL_MIN_SAMPLES}): predicting the typical time`
    }
  }
  return {
    ...base,
    deviceFactor: dev.length ? Math.max(1, quantile(dev, q)) : 1,
    edgeFactor: edge.length ? Math.max(1, quantile(edge, q)) : 1,
    extraMs: rest.length ? Math.max(0, quantile(rest, q)) : 0,
    why: null
  }
}

/** A cost table predicting the percentile of each plan's latency under a tail model (the same table at the median). */
export function tailTable(table: CostTable, tail: TailModel): CostTable {
  if (tail.deviceFactor === 1 && tail.edgeFactor === 1 && tail.extraMs === 0 && !table.policies) return table
  return {
    ...table,
    profile: `${table.profile}@p${tail.percentile}`,
    exits: table.exits.map((g) =>
      g.map((c) => ({
        ...c,
        deviceMs: c.deviceMs * tail.deviceFactor,
        edgeMs: c.edgeMs * tail.edgeFactor,
        overheadMs: c.overheadMs + (c.deviceLayers < c.layers ? tail.extraMs : 0)
      }))
    ),
    // a policy: each component at the percentile's dispersion, the mixture's quantile (policy-plans.ts)
    ...(table.policies
      ? {
          policies: table.policies.map((g) =>
            g.map((c) => ({
              ...c,
              policy: {
                ...c.policy!,
                quantile: tail.percentile / 100,
                components: c.policy!.components.map((x) => ({
                  ...x,
                  deviceMs: x.deviceMs * tail.deviceFactor,
                  edgeMs: x.edgeMs * tail.edgeFactor,
                  overheadMs: x.overheadMs + (x.side === 'edge' ? tail.extraMs : 0)
                }))
              }
            }))
          )
        }
      : {})
  }
}
