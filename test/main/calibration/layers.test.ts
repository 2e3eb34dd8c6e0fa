import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { layerGrid } from '../../../src/main/calibration/layers.js'
import { timeSynthetic } from '../../../src/main/runtime/synthetic.js'
import { OrtExecutor } from '../../../src/main/runtime/executor.js'
import { buildSynthetic, type SyntheticSpec } from '../../../src/shared/onnx/onnx-builder.js'
import { REGRESSION_KEYS } from '../../../src/shared/algorithms/latency.js'

describe('synthetic single-layer models', () => {
  const ex = new OrtExecutor()
  beforeAll(() => ex.start())
  afterAll(() => ex.stop())

  it("builds a conv layer whose features are the paper's variables", () => {
    const m = buildSynthetic({ type: 'conv', channels: 16, size: 14, filters: 64, kernel: 5, stride: 2 })
    expect(m.inputDims).toEqual([1, 16, 14, 14])
    expect(m.layer.outputShape).toEqual([1, 64, 7, 7]) // pad 2: floor((14 + 4 - 5) / 2) + 1
    expect(m.layer.outputBytes).toBe(64 * 49 * 4)
  })

  it("times every configuration of the grid on onnxruntime, each type of the paper's table covered", async () => {
    const grid = layerGrid()
    const measured = await timeSynthetic(ex, grid, 1, 1)
    const seen = new Set(measured.map((m) => m.regressionKey))
    expect(measured).toHaveLength(grid.length)
    for (const key of ['conv', 'relu', 'pool', 'lrn', 'dropout', 'fc'] as const) expect(seen.has(key), key).toBe(true)
    // and today's op types, each under its own regression
    for (const key of ['dwconv', 'batchnorm', 'add', 'concat', 'globalpool', 'activation', 'generic', 'other'] as const) expect(seen.has(key), key).toBe(true)
    for (const m of measured) {
      expect(REGRESSION_KEYS).toContain(m.regressionKey)
      expect(m.runMs).toBeGreaterThan(0)
      expect(m.loadMs).toBeGreaterThan(0)
      expect(m.modelBytes).toBeGreaterThan(0)
    }
    const conv = measured.find((m) => m.regressionKey === 'conv')!
    // the paper's two variables, then multiply-accumulates: 16 filters × 8 × 8 outputs × 3 × 3 × 3 channels
    expect(conv.features).toEqual([3 * 8 * 8, (3 / 1) * (3 / 1) * 16, 16 * 8 * 8 * 3 * 3 * 3])
    const fc = measured.find((m) => m.regressionKey === 'fc')!
    expect(fc.features).toEqual([128, 10, 1280])
    const dw = measured.find((m) => m.regressionKey === 'dwconv')!
    // input and output elements, then multiply-accumulates: 16 channels × 7 × 7 outputs × 3 × 3, one input channel each
    expect(dw.features).toEqual([16 * 7 * 7, 16 * 7 * 7, 16 * 7 * 7 * 3 * 3])
  }, 120_000)

  it('times cold on request: every run after a cache flush and an idle, each repetition reported', async () => {
    const spec: SyntheticSpec = { type: 'fc', inputs: 128, outputs: 10 }
    const reps = 10
    const t0 = performance.now()
    const [cold] = await timeSynthetic(ex, [spec], reps, 1, 'cold')
    const coldWall = performance.now() - t0
    expect(cold!.repsMs).toHaveLength(reps)
    expect(cold!.repsMs!.every((v) => v > 0 && Number.isFinite(v))).toBe(true)
    // Each cold run waits out the idle (2 ms) first: the call cannot take less than reps × 2 ms.
    expect(coldWall).toBeGreaterThanOrEqual(reps * 2)
    const [warm] = await timeSynthetic(ex, [spec], reps, 1, 'warm')
    expect(warm!.repsMs).toHaveLength(reps)
  })

  it('builds pool, flatten and softmax models that onnxruntime loads and runs', async () => {
    const specs: SyntheticSpec[] = [
      { type: 'pool', channels: 8, size: 9, kernel: 3, stride: 2 },
      { type: 'flatten', shape: [1, 4, 3, 3] },
      { type: 'softmax', shape: [1, 10] }
    ]
    for (const spec of specs) {
      const m = buildSynthetic(spec)
      const t = await ex.timeModel(m.bytes, m.inputDims, 1)
      expect(t.runMs).toHaveLength(1)
    }
  })
})
