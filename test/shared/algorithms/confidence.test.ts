/**
 * Confidence exits' arithmetic (issue 31): temperature scaling, confidence, policies and their Pareto
 * set, on synthetic exits whose truth is known.
 */
import { describe, expect, it } from 'vitest'
import {
  confidenceOf,
  evaluatePolicy,
  expectedCalibrationError,
  fitTemperature,
  outcomes,
  paretoPolicies,
  softmaxT,
  staticPolicy
} from '../../../src/shared/algorithms/confidence.js'

/** A seeded uniform generator. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

/**
 * Frames of a 10-class problem whose labels are drawn from softmax(z / t0): a model reporting z is
 * calibrated at T = t0 exactly (over-confident at T = 1 when t0 > 1).
 */
function calibratedAt(t0: number, n: number, seed: number): { logits: Float32Array[]; labels: number[] } {
  const r = rng(seed)
  const logits: Float32Array[] = []
  const labels: number[] = []
  for (let k = 0; k < n; k++) {
    const z = Float32Array.from({ length: 10 }, () => (r() - 0.5) * 12)
    const p = softmaxT(z, t0)
    let u = r()
    let c = 0
    while (c < 9 && u > p[c]!) u -= p[c++]!
    logits.push(z)
    labels.push(c)
  }
  return { logits, labels }
}

describe('confidence exits', () => {
  it('fits the temperature a model is calibrated at, and lowers the held-out calibration error', () => {
    const fit = calibratedAt(2.5, 3000, 1)
    const held = calibratedAt(2.5, 3000, 2)
    const t = fitTemperature(fit.logits, fit.labels)
    expect(t).toBeGreaterThan(2.5 * 0.9)
    expect(t).toBeLessThan(2.5 * 1.1)
    const before = expectedCalibrationError(held.logits, held.labels, 1)
    const after = expectedCalibrationError(held.logits, held.labels, t)
    expect(after).toBeLessThan(before / 2)
  })

  it('measures confidence in [0, 1] both ways, 1 for a certain answer, lowest for a uniform one', () => {
    for (const m of ['max-softmax', 'entropy'] as const) {
      expect(confidenceOf([1, 0, 0, 0], m)).toBeCloseTo(1, 12)
      const u = confidenceOf([0.25, 0.25, 0.25, 0.25], m)
      expect(u).toBeCloseTo(m === 'max-softmax' ? 0.25 : 0, 12)
      const mid = confidenceOf([0.7, 0.1, 0.1, 0.1], m)
      expect(mid).toBeGreaterThan(u)
      expect(mid).toBeLessThan(1)
    }
  })

  /** Three exits: the later, the more often right; confidence tracks correctness. */
  function threeExits(n: number) {
    const r = rng(7)
    const frames: Float32Array[][] = []
    const labels: number[] = []
    for (let k = 0; k < n; k++) {
      const label = Math.floor(r() * 4)
      labels.push(label)
      frames.push(
        [0.6, 0.8, 0.95].map((skill) => {
          const z = Float32Array.from({ length: 4 }, () => r() * 2)
          if (r() < skill) z[label]! += 1 + r() * 4
          return z
        })
      )
    }
    return { frames, labels }
  }

  it('a static policy is the exit itself: every frame leaves there, at its accuracy', () => {
    const { frames, labels } = threeExits(2000)
    const o = outcomes(frames, labels, [1, 1, 1], 'max-softmax')
    for (let e = 0; e < 3; e++) {
      const r = evaluatePolicy(o, staticPolicy(e, 3), [1, 2, 3])
      expect(r.leave[e]).toBe(1)
      expect(r.cost).toBe(e + 1)
      expect(r.accuracy).toBe(o.correct.reduce((a, c) => a + c[e]!, 0) / 2000)
    }
  })

  it('keeps the Pareto set: cost and accuracy both increase along it, and it beats the early static exits for what they cost', () => {
    const { frames, labels } = threeExits(2000)
    const o = outcomes(frames, labels, [1, 1, 1], 'max-softmax')
    const cost = [1, 2, 3]
    const front = paretoPolicies(o, cost, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    expect(front.length).toBeGreaterThan(3)
    for (let i = 1; i < front.length; i++) {
      expect(front[i]!.cost).toBeGreaterThanOrEqual(front[i - 1]!.cost)
      expect(front[i]!.accuracy).toBeGreaterThan(front[i - 1]!.accuracy)
    }
    const final = evaluatePolicy(o, staticPolicy(2, 3), cost)
    expect(front[front.length - 1]!.accuracy).toBeGreaterThanOrEqual(final.accuracy)
    // a confidence policy costing less than the final exit is more accurate than the middle exit alone
    const middle = evaluatePolicy(o, staticPolicy(1, 3), cost)
    const cheaper = front.filter((p) => p.cost <= final.cost * 0.8)
    expect(Math.max(...cheaper.map((p) => p.accuracy))).toBeGreaterThan(middle.accuracy)
  })
})
