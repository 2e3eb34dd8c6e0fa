import { describe, expect, it } from 'vitest'
import { OnlineCorrection } from '../../../src/shared/algorithms/correction.js'
import type { Layer } from '../../../src/shared/contracts/manifest.js'

const layer = (id: string) => ({ id }) as Layer

describe('online correction', () => {
  it('moves every layer of a segment geometrically toward the measured/predicted ratio', () => {
    const c = new OnlineCorrection(0.5)
    c.observe('device', ['a', 'b'], 10, 40) // ratio 4, step 4^0.5 = 2
    expect(c.factor('device', 'a')).toBeCloseTo(2, 12)
    expect(c.factor('device', 'b')).toBeCloseTo(2, 12)
    expect(c.factor('edge', 'a')).toBe(1)
    expect(c.factor('device', 'c')).toBe(1)
    c.observe('device', ['a'], 20, 20) // prediction already corrected and right: no change
    expect(c.factor('device', 'a')).toBeCloseTo(2, 12)
  })

  it('converges to the true ratio when predictions are corrected each time', () => {
    const c = new OnlineCorrection(0.3)
    const truth = 3
    for (let i = 0; i < 60; i++) {
      const predicted = 5 * c.factor('edge', 'x')
      c.observe('edge', ['x'], predicted, 5 * truth)
    }
    expect(c.factor('edge', 'x')).toBeCloseTo(truth, 6)
  })

  it('learns a fixed per-inference overhead from end-to-end residuals', () => {
    const c = new OnlineCorrection(0.5)
    c.observeResidual(10, 14) // target 4, half way
    expect(c.overheadMs).toBeCloseTo(2, 12)
    c.observeResidual(12, 14) // prediction included 2: target 4 again
    expect(c.overheadMs).toBeCloseTo(3, 12)
    c.observeResidual(20, 1) // never below 0
    expect(c.overheadMs).toBeCloseTo(1.5, 12)
    expect(c.wrap({ id: 's', overheadMs: 1, layerMs: () => 0 }).overheadMs).toBeCloseTo(2.5, 12)
  })

  it('ignores non-positive or non-finite times and wraps a latency source', () => {
    const c = new OnlineCorrection()
    c.observe('edge', ['x'], 0, 5)
    c.observe('edge', ['x'], 5, Number.NaN)
    expect(c.factor('edge', 'x')).toBe(1)
    c.observe('edge', ['x'], 1, 8) // 8^0.3
    const src = c.wrap({ id: 's', overheadMs: 0, layerMs: (side) => (side === 'edge' ? 2 : 1) })
    expect(src.layerMs('edge', layer('x'))).toBeCloseTo(2 * 8 ** 0.3, 12)
    expect(src.layerMs('device', layer('x'))).toBe(1)
    expect(c.meanFactor('edge')).toBeCloseTo(8 ** 0.3, 12)
  })
})
