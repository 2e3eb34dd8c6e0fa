import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { parseManifest, type Layer } from '../../../src/shared/contracts/manifest.js'
import {
  FEATURES,
  BUILTIN_PROFILES,
  FIT_FEATURES,
  PAPER_2018,
  PAPER_2018_AS_PRINTED,
  regressionKeyOf,
  featureValue,
  fitFeatures,
  REGRESSION_KEYS,
  evaluateRegression,
  fitRegression,
  fitStats,
  layerFeatures,
  parseProfile,
  predictLayerMs,
  predictModelLoadMs,
  regressionFor
} from '../../../src/shared/algorithms/latency.js'
import { mulberry32 } from '../../fixtures/prng.js'

const tiny = parseManifest(JSON.parse(readFileSync(new URL('../../fixtures/tiny/manifest.json', import.meta.url), 'utf8')), 'tiny')
const layer = (id: string): Layer => tiny.layers.find((l) => l.id === id)!
const rng = mulberry32

describe("latency features (the paper's Table 1)", () => {
  it("computes each layer type's variables", () => {
    // conv: input elements 16; (3/1)^2 x 2 filters = 18
    expect(layerFeatures(layer('conv1'))).toEqual([16, 18])
    expect(layerFeatures(layer('relu1'))).toEqual([32])
    expect(layerFeatures(layer('pool1'))).toEqual([32, 8])
    expect(layerFeatures(layer('fc1'))).toEqual([8, 16])
    expect(layerFeatures(layer('flatten1'))).toEqual([8])
    expect(layerFeatures(layer('softmax2'))).toEqual([3])
  })

  it('divides the kernel by the stride before squaring', () => {
    const conv = { ...layer('conv1'), kernel: [5, 5], stride: [2, 2], filters: 64 } as Layer
    expect(layerFeatures(conv)).toEqual([16, 6.25 * 64])
  })

  it('declares as many variables as each regression has coefficients', () => {
    for (const key of REGRESSION_KEYS) expect(PAPER_2018.device[key] ?? PAPER_2018.device.other).toBeDefined()
    for (const key of ['conv', 'pool', 'fc'] as const) expect(FEATURES[key]).toHaveLength(2)
  })
})

describe('the paper-2018 profiles', () => {
  it('paper-2018-as-printed predicts with the printed coefficients, each in the column the slide gives it', () => {
    expect(predictLayerMs(PAPER_2018_AS_PRINTED, 'device', layer('relu1'))).toBeCloseTo(5.6e-6 * 32 + 5.69e-2, 15)
    expect(predictLayerMs(PAPER_2018_AS_PRINTED, 'edge', layer('fc1'))).toBeCloseTo(9.18e-4 * 8 + 3.99e-3 * 16 + 1.169, 15)
    expect(predictModelLoadMs(PAPER_2018_AS_PRINTED, 'edge', 12_000_000)).toBeCloseTo(4.49e-6 * 12e6 + 842.136, 9)
  })

  it('paper-2018, the default, is the same table with the device and edge columns swapped', () => {
    expect(PAPER_2018.device).toEqual(
      Object.fromEntries(Object.entries(PAPER_2018_AS_PRINTED.edge).map(([k, r]) => [k, { ...r, note: PAPER_2018.device[k as 'conv']!.note }]))
    )
    expect(PAPER_2018.edge.conv!.coefficients).toEqual(PAPER_2018_AS_PRINTED.device.conv!.coefficients)
    expect(BUILTIN_PROFILES['paper-2018']).toBe(PAPER_2018)
    expect(BUILTIN_PROFILES['paper-2018-as-printed']).toBe(PAPER_2018_AS_PRINTED)
  })

  it('under the default the edge predicts every layer of the shipped model faster than the device (as printed, it does not)', () => {
    const m = parseManifest(JSON.parse(readFileSync(new URL('../../../resources/models/branchy-alexnet/manifest.json', import.meta.url), 'utf8')), 'shipped')
    const heavy = m.layers.filter((l) => ['conv', 'fc', 'pool', 'lrn', 'relu', 'dropout'].includes(regressionKeyOf(l)))
    expect(heavy.length).toBeGreaterThan(10)
    for (const l of heavy) expect(predictLayerMs(PAPER_2018, 'edge', l), l.id).toBeLessThan(predictLayerMs(PAPER_2018, 'device', l))
    expect(heavy.some((l) => predictLayerMs(PAPER_2018_AS_PRINTED, 'edge', l) > predictLayerMs(PAPER_2018_AS_PRINTED, 'device', l))).toBe(true)
    // Loading the model: 842 ms on the device, 2 ms on the desktop (printed: the other way round).
    expect(predictModelLoadMs(PAPER_2018, 'edge', 12_000_000)).toBeLessThan(predictModelLoadMs(PAPER_2018, 'device', 12_000_000))
  })

  it('clamps negative predictions at zero (the device conv intercept is -9.909 ms)', () => {
    expect(evaluateRegression(PAPER_2018.device.conv!, [16, 18])).toBe(0)
    expect(evaluateRegression(PAPER_2018_AS_PRINTED.edge.conv!, [16, 18])).toBe(0)
  })

  it('falls back to "other" for flatten and softmax, and names a missing regression', () => {
    expect(regressionFor(PAPER_2018, 'device', 'softmax')).toBe(PAPER_2018.device.other)
    const partial = parseProfile({ format: 'edgent-calibration', schema: 1, id: 'partial', device: {}, edge: {} }, 'partial.json')
    expect(() => predictLayerMs(partial, 'device', layer('conv1'))).toThrow('profile partial has no device regression for layer type "conv"')
    expect(() => predictLayerMs(partial, 'edge', layer('flatten1'))).toThrow('profile partial has no edge regression for layer type "flatten" (or "other")')
  })
})

describe('calibration profile files', () => {
  it('rejects a wrong coefficient count, naming side and layer type', () => {
    expect(() =>
      parseProfile({ format: 'edgent-calibration', schema: 1, id: 'x', device: { conv: { coefficients: [1], intercept: 0 } }, edge: {} }, 'x.json')
    ).toThrow('x.json: device.conv.coefficients: device conv needs 2 coefficients (inputElements, kernelOverStrideSquaredTimesFilters), got 1')
  })

  it('rejects a file that is not a calibration profile', () => {
    expect(() => parseProfile({ id: 'x' }, 'x.json')).toThrow(/^x\.json: format: /)
  })
})

describe('least-squares fit', () => {
  it('recovers known coefficients from noisy synthetic data within 2 %', () => {
    const random = rng(42)
    const truth = { coefficients: [6.0e-5, 1.2e-3], intercept: 1.9 }
    const points = Array.from({ length: 2000 }, () => {
      const x = [1_000 + random() * 400_000, 100 + random() * 20_000]
      const clean = truth.intercept + truth.coefficients[0]! * x[0]! + truth.coefficients[1]! * x[1]!
      const noise = 1 + (random() - 0.5) * 0.02 // +-1 % multiplicative measurement noise (median-of-repetitions scale)
      return { x, y: clean * noise }
    })
    const fit = fitRegression('conv', points)
    expect(Math.abs(fit.coefficients[0]! / truth.coefficients[0]! - 1)).toBeLessThan(0.02)
    expect(Math.abs(fit.coefficients[1]! / truth.coefficients[1]! - 1)).toBeLessThan(0.02)
    expect(Math.abs(fit.intercept / truth.intercept - 1)).toBeLessThan(0.02)
    expect(fit.n).toBe(2000)
    expect(fit.r2).toBeGreaterThan(0.99)
    expect(fit.mape).toBeGreaterThan(0.001)
    expect(fit.mape).toBeLessThan(0.01)
    expect(fit.features).toEqual([...FEATURES.conv])
  })

  it('is exact on noiseless data and reports R² = 1, MAPE = 0', () => {
    const points = [1, 2, 3, 4, 5].map((x) => ({ x: [x], y: 2 * x + 1 }))
    const fit = fitRegression('relu', points)
    expect(fit.coefficients[0]).toBeCloseTo(2, 12)
    expect(fit.intercept).toBeCloseTo(1, 12)
    expect(fit.r2).toBeCloseTo(1, 12)
    expect(fit.mape).toBeCloseTo(0, 12)
  })

  it('computes R² and MAPE by their definitions', () => {
    const stats = fitStats({ coefficients: [1], intercept: 0 }, [
      { x: [1], y: 2 },
      { x: [2], y: 2 },
      { x: [3], y: 4 }
    ])
    // residuals 1, 0, 1; mean 8/3; SStot = 4/9 + 4/9 + 16/9 = 24/9; R² = 1 - 2 / (24/9) = 0.25
    expect(stats.r2).toBeCloseTo(0.25, 12)
    // |1/2| + 0 + |1/4| over 3
    expect(stats.mape).toBeCloseTo(0.25, 12)
  })

  it('refuses too few or degenerate measurements with a reason', () => {
    expect(() => fitRegression('fc', [{ x: [1, 2], y: 1 }])).toThrow('cannot fit "fc": 1 measurement, need at least 3')
    const same = [1, 2, 3, 4].map((y) => ({ x: [10, 20], y }))
    expect(() => fitRegression('fc', same)).toThrow('cannot fit "fc": the measured configurations do not vary enough to separate 3 terms')
  })

  it('refuses terms that cancel on nearly collinear variables (they explode on any other configuration)', () => {
    // Input and output sizes equal but for a hair, as in the grid's blocks; the time follows the input.
    const pts = [1000, 2000, 4000, 8000, 16000, 32000].map((n, i) => ({ x: [n, n + (i % 2 ? 0.001 : -0.001)], y: 0.01 + n * 1e-6 * (1 + (i % 3) * 0.1) }))
    expect(() => fitRegression('block', pts)).toThrow(
      'cannot fit "block": its variables (inputElements, outputElements) are too nearly collinear on the measured configurations'
    )
    // Distinct variables with the same data are fitted as before.
    const fine = [1000, 2000, 4000, 8000, 16000, 32000].map((n, i) => ({ x: [n, (n * (i + 3)) / 4], y: 0.01 + n * 1e-6 + n * (i + 3) * 2e-7 }))
    expect(fitRegression('block', fine).coefficients[0]).toBeCloseTo(1e-6, 9)
  })
})

describe("fitted variables beyond the paper's (multiply-accumulates)", () => {
  it("counts a layer's multiply-accumulates: conv = output elements × kernel area × input channels, fc = in × out", () => {
    // conv1: output 2×4×4 = 32 elements, 3×3 kernel, 1 input channel → 288
    expect(fitFeatures(layer('conv1'))).toEqual([16, 18, 288])
    const wide = { ...layer('conv1'), inputShape: [1, 3, 4, 4] } as Layer
    expect(featureValue(wide, 'macs')).toBe(32 * 9 * 3)
    expect(fitFeatures(layer('fc1'))).toEqual([8, 16, 128])
    expect(fitFeatures(layer('relu1'))).toEqual(layerFeatures(layer('relu1')))
    expect(FIT_FEATURES.conv).toEqual([...FEATURES.conv, 'macs'])
    expect(() => featureValue(layer('relu1'), 'macs')).toThrow('layer relu1 (relu) has no variable "macs"')
  })

  it('evaluates a profile regression by the variables it names, and refuses unknown ones', () => {
    const base = { format: 'edgent-calibration', schema: 1, id: 'p', edge: {} }
    const p = parseProfile({
      ...base,
      device: { conv: { features: ['inputElements', 'kernelOverStrideSquaredTimesFilters', 'macs'], coefficients: [0, 0, 0.5], intercept: 1 } }
    })
    expect(predictLayerMs(p, 'device', layer('conv1'))).toBe(1 + 0.5 * 288)
    const paperOnly = parseProfile({ ...base, device: { conv: { coefficients: [1, 2], intercept: 0 } } })
    expect(predictLayerMs(paperOnly, 'device', layer('conv1'))).toBe(16 + 2 * 18)
    expect(() => parseProfile({ ...base, device: { conv: { features: ['flops'], coefficients: [1], intercept: 0 } } })).toThrow(
      'device conv: unknown variable flops'
    )
    expect(() => parseProfile({ ...base, device: { conv: { features: ['inputElements', 'macs'], coefficients: [1], intercept: 0 } } })).toThrow(
      'device conv needs 2 coefficients (inputElements, macs), got 1'
    )
  })

  it('relative weighting recovers exact coefficients, and beats OLS on relative error when noise grows with size', () => {
    const exact = Array.from({ length: 12 }, (_, i) => ({
      x: [i + 1, (i * 7) % 5, (i + 1) ** 2 * 100],
      y: 0.5 + 0.1 * (i + 1) + 0.2 * ((i * 7) % 5) + 0.003 * (i + 1) ** 2 * 100
    }))
    const f = fitRegression('conv', exact, { features: FIT_FEATURES.conv, weighting: 'relative' })
    expect(f.intercept).toBeCloseTo(0.5, 9)
    expect(f.coefficients[0]).toBeCloseTo(0.1, 9)
    expect(f.coefficients[1]).toBeCloseTo(0.2, 9)
    expect(f.coefficients[2]).toBeCloseTo(0.003, 9)
    // y spans 3 decades with 5 % multiplicative noise: OLS chases the big ones, relative weights do not.
    const r = rng(7)
    const pts = Array.from({ length: 60 }, (_, i) => {
      const x = 10 ** (i / 20)
      return { x: [x], y: (0.05 + 0.01 * x) * (1 + 0.1 * (r() - 0.5)) * (i % 10 === 0 ? 1.6 : 1) }
    })
    const ols = fitRegression('relu', pts)
    const rel = fitRegression('relu', pts, { weighting: 'relative' })
    expect(rel.mape!).toBeLessThan(ols.mape!)
  })
})
