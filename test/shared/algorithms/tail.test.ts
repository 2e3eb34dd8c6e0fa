import { quantile } from 'simple-statistics'
import { describe, expect, it } from 'vitest'
import { plan, type Candidate, type CostTable } from '../../../src/shared/algorithms/planner.js'
import { TAIL_MIN_SAMPLES, measureTail, tailTable, type TailSample } from '../../../src/shared/algorithms/tail.js'
import { mulberry32 } from '../../fixtures/prng.js'

/** n inferences of one plan: device and edge times spread around their medians, a link part of `linkMs` ± jitter. */
function runs(planId: string, n: number, dev: number, edge: number, linkMs: number, spread: number, rand: () => number): TailSample[] {
  return Array.from({ length: n }, () => {
    const d = dev * (1 + spread * rand())
    const e = edge * (1 + spread * rand())
    return { planId, deviceLayers: dev > 0 ? 3 : 0, deviceMs: d, edgeMs: e, e2eMs: d + e + linkMs + 2 * rand() }
  })
}

describe('tail-aware planning', () => {
  it('measures each side’s dispersion plan by plan: percentile over the plan’s median', () => {
    const rand = mulberry32(7)
    // Two plans 10× apart: pooled raw times would make the slow plan the "tail" of the fast one.
    const rows = [...runs('a', 100, 1, 0.5, 3, 0.4, rand), ...runs('b', 100, 10, 5, 3, 0.4, rand)]
    const t = measureTail(rows, 95)
    expect(t.why).toBeNull()
    expect(t).toMatchObject({ percentile: 95, samples: 200, plans: 2 })
    const rel = (xs: number[]) => {
      const m = quantile(xs, 0.5)
      return xs.map((x) => x / m)
    }
    const dev = [...rel(rows.slice(0, 100).map((r) => r.deviceMs)), ...rel(rows.slice(100).map((r) => r.deviceMs))]
    expect(t.deviceFactor).toBeCloseTo(quantile(dev, 0.95), 12)
    // Times uniform over 1–1.4× a base: the 95th percentile is 1.38 / 1.2 ≈ 1.15× the median, not 10×.
    expect(t.deviceFactor).toBeGreaterThan(1.1)
    expect(t.deviceFactor).toBeLessThan(1.2)
    expect(t.edgeFactor).toBeGreaterThan(1.1)
    expect(t.edgeFactor).toBeLessThan(1.2)
    // The link part jitters by 0–2 ms: its excess at p95 is under 1 ms (half the jitter, plus the segments' rounding).
    expect(t.extraMs).toBeGreaterThan(0.5)
    expect(t.extraMs).toBeLessThan(1.1)
    // At the median there is nothing to add.
    const mid = measureTail(rows, 50)
    expect(mid.deviceFactor).toBeCloseTo(1, 1)
  })

  it("measures a confidence-exit plan's frames per exit they left at: different work is not dispersion", () => {
    // one policy plan: 60 frames leave at exit 1 after 10 ms on the device, 40 at exit 5 after 40 ms, each steady
    const rows: TailSample[] = Array.from({ length: 100 }, (_, i) => {
      const deep = i % 5 < 2
      const deviceMs = (deep ? 40 : 10) * (1 + 0.01 * (i % 3))
      return { planId: 'p', exit: deep ? 5 : 1, deviceLayers: 19, deviceMs, edgeMs: 0, e2eMs: deviceMs + 1 }
    })
    expect(measureTail(rows, 95).deviceFactor).toBeLessThan(1.05)
    // read as one plan, the two exits would look like a 4× dispersion
    expect(
      measureTail(
        rows.map(({ exit: _e, ...r }) => r),
        95
      ).deviceFactor
    ).toBeGreaterThan(3)
  })

  it('says so and predicts the typical time when too few inferences measure the dispersion', () => {
    const rand = mulberry32(1)
    const few = [...runs('a', TAIL_MIN_SAMPLES - 1, 1, 1, 1, 0.5, rand), ...runs('b', 4, 1, 1, 1, 0.5, rand)]
    const t = measureTail(few, 95)
    expect(t).toMatchObject({ deviceFactor: 1, edgeFactor: 1, extraMs: 0, samples: TAIL_MIN_SAMPLES - 1, plans: 1 })
    expect(t.why).toMatch(/^29 inferences in plans run ≥ 5 times among the latest 500 \(needs 30\)/)
    expect(() => measureTail(few, 100)).toThrow('percentile must be a number from 50 to 99.9, got 100')
    expect(() => measureTail(few, Number.NaN)).toThrow('percentile must be a number')
  })

  it('a plan that meets the requirement typically but not at p95 gives way to a faster one', () => {
    const cand = (exit: number, deviceLayers: number, accuracy: number, deviceMs: number, edgeMs: number): Candidate => ({
      exit,
      deviceLayers,
      layers: 4,
      codec: 'f32',
      codecMs: 0,
      accuracy,
      deviceMs,
      edgeMs,
      uploadBytes: deviceLayers === 4 ? 0 : 1000,
      downloadBytes: deviceLayers === 4 ? 0 : 40,
      overheadMs: deviceLayers === 4 ? 0 : 1,
      sendable: true
    })
    const table: CostTable = {
      model: 'm',
      profile: 'p',
      exits: [
        [cand(1, 0, 0.7, 0, 10), cand(1, 4, 0.7, 60, 0)],
        [cand(2, 0, 0.9, 0, 64), cand(2, 4, 0.9, 85, 0)]
      ]
    }
    const cond = { uplinkKbps: 10_000, latencyMs: 100 }
    expect(plan(table, cond)).toMatchObject({ exit: 2, deviceLayers: 0, feasible: true })
    const tail = { percentile: 95, deviceFactor: 1.3, edgeFactor: 1.5, extraMs: 5, samples: 100, plans: 2, why: null }
    const at95 = tailTable(table, tail)
    expect(at95.exits[1]![1]!.deviceMs).toBeCloseTo(85 * 1.3, 12)
    expect(at95.exits[1]![0]!.overheadMs).toBe(6) // the link part's excess only where something is sent
    expect(at95.exits[1]![1]!.overheadMs).toBe(0)
    // Exit 2 at p95: 96 + 0.8 + 6 ms edge-only, 110.5 ms device-only: neither meets 100 ms; exit 1 does.
    expect(plan(at95, cond)).toMatchObject({ exit: 1, feasible: true })
    // No dispersion measured: the same table.
    expect(tailTable(table, { ...tail, deviceFactor: 1, edgeFactor: 1, extraMs: 0 })).toBe(table)
  })
})
