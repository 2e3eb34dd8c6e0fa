/**
 * Confidence exits (issue 31): BranchyNet's run-time mechanism — a frame leaves at the first exit
 * confident enough — measured, not assumed.
 *
 * - **Scores**: an exit's output is a probability vector (the shipped and added exits end in a
 *   Softmax) or logits; log-probabilities serve as logits (softmax is shift-invariant).
 * - **Temperature scaling** (Guo et al., ICML'17): one T per exit, fitted on labelled frames by
 *   minimising the negative log-likelihood of softmax(z / T) (a golden-section search over log T);
 *   early exits are over-confident, and a threshold means the same at every exit only once calibrated.
 * - **Confidence**: max-softmax, or 1 − normalised entropy; both in [0, 1].
 * - **Policy**: a threshold per exit but the last (which always answers); a frame leaves at the first
 *   exit whose confidence reaches its threshold. A static exit i is the policy with threshold 0 at i
 *   (and never before it).
 * - **Pareto policies**: every policy of a threshold grid evaluated on the frames' per-exit scores
 *   (expected compute against accuracy), the non-dominated ones kept.
 */

import { argmax } from './preprocess.js'

export type ConfidenceMeasure = 'max-softmax' | 'entropy'

/** The thresholds a policy's exits take (each, or never): `edgent model policies` and the audits' tuning search this grid. */
export const THRESHOLD_GRID = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995] as const

/** Scores of one frame at every exit, as logits (log-probabilities where the exit ends in a Softmax). */
export type FrameScores = readonly Float32Array[]

/** Log-probabilities of a probability vector (floored, so a 0 stays finite). */
export function asLogits(scores: Float32Array, probabilities: boolean): Float32Array {
  if (!probabilities) return scores
  const z = new Float32Array(scores.length)
  for (let i = 0; i < scores.length; i++) z[i] = Math.log(Math.max(scores[i]!, 1e-30))
  return z
}

/** softmax(z / T). */
export function softmaxT(z: ArrayLike<number>, t: number): Float64Array {
  const p = new Float64Array(z.length)
  let top = -Infinity
  for (let i = 0; i < z.length; i++) top = Math.max(top, z[i]! / t)
  let sum = 0
  for (let i = 0; i < z.length; i++) {
    p[i] = Math.exp(z[i]! / t - top)
    sum += p[i]!
  }
  for (let i = 0; i < z.length; i++) p[i]! /= sum
  return p
}

/** A frame's confidence at an exit, in [0, 1]. */
export function confidenceOf(p: ArrayLike<number>, measure: ConfidenceMeasure): number {
  if (measure === 'max-softmax') {
    let m = 0
    for (let i = 0; i < p.length; i++) m = Math.max(m, p[i]!)
    return m
  }
  let h = 0
  for (let i = 0; i < p.length; i++) if (p[i]! > 0) h -= p[i]! * Math.log(p[i]!)
  return p.length > 1 ? Math.min(1, Math.max(0, 1 - h / Math.log(p.length))) : 1
}

/** Mean negative log-likelihood of labels under softmax(z / T). */
export function nll(logits: readonly ArrayLike<number>[], labels: ArrayLike<number>, t: number): number {
  let s = 0
  for (let k = 0; k < logits.length; k++) s -= Math.log(Math.max(softmaxT(logits[k]!, t)[labels[k]!]!, 1e-300))
  return s / logits.length
}

/** The temperature minimising the NLL, searched over T in [0.05, 20] (golden section on log T). */
export function fitTemperature(logits: readonly ArrayLike<number>[], labels: ArrayLike<number>): number {
  if (!logits.length) return 1
  let a = Math.log(0.05)
  let b = Math.log(20)
  const g = (Math.sqrt(5) - 1) / 2
  let c = b - g * (b - a)
  let d = a + g * (b - a)
  let fc = nll(logits, labels, Math.exp(c))
  let fd = nll(logits, labels, Math.exp(d))
  for (let i = 0; i < 60 && b - a > 1e-4; i++) {
    if (fc < fd) {
      b = d
      d = c
      fd = fc
      c = b - g * (b - a)
      fc = nll(logits, labels, Math.exp(c))
    } else {
      a = c
      c = d
      fc = fd
      d = a + g * (b - a)
      fd = nll(logits, labels, Math.exp(d))
    }
  }
  return Math.exp((a + b) / 2)
}

/** Expected calibration error of max-softmax confidence over `bins` equal-width bins. */
export function expectedCalibrationError(logits: readonly ArrayLike<number>[], labels: ArrayLike<number>, t: number, bins = 15): number {
  const count = new Float64Array(bins)
  const conf = new Float64Array(bins)
  const hits = new Float64Array(bins)
  for (let k = 0; k < logits.length; k++) {
    const p = softmaxT(logits[k]!, t)
    const c = confidenceOf(p, 'max-softmax')
    const b = Math.min(bins - 1, Math.floor(c * bins))
    count[b]!++
    conf[b]! += c
    if (argmax(p) === labels[k]) hits[b]!++
  }
  let e = 0
  for (let b = 0; b < bins; b++) if (count[b]) e += Math.abs(hits[b]! - conf[b]!) / logits.length
  return e
}

/** Per frame and exit: its calibrated confidence and whether the exit is right. */
export interface ExitOutcomes {
  /** [frame][exit] confidence in [0, 1]. */
  confidence: Float64Array[]
  /** [frame][exit] the exit's answer is the label. */
  correct: Uint8Array[]
}

export function outcomes(frames: readonly FrameScores[], labels: ArrayLike<number>, temperatures: readonly number[], measure: ConfidenceMeasure): ExitOutcomes {
  const confidence: Float64Array[] = []
  const correct: Uint8Array[] = []
  for (const [k, f] of frames.entries()) {
    const c = new Float64Array(f.length)
    const r = new Uint8Array(f.length)
    for (const [e, z] of f.entries()) {
      const p = softmaxT(z, temperatures[e]!)
      c[e] = confidenceOf(p, measure)
      r[e] = argmax(p) === labels[k] ? 1 : 0
    }
    confidence.push(c)
    correct.push(r)
  }
  return { confidence, correct }
}

/** A threshold per exit; the last always answers (its threshold is ignored). */
export type Policy = readonly number[]

export interface PolicyResult {
  thresholds: number[]
  /** Share of frames leaving at each exit. */
  leave: number[]
  accuracy: number
  /** Expected compute, in the units of `cost` (e.g. the path's MACs up to each exit). */
  cost: number
}

/** Where each frame leaves under a policy, the accuracy and the expected cost. */
export function evaluatePolicy(o: ExitOutcomes, policy: Policy, cost: readonly number[]): PolicyResult {
  const exits = cost.length
  const leave = new Array<number>(exits).fill(0)
  let right = 0
  let spent = 0
  const n = o.confidence.length
  for (let k = 0; k < n; k++) {
    let e = 0
    while (e < exits - 1 && o.confidence[k]![e]! < policy[e]!) e++
    leave[e]!++
    right += o.correct[k]![e]!
    spent += cost[e]!
  }
  return { thresholds: [...policy], leave: leave.map((v) => v / n), accuracy: right / n, cost: spent / n }
}

/** The static policy of exit i (0-based): never before it, always at it. */
export function staticPolicy(exit: number, exits: number): number[] {
  return Array.from({ length: exits }, (_, e) => (e < exit ? Number.POSITIVE_INFINITY : 0))
}

/**
 * Every policy of the grid (each exit but the last takes a grid value, or never), evaluated, and the
 * Pareto set: no other policy at most as costly and at least as accurate, one strictly.
 */
export function paretoPolicies(o: ExitOutcomes, cost: readonly number[], grid: readonly number[]): PolicyResult[] {
  const exits = cost.length
  const values = [...grid, Number.POSITIVE_INFINITY]
  const all: PolicyResult[] = []
  const t = new Array<number>(exits).fill(0)
  const walk = (e: number) => {
    if (e === exits - 1) {
      all.push(evaluatePolicy(o, t, cost))
      return
    }
    for (const v of values) {
      t[e] = v
      walk(e + 1)
    }
  }
  walk(0)
  all.sort((a, b) => a.cost - b.cost || b.accuracy - a.accuracy)
  const front: PolicyResult[] = []
  let best = -1
  for (const p of all) {
    if (p.accuracy > best + 1e-12) {
      front.push(p)
      best = p.accuracy
    }
  }
  return front
}
