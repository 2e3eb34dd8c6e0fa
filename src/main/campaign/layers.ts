/**
 * The `layers` campaign's workload: a grid of synthetic single-layer models for every layer type of
 * the paper's table (and the cheap ones), each timed on one side through the executor: model loading
 * (session creation), then the median of `reps` runs after a warm-up.
 */
import { median } from 'simple-statistics'
import { fitFeatures, regressionKeyOf, type RegressionKey } from '../../shared/latency.js'
import { buildSynthetic, specKey, type SyntheticSpec } from '../../shared/onnx-builder.js'
import type { OrtExecutor } from '../runtime/executor.js'

export interface LayerMeasurement {
  key: string
  spec: SyntheticSpec
  regressionKey: RegressionKey
  /** The paper's variables for this layer (FEATURES order). */
  features: number[]
  /** Median run time, ms. */
  runMs: number
  /** Session creation from the model bytes, ms. */
  loadMs: number
  modelBytes: number
  reps: number
}

/** The configurations timed by a `layers` campaign, in a fixed order. */
export function layerGrid(): SyntheticSpec[] {
  const g: SyntheticSpec[] = []
  for (const channels of [3, 16, 64]) for (const size of [8, 14, 28]) for (const filters of [16, 64, 128]) for (const kernel of [3, 5]) for (const stride of [1, 2]) g.push({ type: 'conv', channels, size, filters, kernel, stride })
  for (const channels of [16, 32, 64, 128]) for (const size of [7, 14, 28]) for (const kernel of [2, 3]) for (const stride of [1, 2]) g.push({ type: 'pool', channels, size, kernel, stride })
  for (const inputs of [128, 256, 512, 1152, 2048, 3072, 4096]) for (const outputs of [10, 64, 128, 256, 512, 1024]) g.push({ type: 'fc', inputs, outputs })
  for (const type of ['relu', 'lrn', 'dropout', 'flatten'] as const) for (const c of [16, 32, 64, 128]) for (const h of [7, 14, 28]) g.push({ type, shape: [1, c, h, h] })
  for (const n of [10, 100, 1000, 10000]) g.push({ type: 'softmax', shape: [1, n] })
  return g
}

export async function timeSynthetic(ex: OrtExecutor, specs: readonly SyntheticSpec[], reps: number, slowdown = 1, onDone?: (m: LayerMeasurement) => void): Promise<LayerMeasurement[]> {
  const out: LayerMeasurement[] = []
  const models = specs.map(buildSynthetic)
  const times = await ex.timeModels(models, reps)
  for (const [i, spec] of specs.entries()) {
    const model = models[i]!
    const t = times[i]!
    const m: LayerMeasurement = {
      key: specKey(spec),
      spec,
      regressionKey: regressionKeyOf(model.layer),
      features: fitFeatures(model.layer),
      runMs: median(t.runMs) * slowdown,
      loadMs: t.loadMs * slowdown,
      modelBytes: model.bytes.length,
      reps
    }
    out.push(m)
    onDone?.(m)
  }
  return out
}
