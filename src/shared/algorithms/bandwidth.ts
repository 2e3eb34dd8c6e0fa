/**
 * Uplink bandwidth estimation on the device–edge link: samples come from acknowledged activation
 * transfers and explicit probes. The estimate is an exponentially weighted moving average; a change
 * detector resets it when `confirm` consecutive samples all sit more than `threshold` away from it on
 * the same side and within `threshold` of each other, so a step change is followed within a couple
 * of samples instead of decaying slowly.
 */
export interface EstimatorOptions {
  /** EWMA weight of a new sample. */
  alpha: number
  /** Relative deviation that counts as a change (0.3 = 30 %). */
  threshold: number
  /** Consecutive deviating samples that confirm a change. */
  confirm: number
}

export const DEFAULT_ESTIMATOR: EstimatorOptions = { alpha: 0.3, threshold: 0.3, confirm: 2 }

export interface EstimateUpdate {
  kbps: number
  /** True when this sample confirmed a change and the estimate jumped to the new level. */
  changed: boolean
}

export class BandwidthEstimator {
  private value: number | null = null
  private pending: number[] = []

  constructor(private readonly opts: EstimatorOptions = DEFAULT_ESTIMATOR) {}

  get kbps(): number | null {
    return this.value
  }

  add(sampleKbps: number): EstimateUpdate {
    if (!(sampleKbps > 0) || !Number.isFinite(sampleKbps)) return { kbps: this.value ?? NaN, changed: false }
    if (this.value === null) {
      this.value = sampleKbps
      return { kbps: sampleKbps, changed: true }
    }
    const ratio = sampleKbps / this.value
    const side = ratio > 1 + this.opts.threshold ? 1 : ratio < 1 / (1 + this.opts.threshold) ? -1 : 0
    if (side !== 0) {
      // The confirming samples must agree with each other: a deviating sample on the other side of
      // the pending run, or far (> threshold) from its last sample, starts a new run (an outlier up
      // then a real drop, or a stale sample then the new level, must not set a level between them).
      const last = this.pending[this.pending.length - 1]
      if (last !== undefined && (Math.sign(last - this.value) !== side || Math.max(last, sampleKbps) / Math.min(last, sampleKbps) > 1 + this.opts.threshold))
        this.pending = []
      this.pending.push(sampleKbps)
      if (this.pending.length >= this.opts.confirm) {
        // geometric mean of the confirming samples: the new level
        this.value = Math.exp(this.pending.reduce((a, b) => a + Math.log(b), 0) / this.pending.length)
        this.pending = []
        return { kbps: this.value, changed: true }
      }
      return { kbps: this.value, changed: false }
    }
    this.pending = []
    this.value = this.opts.alpha * sampleKbps + (1 - this.opts.alpha) * this.value
    return { kbps: this.value, changed: false }
  }
}

/** Bytes of a packet-train probe lasting about a quarter second at `kbps` (2 KiB to 64 KiB). */
export function probeBytes(kbps: number): number {
  return Math.round(Math.min(64 * 1024, Math.max(2048, (kbps * 1000 * 0.25) / 8)))
}
