/** The Live page's timeline: 10,000 inferences draw as a bounded number of points, spikes and plan changes kept. */
import { describe, expect, it } from 'vitest'
import type { InferencePoint } from '../../src/shared/contracts/console-api.js'
import { prepareTimeline } from '../../src/renderer/src/timeline.js'

function rows(n: number): InferencePoint[] {
  return Array.from({ length: n }, (_, i) => {
    const plan = i < 4000 ? 'a' : i < 7000 ? 'b' : 'c'
    const e2e = i === 5123 ? 900 : 20 + (i % 7)
    return {
      id: i + 1,
      at: new Date(1e12 + i * 10).toISOString(),
      runId: 'r',
      planId: plan,
      exit: plan === 'a' ? 5 : plan === 'b' ? 3 : 5,
      deviceLayers: plan === 'c' ? 0 : 4,
      latencyMs: 100,
      predictedMs: 22,
      deviceMs: 5,
      transferMs: e2e - 15,
      edgeMs: 10,
      e2eMs: e2e,
      met: e2e <= 100,
      correct: i % 10 !== 0,
      uplinkKbps: 1000,
      model: 'branchy-alexnet'
    }
  })
}

describe('prepareTimeline', () => {
  it('draws 10,000 inferences as at most 600 points, keeping the spike, the ends and every plan change', () => {
    const tl = prepareTimeline(rows(10_000))
    expect(tl.total).toBe(10_000)
    expect(tl.points.length).toBe(600)
    expect(tl.points[0]!.n).toBe(1)
    expect(tl.points[tl.points.length - 1]!.n).toBe(10_000)
    expect(tl.points.some((p) => p.e2eMs === 900)).toBe(true)
    expect(tl.planChanges).toEqual([
      { n: 4001, exit: 3, deviceLayers: 4 },
      { n: 7001, exit: 5, deviceLayers: 0 }
    ])
    expect(tl.accuracy).toBeCloseTo(0.9, 10)
    expect(tl.metShare).toBeCloseTo(9999 / 10_000, 10)
    expect(tl.p50Ms).toBe(23)
  })

  it('keeps every point of a short series, and skips inferences without an end-to-end time', () => {
    const r = rows(50)
    r[10] = { ...r[10]!, e2eMs: null }
    const tl = prepareTimeline(r)
    expect(tl.total).toBe(49)
    expect(tl.points.length).toBe(49)
    expect(tl.points.map((p) => p.n)).toEqual(Array.from({ length: 49 }, (_, i) => i + 1))
  })

  it('handles no data', () => {
    expect(prepareTimeline([])).toMatchObject({ total: 0, points: [], accuracy: null, metShare: null, p50Ms: null })
  })
})
