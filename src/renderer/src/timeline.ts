/**
 * The Live page's data: the co-inference timeline, downsampled with LTTB (largest triangle three
 * buckets, the `downsample` package) on the end-to-end latency so that 10,000 inferences draw as a
 * few hundred points, keeping the spikes. Pure: tested under vitest.
 */
import { createLTTB } from 'downsample'
import type { InferencePoint } from '../../shared/contracts/console-api.js'

export interface TimelinePoint {
  /** Inference number in the series (1-based). */
  n: number
  deviceMs: number
  transferMs: number
  edgeMs: number
  e2eMs: number
  predictedMs: number
  latencyMs: number
  exit: number
  deviceLayers: number
}

export interface Timeline {
  points: TimelinePoint[]
  /** Inference numbers where the plan changed (at most `maxMarkers`, the latest kept). */
  planChanges: { n: number; exit: number; deviceLayers: number }[]
  total: number
  accuracy: number | null
  metShare: number | null
  p50Ms: number | null
  p95Ms: number | null
}

const lttb = createLTTB<TimelinePoint>({ x: 'n', y: 'e2eMs' })

function quantile(sorted: number[], q: number): number | null {
  if (!sorted.length) return null
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[i]!
}

export function prepareTimeline(rows: readonly InferencePoint[], maxPoints = 600, maxMarkers = 40): Timeline {
  const done = rows.filter((r) => r.e2eMs !== null)
  const all: TimelinePoint[] = done.map((r, i) => ({
    n: i + 1,
    deviceMs: r.deviceMs,
    transferMs: Math.max(0, r.transferMs ?? 0),
    edgeMs: r.edgeMs,
    e2eMs: r.e2eMs!,
    predictedMs: r.predictedMs,
    latencyMs: r.latencyMs,
    exit: r.exit,
    deviceLayers: r.deviceLayers
  }))
  const points = all.length > maxPoints ? (lttb(all, maxPoints) as TimelinePoint[]) : all
  const changes: Timeline['planChanges'] = []
  for (let i = 1; i < done.length; i++) {
    if (done[i]!.planId !== done[i - 1]!.planId && (done[i]!.exit !== done[i - 1]!.exit || done[i]!.deviceLayers !== done[i - 1]!.deviceLayers)) {
      changes.push({ n: i + 1, exit: done[i]!.exit, deviceLayers: done[i]!.deviceLayers })
    }
  }
  const judged = done.filter((r) => r.correct !== null)
  const met = done.filter((r) => r.met !== null)
  const e2e = all.map((p) => p.e2eMs).sort((a, b) => a - b)
  return {
    points,
    planChanges: changes.slice(-maxMarkers),
    total: done.length,
    accuracy: judged.length ? judged.filter((r) => r.correct).length / judged.length : null,
    metShare: met.length ? met.filter((r) => r.met).length / met.length : null,
    p50Ms: quantile(e2e, 0.5),
    p95Ms: quantile(e2e, 0.95)
  }
}
