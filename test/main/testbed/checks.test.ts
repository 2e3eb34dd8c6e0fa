/** The testbed's verdict: which acceptance checks did not hold (the command exits 1 on any). */
import { describe, expect, it } from 'vitest'
import { failedChecks } from '../../../src/main/testbed/checks.js'
import { compareWithSingleSide, type ConfigResult, type Strategy } from '../../../src/main/testbed/testbed.js'

const c = (over: Partial<Parameters<typeof failedChecks>[0]> = {}) => ({
  feasiblePoints: 20,
  edgentMetWhereFeasible: 20,
  withinTenPercent: 27,
  points: 30,
  medianAbsError: 0.05,
  middleCuts: [],
  speedups: [],
  ...over
})

describe('testbed checks', () => {
  it('hold when Edgent met every feasible point and was within 10 % at ≥ 90 % of points', () => {
    expect(failedChecks(c())).toEqual([])
  })
  it('name each check that did not hold', () => {
    expect(failedChecks(c({ edgentMetWhereFeasible: 19 }))).toEqual([
      'Edgent met the requirement at 19 of 20 points where some configuration did (must be all)'
    ])
    expect(failedChecks(c({ withinTenPercent: 26 }))).toEqual([
      'Edgent was within 10 % of the best configuration of its exit at 26 of 30 points (must be ≥ 90 %)'
    ])
    expect(failedChecks(c({ edgentMetWhereFeasible: 0, withinTenPercent: 0 }))).toHaveLength(2)
  })
})

describe('testbed: middle cuts and speedups against the single-side baselines', () => {
  const row = (strategy: Strategy, deviceLayers: number, measuredMs: number, over: Partial<ConfigResult> = {}): ConfigResult => ({
    linkKbps: 500,
    latencyMs: 100,
    strategy,
    exit: 5,
    deviceLayers,
    layers: 19,
    codec: 'f32',
    accuracy: 0.9,
    predictedMs: measuredMs,
    measuredMs,
    p95Ms: measuredMs,
    met: measuredMs <= 100,
    metShare: 1,
    sampleAccuracy: null,
    runId: 'r',
    ...over
  })

  it('takes the fastest middle cut at the baselines’ accuracy, against device-only and the faster edge-only', () => {
    const results = [
      row('device-only', 19, 80),
      row('edge-only', 0, 300),
      row('edge-only-u8', 0, 90, { codec: 'u8' }),
      // faster, but it costs accuracy: not a like-for-like win
      row('same-exit', 8, 30, { codec: 'int8', accuracy: 0.897 }),
      row('edgent', 8, 50, { codec: 'f16' }),
      row('partition-only', 8, 70)
    ]
    const { middleCuts, speedups } = compareWithSingleSide(results, [500], [100])
    expect(middleCuts).toEqual([
      expect.objectContaining({ deviceLayers: 8, codec: 'f16', measuredMs: 50, deviceOnlyMs: 80, edgeOnlyMs: 90, gain: 80 / 50 - 1 })
    ])
    expect(speedups).toEqual([
      { linkKbps: 500, latencyMs: 100, baseline: 'device-only', baselineMs: 80, by: expect.objectContaining({ edgent: 80 / 50, 'partition-only': 80 / 70 }) }
    ])
  })

  it('reports no middle cut where none was measured at that accuracy', () => {
    const { middleCuts } = compareWithSingleSide(
      [row('device-only', 19, 80), row('edge-only', 0, 90), row('same-exit', 4, 10, { accuracy: 0.5 })],
      [500],
      [100]
    )
    expect(middleCuts).toEqual([])
  })
})
