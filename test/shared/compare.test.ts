/**
 * Two runs side by side (src/shared/algorithms/compare.ts): the bootstrap interval of a quantile's
 * difference holds a real shift and not noise, and each measure says which run is better.
 */
import { describe, expect, it } from 'vitest'
import { bootstrapDifference, compareRuns } from '../../src/shared/algorithms/compare.js'
import type { InferSummary, RunView } from '../../src/shared/contracts/console-api.js'

/** Deterministic noise: latencies around `base` ms, spread ±`spread`. */
function latencies(n: number, base: number, spread: number, seed: number): number[] {
  let s = seed
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2 ** 31
    return base + ((s / 2 ** 31) * 2 - 1) * spread
  })
}

const summary = (o: Partial<InferSummary>): InferSummary => ({
  runId: 'r',
  agentId: 'pi-a',
  count: 200,
  completed: 200,
  lost: 0,
  latencyMs: 100,
  uplinkKbps: 1000,
  bandwidthSource: 'fixed',
  plan: { planId: 'p', exit: 5, deviceLayers: 3, layers: 12, predictedMs: 20, feasible: true },
  percentile: null,
  tail: null,
  percentileMs: null,
  p50Ms: 20,
  p95Ms: 30,
  accuracy: 0.9,
  metShare: 0.95,
  planChanges: 0,
  prediction: { mapeCorrected: 0.1, mapeUncorrected: 0.2, deviceFactor: 1, edgeFactor: 1, overheadMs: 0 },
  ...o
})
const run = (id: string, o: Partial<RunView> = {}, s: Partial<InferSummary> = {}): RunView => ({
  id,
  agentId: 'pi-a',
  campaignId: null,
  model: 'branchy-alexnet',
  status: 'done',
  startedAt: '2026-12-07T10:00:00.000Z',
  finishedAt: '2026-12-07T10:01:00.000Z',
  error: null,
  tags: [],
  note: '',
  summary: summary({ runId: id, ...s }),
  ...o
})

describe('comparing two runs', () => {
  it('finds a 2 ms shift beyond ±5 ms noise, and no difference between two draws of the same noise', () => {
    const a = latencies(400, 20, 5, 1)
    const shifted = latencies(400, 22, 5, 2)
    const same = latencies(400, 20, 5, 3)
    const d = bootstrapDifference(a, shifted, 0.5)
    expect(d.deltaMs).toBeGreaterThan(1)
    expect(d.deltaMs).toBeLessThan(3)
    expect(d.lowMs).toBeGreaterThan(0)
    expect(d.clear).toBe(true)
    const n = bootstrapDifference(a, same, 0.5)
    expect(n.lowMs).toBeLessThan(0)
    expect(n.highMs).toBeGreaterThan(0)
    expect(n.clear).toBe(false)
    // Seeded: the same runs compare the same way every time.
    expect(bootstrapDifference(a, shifted, 0.5)).toEqual(d)
  })

  it('says which run is better on each measure, and what differs that the numbers do not show', () => {
    const c = compareRuns(
      run('a'),
      run('b', { model: 'branchy-resnet96' }, { p50Ms: 18, metShare: 0.9, latencyMs: 50 }),
      latencies(50, 20, 2, 4),
      latencies(50, 18, 2, 5)
    )
    const r = (m: string) => c.rows.find((x) => x.measure === m)!
    expect(r('p50 end to end')).toMatchObject({ a: 20, b: 18, delta: -2, better: 'b' })
    expect(r('requirement met').better).toBe('a')
    expect(r('latency requirement').better).toBeNull() // no direction: a setting, not a result
    expect(c.differs).toEqual(['model: branchy-alexnet → branchy-resnet96', 'latency requirement (ms): 100 → 50'])
    expect(c.quantiles.map((q) => q.q)).toEqual([0.05, 0.25, 0.5, 0.75, 0.95, 0.99])
    expect(c.differences.map((d) => d.q)).toEqual([0.5, 0.95])
    // Stage medians under 0.05 ms in both runs are left out; an estimated uplink 10 % apart is no difference, a fixed one is.
    const staged = compareRuns(
      run('a', {}, { bandwidthSource: 'estimate', uplinkKbps: 1399.441624848761, stagesMedianMs: { edgeMs: 2.21, queueMs: 0.001 } as never }),
      run('b', {}, { bandwidthSource: 'estimate', uplinkKbps: 1535.7561695921713, stagesMedianMs: { edgeMs: 2.2, queueMs: 0.002 } as never }),
      [1, 2],
      [1, 2]
    )
    expect(staged.rows.filter((x) => x.measure.startsWith('stage')).map((x) => [x.measure, x.better])).toEqual([['stage edge (median)', null]]) // 0.5 %: a tie
    expect(staged.differs).toEqual([])
    const fixed = compareRuns(run('a', {}, { uplinkKbps: 1399.441624848761 }), run('b', {}, { uplinkKbps: 1500 }), [1, 2], [1, 2])
    expect(fixed.differs).toEqual(['uplink (kbps): 1399 → 1500'])
    // A run with no completed inference has quantiles but no interval to give.
    expect(compareRuns(run('a'), run('b'), [], [1, 2]).differences).toEqual([])
  })
})
