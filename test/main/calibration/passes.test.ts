import { describe, expect, it } from 'vitest'
import { aggregatePasses } from '../../../src/main/calibration/fit.js'

describe('aggregatePasses', () => {
  it('keeps one row per side and configuration: the fastest run, the median load', () => {
    const rows = [
      { side: 'edge' as const, config: 'a', runMs: 0.06, loadMs: 3, pass: 0 },
      { side: 'edge' as const, config: 'a', runMs: 0.03, loadMs: 9, pass: 1 },
      { side: 'edge' as const, config: 'a', runMs: 0.05, loadMs: 4, pass: 2 },
      { side: 'device' as const, config: 'a', runMs: 0.4, loadMs: 20, pass: 0 },
      { side: 'edge' as const, config: 'b', runMs: 0.1, loadMs: 1, pass: 0 },
      { side: 'edge' as const, runMs: 0.7, loadMs: 0 },
      { side: 'edge' as const, runMs: 0.8, loadMs: 0 }
    ]
    const out = aggregatePasses(rows)
    expect(out).toHaveLength(5)
    expect(out.find((r) => r.side === 'edge' && r.config === 'a')).toEqual({ side: 'edge', config: 'a', runMs: 0.03, loadMs: 4, pass: 1 })
    expect(out.find((r) => r.side === 'device' && r.config === 'a')!.runMs).toBe(0.4)
    expect(out.filter((r) => r.config === undefined).map((r) => r.runMs)).toEqual([0.7, 0.8])
  })
})
