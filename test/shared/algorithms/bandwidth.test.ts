import { describe, expect, it } from 'vitest'
import { BandwidthEstimator } from '../../../src/shared/algorithms/bandwidth.js'

describe('bandwidth estimator', () => {
  it('starts at the first sample and smooths noise with the EWMA', () => {
    const e = new BandwidthEstimator()
    expect(e.add(500)).toEqual({ kbps: 500, changed: true })
    expect(e.add(550).kbps).toBeCloseTo(0.3 * 550 + 0.7 * 500, 10)
    expect(e.add(480).changed).toBe(false)
  })

  it('follows a step change after two confirming samples', () => {
    const e = new BandwidthEstimator()
    for (const s of [500, 510, 490, 505]) e.add(s)
    expect(e.add(100)).toMatchObject({ changed: false })
    const u = e.add(110)
    expect(u.changed).toBe(true)
    expect(u.kbps).toBeCloseTo(Math.sqrt(100 * 110), 10)
  })

  it('ignores a single outlier', () => {
    const e = new BandwidthEstimator()
    for (const s of [500, 500, 500]) e.add(s)
    e.add(50)
    const after = e.add(500)
    expect(after.changed).toBe(false)
    expect(after.kbps).toBeCloseTo(500, 6)
  })

  it('does not confirm a change from deviations on opposite sides', () => {
    const e = new BandwidthEstimator()
    e.add(500)
    e.add(1000)
    expect(e.add(200).changed).toBe(false)
  })

  it('follows a drop confirmed right after an outlier on the other side (seen on a tc-shaped link)', () => {
    const e = new BandwidthEstimator()
    e.add(371_570)
    e.add(10_485_760) // a probe acknowledged at once: absurdly fast
    expect(e.add(478).changed).toBe(false) // the shaper's rate, first sample: a new run, not averaged in
    expect(e.kbps).toBe(371_570)
    const u = e.add(483)
    expect(u.changed).toBe(true)
    expect(u.kbps).toBeCloseTo(Math.sqrt(478 * 483), 6)
  })

  it('confirms a change only with samples that agree with each other (a stale sample, then the new level)', () => {
    const e = new BandwidthEstimator()
    e.add(2_621_440)
    e.add(1958) // an earlier, small transfer's sample
    expect(e.add(482).changed).toBe(false) // far from 1958: a new run
    const u = e.add(482)
    expect(u.changed).toBe(true)
    expect(u.kbps).toBeCloseTo(482, 6)
  })

  it('ignores non-positive and non-finite samples', () => {
    const e = new BandwidthEstimator()
    e.add(300)
    expect(e.add(0).kbps).toBe(300)
    expect(e.add(Number.NaN).kbps).toBe(300)
    expect(e.add(Infinity).kbps).toBe(300)
  })
})
