/**
 * Timing synthetic single-layer models (a `layers` campaign's unit of work), the same on both sides:
 * model loading (session creation), then the median of `reps` runs after a warm-up. The console
 * times the edge with it; the agent answers `time-layers` with it.
 */
import { median } from 'simple-statistics'
import type { LayerMeasurement, TimingRegime } from '../../shared/contracts/agent-api.js'
import { fitFeatures, regressionKeyOf } from '../../shared/algorithms/latency.js'
import { buildSynthetic, specKey, type SyntheticSpec } from '../../shared/onnx/onnx-builder.js'
import type { OrtExecutor } from './executor.js'

/** `slowdown` scales the times (the agent's slowdown emulation reports a slower device's). */
export async function timeSynthetic(
  ex: OrtExecutor,
  specs: readonly SyntheticSpec[],
  reps: number,
  slowdown = 1,
  regime: TimingRegime = 'warm'
): Promise<LayerMeasurement[]> {
  const models = specs.map(buildSynthetic)
  const times = await ex.timeModels(models, reps, regime)
  return specs.map((spec, i) => {
    const model = models[i]!
    const t = times[i]!
    return {
      key: specKey(spec),
      spec,
      regressionKey: regressionKeyOf(model.layer),
      features: fitFeatures(model.layer),
      runMs: median(t.runMs) * slowdown,
      repsMs: t.runMs.map((x) => x * slowdown),
      loadMs: t.loadMs * slowdown,
      modelBytes: model.bytes.length,
      reps
    }
  })
}
