import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { exitPath, inputBytes, parseManifest, type Manifest } from '../../src/shared/manifest.js'
import { PAPER_2018, PAPER_2018_AS_PRINTED, parseProfile, predictLayerMs, type CalibrationProfile } from '../../src/shared/latency.js'
import { buildCostTable, configurationMap, lessThan, lookupMap, plan, allCandidates, type Conditions } from '../../src/shared/planner.js'
import { buildManifest, logUniform, modelShape, profileArb, type ModelShape } from '../fixtures/synthetic.js'

const tiny = parseManifest(JSON.parse(readFileSync(new URL('../fixtures/tiny/manifest.json', import.meta.url), 'utf8')), 'tiny')
const tinyProfile = parseProfile(JSON.parse(readFileSync(new URL('../fixtures/tiny/profile.json', import.meta.url), 'utf8')), 'tiny')

interface Oracle {
  exit: number
  deviceLayers: number
  t: number
  accuracy: number
}

/** T(i,p) straight from DESIGN.md, recomputed from the manifest and the profile for every candidate. */
function oracleCandidates(m: Manifest, profile: CalibrationProfile, cond: Conditions): Oracle[] {
  const down = cond.downlinkKbps ?? cond.uplinkKbps
  const out: Oracle[] = []
  for (const exit of m.exits) {
    const path = exitPath(m, exit.exit)
    const n = path.length
    for (let p = 0; p <= n; p++) {
      let device = 0
      for (let j = 0; j < p; j++) device += predictLayerMs(profile, 'device', path[j]!)
      let edge = 0
      for (let j = p; j < n; j++) edge += predictLayerMs(profile, 'edge', path[j]!)
      const up = p === n ? 0 : p === 0 ? inputBytes(m) : path[p - 1]!.outputBytes
      const res = p === n ? 0 : path[n - 1]!.outputBytes
      const upMs = up === 0 ? 0 : (up * 8) / cond.uplinkKbps
      const downMs = res === 0 ? 0 : (res * 8) / down
      out.push({ exit: exit.exit, deviceLayers: p, t: device + upMs + edge + downMs + profile.overheadMs, accuracy: exit.accuracy })
    }
  }
  return out
}

/** Latencies within TIE_EPSILON are a tie: the planner's own comparison, so that the same bits decide. */
const tied = (a: number, b: number) => !lessThan(a, b) && !lessThan(b, a)
/** The lowest (exit, deviceLayers) among candidates whose latency ties the least one. */
const firstOfFastest = (cs: Oracle[]): Oracle => {
  const minT = Math.min(...cs.map((c) => c.t))
  return cs.filter((c) => tied(c.t, minT)).sort((a, b) => a.exit - b.exit || a.deviceLayers - b.deviceLayers)[0]!
}

/**
 * Exhaustive search in the `edgent` order. The candidates' latencies are recomputed here from the
 * manifest and the profile and must agree with the planner's; the choice is then made on the
 * planner's own figures, so that a tie at the edge of TIE_EPSILON is not decided by the last bit of
 * two summation orders.
 */
function exhaustive(m: Manifest, profile: CalibrationProfile, cond: Conditions): Oracle & { feasible: boolean } {
  const mine = oracleCandidates(m, profile, cond)
  const planned = allCandidates(buildCostTable(m, profile), cond)
  expect(planned.map((p) => [p.exit, p.deviceLayers])).toEqual(mine.map((c) => [c.exit, c.deviceLayers]))
  for (const [i, c] of mine.entries()) expect(Math.abs(c.t - planned[i]!.predictedMs)).toBeLessThanOrEqual(1e-12 * Math.max(1, c.t))
  const all = mine.map((c, i) => ({ ...c, t: planned[i]!.predictedMs }))
  const ok = all.filter((c) => c.t <= cond.latencyMs)
  if (ok.length) {
    const acc = Math.max(...ok.map((c) => c.accuracy))
    return { ...firstOfFastest(ok.filter((c) => c.accuracy === acc)), feasible: true }
  }
  const minT = Math.min(...all.map((c) => c.t))
  const fastest = all.filter((c) => tied(c.t, minT))
  const acc = Math.max(...fastest.map((c) => c.accuracy))
  return { ...firstOfFastest(fastest.filter((c) => c.accuracy === acc)), feasible: false }
}

/** Algorithm 1 of the paper, line by line (with the readings documented in planner.ts). */
function algorithm1(m: Manifest, profile: CalibrationProfile, cond: Conditions): { exit: number; deviceLayers: number } | null {
  const M = m.exits.length
  const down = cond.downlinkKbps ?? cond.uplinkKbps
  for (let i = M; i >= 1; i--) {
    // 3: select the i-th exit point
    const L = exitPath(m, i)
    const N = L.length
    const ES: number[] = []
    const ED: number[] = []
    for (let j = 0; j < N; j++) {
      ES[j] = predictLayerMs(profile, 'edge', L[j]!) // 5
      ED[j] = predictLayerMs(profile, 'device', L[j]!) // 6
    }
    // 8: argmin over partition points (the first one tying the minimum)
    const T: number[] = []
    for (let p = 0; p <= N; p++) {
      let t = 0
      for (let j = 0; j < p; j++) t += ED[j]!
      const D = p === N ? 0 : p === 0 ? inputBytes(m) : L[p - 1]!.outputBytes
      t += D === 0 ? 0 : (D * 8) / cond.uplinkKbps
      for (let j = p; j < N; j++) t += ES[j]!
      const r = p === N ? 0 : L[N - 1]!.outputBytes
      t += r === 0 ? 0 : (r * 8) / down
      t += profile.overheadMs
      T.push(t)
    }
    const minT = Math.min(...T)
    const A = T.findIndex((t) => tied(t, minT))
    const best = T[A]!
    // 9-10: the first exit (from the last) whose best partition meets the requirement
    if (best <= cond.latencyMs) return { exit: i, deviceLayers: A }
  }
  return null // 13
}

/** PLANNER_RUNS and PLANNER_SEED replay a failure fast-check printed. */
const runs = { numRuns: Number(process.env['PLANNER_RUNS'] ?? 1000), ...(process.env['PLANNER_SEED'] ? { seed: Number(process.env['PLANNER_SEED']) } : {}) }

/**
 * What fast-check found (seed -532549473), shrunk: exits 2 and 5 (accuracy 0.5 each) at
 * 13.4362023729 and 13.4362023595 ms, a relative 1.0000000e-9 apart: a tie or not by the last bit,
 * which the planner and an oracle computing latencies and the tolerance in another order decided
 * differently. The oracle now compares the planner's latencies with the planner's lessThan.
 */
function tieChain(): [ModelShape, CalibrationProfile, Conditions] {
  const L = (type: string, out: number[]) => ({ type, out, k: 1, s: 1, f: 1 })
  const shape = {
    inputShape: [1, 1, 28, 28],
    trunk: [L('other', [1, 1, 1, 1]), L('other', [1, 1]), L('pool', [1, 1]), L('conv', [1, 1, 1, 1]), L('conv', [1, 1]), L('conv', [1, 1])],
    branches: [
      { after: 1, layers: [L('pool', [1, 1])] },
      { after: 1, layers: [L('relu', [1, 1])] },
      { after: 3, layers: [L('conv', [1, 1, 1, 1])] },
      { after: 3, layers: [L('conv', [1, 1, 1, 1])] }
    ],
    accuracies: [0, 0.5, 0, 5e-324, 0.5]
  } as unknown as ModelShape
  const zero = (n: number) => ({ coefficients: new Array<number>(n).fill(0), intercept: 0 })
  const side = (over: Record<string, number>) =>
    Object.fromEntries(
      Object.entries(PAPER_2018.device).map(([k, r]) => [
        k,
        over[k] !== undefined ? { ...zero(r.coefficients.length), intercept: over[k] } : zero(r.coefficients.length)
      ])
    )
  const profile = parseProfile(
    {
      format: 'edgent-calibration',
      schema: 1,
      id: 'random',
      device: side({ relu: 3.436203016365879, pool: 3.436203002929676, other: 4.999999678281824 }),
      edge: side({}),
      overheadMs: 0
    },
    'random'
  )
  return [shape, profile, { uplinkKbps: 1, latencyMs: 1 }]
}

const conditions = fc.record({
  uplinkKbps: logUniform(1, 1e6),
  latencyMs: logUniform(0.05, 1e4),
  downlinkKbps: fc.option(logUniform(1, 1e6), { nil: undefined })
})

describe('planner on the hand-sized model', () => {
  const costs = buildCostTable(tiny, tinyProfile)

  it('predicts the device-only latency of exit 2 layer by layer', () => {
    // device: 0.1 + 0.01 x input elements: conv1 16, relu1 32, pool1 32, flatten1 8, fc1 8, relu2 16, fc2 16, softmax2 3
    const expected = 0.26 + 0.42 + 0.42 + 0.18 + 0.18 + 0.26 + 0.26 + 0.13
    const p = plan(costs, { uplinkKbps: 64, latencyMs: 3 })!
    expect(p).toMatchObject({ exit: 2, deviceLayers: 8, layers: 8, feasible: true, uploadBytes: 0, downloadBytes: 0, accuracy: 0.9 })
    expect(p.predictedMs).toBeCloseTo(expected, 12)
  })

  it('falls back to the earlier exit when the later one is too slow', () => {
    const p = plan(costs, { uplinkKbps: 64, latencyMs: 2 })!
    expect(p).toMatchObject({ exit: 1, deviceLayers: 5, feasible: true })
    expect(p.predictedMs).toBeCloseTo(0.26 + 0.42 + 0.42 + 0.18 + 0.13, 12)
  })

  it('returns the fastest plan marked infeasible, and mode paper returns none', () => {
    expect(plan(costs, { uplinkKbps: 64, latencyMs: 1 })).toMatchObject({ exit: 1, deviceLayers: 5, feasible: false })
    expect(plan(costs, { uplinkKbps: 64, latencyMs: 1 }, 'paper')).toBeNull()
  })

  it('goes edge-only on a fast link, charging input upload and result download', () => {
    const p = plan(costs, { uplinkKbps: 64_000, latencyMs: 3 })!
    expect(p).toMatchObject({ exit: 2, deviceLayers: 0, uploadBytes: 64, downloadBytes: 12 })
    expect(p.breakdown.uploadMs).toBeCloseTo((64 * 8) / 64_000, 15)
    expect(p.breakdown.downloadMs).toBeCloseTo((12 * 8) / 64_000, 15)
    expect(p.breakdown.edgeMs).toBeCloseTo(0.066 + 0.082 + 0.082 + 0.058 + 0.058 + 0.066 + 0.066 + 0.053, 12)
  })

  it('lists every candidate with its breakdown', () => {
    const all = allCandidates(costs, { uplinkKbps: 64, latencyMs: 3 })
    expect(all).toHaveLength(6 + 9)
    expect(all.map((c) => `${c.exit}/${c.deviceLayers}`).slice(0, 3)).toEqual(['1/0', '1/1', '1/2'])
    for (const c of all) {
      const b = c.breakdown
      expect(c.predictedMs).toBeCloseTo(b.deviceMs + b.uploadMs + b.edgeMs + b.downloadMs + b.overheadMs, 12)
    }
  })

  it('maps bandwidth intervals: device-only on slow links, edge-only on fast ones', () => {
    const map = configurationMap(costs, { latencyMs: 3, fromKbps: 1, toKbps: 100_000 })
    expect(map[0]).toMatchObject({ fromKbps: 1, exit: 2, deviceLayers: 8, feasible: true })
    expect(map[map.length - 1]).toMatchObject({ toKbps: 100_000, exit: 2, deviceLayers: 0, feasible: true })
    // The switch away from device-only is where another exit-2 line C + K/B drops below 2.11 ms.
    for (let i = 1; i < map.length; i++) expect(map[i]!.fromKbps).toBe(map[i - 1]!.toKbps)
    // (at the breakpoint itself the two plans tie, and the tie rules decide)
    const sw = map[1]!.fromKbps
    expect(plan(costs, { uplinkKbps: sw * (1 - 1e-6), latencyMs: 3 })).toMatchObject({ deviceLayers: 8 })
    expect(plan(costs, { uplinkKbps: sw * (1 + 1e-6), latencyMs: 3 })).not.toMatchObject({ deviceLayers: 8 })
  })

  it('rejects a non-positive bandwidth or requirement with a clear message', () => {
    expect(() => plan(costs, { uplinkKbps: 0, latencyMs: 3 })).toThrow('uplink bandwidth must be a positive number of kbps, got 0')
    expect(() => plan(costs, { uplinkKbps: 10, latencyMs: -1 })).toThrow('latency requirement must be a positive number of ms, got -1')
    expect(() => configurationMap(costs, { latencyMs: 3, fromKbps: 10, toKbps: 5 })).toThrow('0 < from < to')
  })
})

describe('planner properties (1,000 random models, profiles, bandwidths and requirements each)', () => {
  it('mode edgent equals an exhaustive search over every (exit, deviceLayers)', () => {
    fc.assert(
      fc.property(modelShape, profileArb, conditions, (shape, profile, cond) => {
        const m = buildManifest(shape)
        const got = plan(buildCostTable(m, profile), cond)!
        const want = exhaustive(m, profile, cond)
        expect({ exit: got.exit, deviceLayers: got.deviceLayers, feasible: got.feasible }).toEqual({
          exit: want.exit,
          deviceLayers: want.deviceLayers,
          feasible: want.feasible
        })
        expect(got.predictedMs).toBeCloseTo(want.t, 6)
      }),
      { ...runs, examples: [tieChain()] }
    )
  })

  it('mode paper equals a literal transcription of Algorithm 1', () => {
    fc.assert(
      fc.property(modelShape, profileArb, conditions, (shape, profile, cond) => {
        const m = buildManifest(shape)
        const got = plan(buildCostTable(m, profile), cond, 'paper')
        const want = algorithm1(m, profile, cond)
        expect(got ? { exit: got.exit, deviceLayers: got.deviceLayers } : null).toEqual(want)
        if (got) expect(got.feasible).toBe(true)
      }),
      runs
    )
  })

  it('the configuration map agrees with point-wise planning at every sampled bandwidth', () => {
    fc.assert(
      fc.property(
        modelShape,
        profileArb,
        logUniform(0.05, 1e4),
        logUniform(1, 1e5),
        fc.double({ min: 1.001, max: 1e4, noNaN: true }),
        fc.option(logUniform(1, 1e6), { nil: undefined }),
        fc.constantFrom('edgent' as const, 'paper' as const),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 20, maxLength: 20 }),
        (shape, profile, latencyMs, fromKbps, span, downlinkKbps, mode, samples) => {
          const m = buildManifest(shape)
          const costs = buildCostTable(m, profile)
          const toKbps = fromKbps * span
          const map = configurationMap(costs, { latencyMs, fromKbps, toKbps, mode, ...(downlinkKbps !== undefined ? { downlinkKbps } : {}) })
          expect(map[0]!.fromKbps).toBe(fromKbps)
          expect(map[map.length - 1]!.toKbps).toBe(toKbps)
          for (let i = 1; i < map.length; i++) {
            expect(map[i]!.fromKbps).toBe(map[i - 1]!.toKbps)
            const a = map[i - 1]!
            const b = map[i]!
            expect([a.exit, a.deviceLayers, a.feasible]).not.toEqual([b.exit, b.deviceLayers, b.feasible])
          }
          const breakpoints = map.slice(1).map((iv) => iv.fromKbps)
          for (const u of samples) {
            const kbps = fromKbps * span ** u
            // At a breakpoint two plans tie (within the planner's tie epsilon): a sample that close to
            // one may fall on either side of it.
            if (breakpoints.some((b) => Math.abs(kbps - b) <= 1e-6 * b)) continue
            const iv = lookupMap(map, kbps)!
            const p = plan(costs, { uplinkKbps: kbps, latencyMs, ...(downlinkKbps !== undefined ? { downlinkKbps } : {}) }, mode)
            expect({ exit: iv.exit, deviceLayers: iv.deviceLayers, feasible: iv.feasible }).toEqual(
              p ? { exit: p.exit, deviceLayers: p.deviceLayers, feasible: p.feasible } : { exit: null, deviceLayers: null, feasible: false }
            )
          }
        }
      ),
      runs
    )
  })
})

describe('the paper-2018 profile on the hand-sized model', () => {
  it("uses the printed coefficients (as printed: the slide's device column on the device)", () => {
    const costs = buildCostTable(tiny, PAPER_2018_AS_PRINTED)
    const exit2 = costs.exits[1]!
    // device conv: 6.03e-5 x 16 + 1.24e-4 x (3/1)^2 x 2 + 1.89e-1
    const conv = 6.03e-5 * 16 + 1.24e-4 * 18 + 0.189
    expect(exit2[1]!.deviceMs).toBeCloseTo(conv, 12)
    // edge conv goes negative for so small a layer (intercept -9.909 ms): clamped to 0
    expect(exit2[7]!.edgeMs).toBeGreaterThanOrEqual(0)
  })
})
