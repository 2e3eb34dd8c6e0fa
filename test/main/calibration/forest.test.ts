import { RandomForestRegression } from 'ml-random-forest'
import { describe, expect, it } from 'vitest'
import { FOREST_MIN_POINTS, FOREST_OPTIONS, RANDOM_FOREST_OPTIONS, fitForest } from '../../../src/main/calibration/forest-fit.js'
import { fitProfile, type MeasurementRow } from '../../../src/main/calibration/fit.js'
import { forestPredict } from '../../../src/shared/algorithms/forest.js'
import {
  FEATURES,
  FIT_FEATURES,
  evaluateRegression,
  featureValues,
  parseProfile,
  predictLayerMs,
  regressorsOf
} from '../../../src/shared/algorithms/latency.js'
import type { Layer } from '../../../src/shared/contracts/manifest.js'
import { mulberry32 } from '../../fixtures/prng.js'

/** A conv layer of the grid's kind: c input channels, f filters, k×k kernel, h×h input. */
const conv = (c: number, f: number, k: number, h: number): Layer => ({
  id: `conv-${c}-${f}-${k}-${h}`,
  type: 'conv',
  inputShape: [1, c, h, h],
  outputShape: [1, f, h, h],
  outputBytes: f * h * h * 4,
  input: 'x',
  output: 'y',
  kernel: [k, k],
  stride: [1, 1],
  padding: [(k - 1) / 2, (k - 1) / 2],
  filters: f
})

/** A conv's time as a product of its sizes (what a sum of the paper's variables cannot express), with ±5 % noise. */
function grid(n: number, seed: number): { layer: Layer; ms: number }[] {
  const rand = mulberry32(seed)
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rand() * xs.length)]!
  return Array.from({ length: n }, () => {
    const l = conv(pick([1, 3, 16, 32, 64]), pick([8, 16, 32, 64, 128]), pick([1, 3, 5]), pick([7, 14, 28]))
    const macs = featureValues(l, ['macs'])[0]!
    return { layer: l, ms: (0.02 + macs * 2e-7) * (1 + 0.1 * (rand() - 0.5)) }
  })
}

describe('tree ensembles beside the linear fits', () => {
  const names = FIT_FEATURES.conv
  const points = (g: { layer: Layer; ms: number }[]) => g.map((x) => ({ x: featureValues(x.layer, names), y: x.ms }))

  it('stores trees whose compact evaluation is ml-random-forest’s own prediction, fitted reproducibly', () => {
    const train = points(grid(90, 1))
    const held = points(grid(30, 2))
    const f = fitForest(names, train, held)!
    expect(f.trees).toHaveLength(FOREST_OPTIONS.nEstimators)
    const rf = new RandomForestRegression(RANDOM_FOREST_OPTIONS)
    rf.train(
      train.map((p) => [...p.x]),
      train.map((p) => Math.log(p.y))
    )
    const theirs = rf.predict(held.map((p) => [...p.x]))
    for (const [i, p] of held.entries()) expect(Math.log(forestPredict(f, p.x))).toBeCloseTo(theirs[i]!, 9)
    expect(fitForest(names, train, held)).toEqual(f) // same seed, same trees
    // Relative accuracy on a product-shaped cost, held out: well under the 30 % a poor fit would give.
    expect(f.heldOut!.mape).toBeLessThan(0.3)
    // Too few points, or nothing to check on: none.
    expect(fitForest(names, train.slice(0, FOREST_MIN_POINTS - 1), held)).toBeNull()
    expect(fitForest(names, train, [])).toBeNull()
  })

  it('a fitted profile carries them and predicts with them when its regressor is forest; the grid’s held-out error per regressor', () => {
    const rows: MeasurementRow[] = grid(160, 3).flatMap((g, i) =>
      (['device', 'edge'] as const).map((side) => ({
        side,
        config: g.layer.id + i,
        regressionKey: 'conv' as const,
        features: featureValues(g.layer, names),
        runMs: side === 'device' ? g.ms * 6 : g.ms,
        loadMs: 1,
        modelBytes: 1000,
        heldOut: i % 4 === 3
      }))
    )
    const { profile, report } = fitProfile('p', 'p', rows, {})
    expect(profile.regressor).toBe('linear')
    const forest = profile.edge.conv!.forest!
    expect(forest.kind).toBe('random-forest')
    expect(report.find((r) => r.side === 'edge' && r.key === 'conv')!.forestHeldOutMape).toBe(forest.heldOut!.mape)
    const l = conv(32, 64, 3, 14)
    const asForest = parseProfile(JSON.parse(JSON.stringify({ ...profile, regressor: 'forest' })), 'p')
    expect(predictLayerMs(asForest, 'edge', l)).toBeCloseTo(forestPredict(forest, featureValues(l, names)), 12)
    expect(predictLayerMs(profile, 'edge', l)).not.toBeCloseTo(predictLayerMs(asForest, 'edge', l), 6)
    // The paper's variables alone, fitted on the same points: predicted with when the regressor is paper.
    const paper = profile.edge.conv!.paperForm!
    expect(paper.features).toEqual(FEATURES.conv)
    expect(report.find((r) => r.side === 'edge' && r.key === 'conv')!.paperHeldOutMape).toBe(paper.heldOut!.mape)
    const asPaper = parseProfile(JSON.parse(JSON.stringify({ ...profile, regressor: 'paper' })), 'p')
    expect(predictLayerMs(asPaper, 'edge', l)).toBeCloseTo(evaluateRegression(paper, featureValues(l, FEATURES.conv)), 12)
    expect(regressorsOf(profile)).toEqual(['linear', 'paper', 'forest'])
    // Pooled over the held-out configurations of each side, for every regressor; a product-shaped cost
    // is what the paper's two variables cannot express: their error is the largest.
    expect(profile.gridHeldOut!.edge).toMatchObject({ n: 40 })
    const g = profile.gridHeldOut!.edge!
    expect(g.forest).toBeGreaterThan(0)
    expect(g.linear).toBeGreaterThan(0)
    expect(g.paper!).toBeGreaterThan(g.linear!)
  })
})
