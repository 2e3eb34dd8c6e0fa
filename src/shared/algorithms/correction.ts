/**
 * Online correction of latency predictions (DESIGN.md, "Latency prediction": measured/predicted
 * ratio per layer, smoothed). Co-inference measures fused segments — the device prefix and the edge
 * suffix — not single layers, so a segment's ratio is credited to every layer in it: each layer's
 * factor moves geometrically toward the observed ratio, f ← f · (measured / predicted)^α, where the
 * prediction already includes the current factors. Layers never observed keep the factor 1.
 *
 * What no layer accounts for — preprocessing, thread hand-offs, messaging — is learned as a fixed
 * per-inference overhead: an exponentially weighted average of the end-to-end residual.
 */
import type { Side } from './latency.js'
import type { LayerLatencySource } from './planner.js'

export class OnlineCorrection {
  private readonly factors: Record<Side, Map<string, number>> = { device: new Map(), edge: new Map() }

  /** Learned fixed cost per inference, ms. */
  overheadMs = 0

  constructor(readonly alpha = 0.3) {}

  /**
   * An end-to-end measurement against a prediction that already included `overheadMs`: the overhead
   * moves toward the residual (never below 0).
   */
  observeResidual(predictedMs: number, measuredMs: number): void {
    if (!Number.isFinite(predictedMs) || !Number.isFinite(measuredMs)) return
    const target = Math.max(0, this.overheadMs + (measuredMs - predictedMs))
    this.overheadMs += this.alpha * (target - this.overheadMs)
  }

  factor(side: Side, layerId: string): number {
    return this.factors[side].get(layerId) ?? 1
  }

  /** A segment measured against its corrected prediction; non-positive times are ignored. */
  observe(side: Side, layerIds: readonly string[], predictedMs: number, measuredMs: number): void {
    if (!(predictedMs > 0) || !(measuredMs > 0) || !Number.isFinite(predictedMs) || !Number.isFinite(measuredMs)) return
    const step = (measuredMs / predictedMs) ** this.alpha
    for (const id of layerIds) this.factors[side].set(id, this.factor(side, id) * step)
  }

  /** The mean factor of a side over the layers observed so far (1 when none). */
  meanFactor(side: Side): number {
    const v = [...this.factors[side].values()]
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : 1
  }

  /** A latency source whose layer times are corrected. */
  wrap(source: LayerLatencySource): LayerLatencySource {
    return {
      ...source,
      id: `${source.id}+online-correction`,
      overheadMs: source.overheadMs + this.overheadMs,
      layerMs: (side, layer) => source.layerMs(side, layer) * this.factor(side, layer.id)
    }
  }
}

/** Plans whose predictions a correction moves alike: where the layers run. */
export type PlanFamily = 'device-only' | 'split' | 'edge-only'
export const PLAN_FAMILIES: readonly PlanFamily[] = ['device-only', 'split', 'edge-only']

export const planFamily = (c: { deviceLayers: number; layers: number }): PlanFamily =>
  c.deviceLayers === 0 ? 'edge-only' : c.deviceLayers >= c.layers ? 'device-only' : 'split'

export interface GateScore {
  family: PlanFamily
  /** Smoothed relative end-to-end error of the corrected and of the uncorrected predictions. */
  correctedError: number
  rawError: number
  /** Batches scored. */
  batches: number
  /** Whether the family's plans are predicted with the correction now. */
  used: boolean
}

/**
 * A correction is kept only while it measures better than none, per plan family: each batch scores
 * both predictions of its plans against what they measured — out of sample, before the batch teaches
 * the correction — and a family's plans are corrected until the smoothed corrected error is the
 * larger, and again once it is not (after a sweep, corrections learned on one family made another's
 * predictions 2–3× worse, batch after batch). A family not scored yet is corrected: the learned
 * overhead holds for every plan, and one batch says whether the rest does.
 */
export class CorrectionGate {
  private readonly scores = new Map<PlanFamily, { corrected: number; raw: number; batches: number }>()

  constructor(readonly alpha = 0.3) {}

  observe(family: PlanFamily, correctedError: number, rawError: number): void {
    if (!Number.isFinite(correctedError) || !Number.isFinite(rawError)) return
    const s = this.scores.get(family)
    if (!s) {
      this.scores.set(family, { corrected: correctedError, raw: rawError, batches: 1 })
      return
    }
    s.corrected += this.alpha * (correctedError - s.corrected)
    s.raw += this.alpha * (rawError - s.raw)
    s.batches++
  }

  uses(family: PlanFamily): boolean {
    const s = this.scores.get(family)
    return !s || s.corrected <= s.raw
  }

  view(): GateScore[] {
    return PLAN_FAMILIES.flatMap((family) => {
      const s = this.scores.get(family)
      return s ? [{ family, correctedError: s.corrected, rawError: s.raw, batches: s.batches, used: s.corrected <= s.raw }] : []
    })
  }
}
