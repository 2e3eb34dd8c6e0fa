import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { exitPath, inputBytes, parseManifest, type Manifest } from '../../../src/shared/contracts/manifest.js'
import { PAPER_2018, PAPER_2018_AS_PRINTED, parseProfile, predictLayerMs, type CalibrationProfile } from '../../../src/shared/algorithms/latency.js'
import {
  buildCostTable,
  candidateAt,
  configurationMap,
  configurationMapPairwise,
  lessThan,
  lookupMap,
  lowerEnvelope,
  plan,
  allCandidates,
  type Candidate,
  type CodecOptions,
  type Conditions,
  type CostTable
} from '../../../src/shared/algorithms/planner.js'
import { payloadBytes, LOSSY_CODECS } from '../../../src/shared/algorithms/codecs.js'
import { buildManifest, logUniform, modelShape, profileArb, profileOf, zeroRegressions, type ModelShape } from '../../fixtures/synthetic.js'

const tiny = parseManifest(JSON.parse(readFileSync(new URL('../../fixtures/tiny/manifest.json', import.meta.url), 'utf8')), 'tiny')
const tinyProfile = parseProfile(JSON.parse(readFileSync(new URL('../../fixtures/tiny/profile.json', import.meta.url), 'utf8')), 'tiny')

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

/** Every codec, priced: encoding on the device, decoding on the edge, ns per value. */
const CODEC_OPTIONS: CodecOptions = {
  codecs: ['f32', 'f16', 'int8', 'int8c', 'u8'],
  cost: { device: { f32: 1, f16: 3, int8: 4, int8c: 5, u8: 0 }, edge: { f32: 1, f16: 2, int8: 2, int8c: 3, u8: 2 } }
}
/** Accuracy drops (points) a lossy codec measures at a cut, from a small set so that ties and the bound are hit. */
const dropsArb = fc.array(fc.constantFrom(0, 0, 0.1, 0.5, 0.6, 2, -0.2), { minLength: 7, maxLength: 7 })

/** The manifest with measured codec accuracies (drop `drops[k]` at the k-th cut, cyclically) and preprocessing (u8 possible). */
function withCodecs(m: Manifest, drops: readonly number[]): Manifest {
  if (!drops.length) return m
  let k = 0
  const exits = m.exits.map((e) => {
    const f32 = e.accuracy
    const at = () => Math.min(1, Math.max(0, f32 - drops[k++ % drops.length]! / 100))
    return { exit: e.exit, f32, byCodec: Object.fromEntries(LOSSY_CODECS.map((c) => [c, e.layers.map(() => at())])) }
  })
  return parseManifest(
    {
      ...m,
      preprocessing: { from: 'uint8', layout: 'NCHW', scale: 1 / 255, mean: [0.5], std: [0.25] },
      codecAccuracy: { samples: 100, source: 'test', exits }
    },
    m.id
  )
}

/** Mode edgent's rules, applied literally to every candidate of a table (every exit, cut and codec). */
function bruteEdgent(table: CostTable, cond: Conditions): Candidate {
  const all = table.exits.flat().filter((c) => c.sendable)
  const t = (c: Candidate) => allCandidates({ ...table, exits: [[c]] }, cond)[0]!.predictedMs
  const ok = all.filter((c) => t(c) <= cond.latencyMs)
  const pool = ok.length ? ok : all.filter((c) => !all.some((o) => lessThan(t(o), t(c))))
  const acc = Math.max(...pool.map((c) => c.accuracy))
  const best = pool.filter((c) => c.accuracy === acc)
  const minT = Math.min(...best.map(t))
  return best.find((c) => tied(t(c), minT))!
}

describe('codecs at the cut: candidates (exit, deviceLayers, codec)', () => {
  it('offers each lossy codec where its measured drop is within the bound, at its bytes and accuracy; u8 only edge-only', () => {
    // exit 2 has 8 layers; drops at its cuts 0..7 cycle through 0, 0.3, 0.8 points (exit 1's too)
    const m = withCodecs(tiny, [0, 0.3, 0.8, -0.2])
    const t = buildCostTable(m, tinyProfile, Infinity, CODEC_OPTIONS)
    const f32 = candidateAt(t, 2, 3)!
    expect(f32.codec).toBe('f32')
    expect(t.exits[0]!.filter((c) => c.deviceLayers === 0).map((c) => c.codec)).toContain('u8')
    for (const g of t.exits) {
      for (const c of g) {
        if (c.codec === 'f32') continue
        const base = candidateAt(t, c.exit, c.deviceLayers)!
        const path = exitPath(m, c.exit)
        const dims = c.deviceLayers === 0 ? m.input.shape : path[c.deviceLayers - 1]!.outputShape
        expect(c.uploadBytes).toBe(payloadBytes(c.codec, dims))
        expect(c.deviceLayers).toBeLessThan(c.layers)
        if (c.codec === 'u8') {
          expect(c.deviceLayers).toBe(0)
          expect(c.accuracy).toBe(base.accuracy)
          continue
        }
        const measured = m.codecAccuracy!.exits.find((e) => e.exit === c.exit)!
        const drop = 100 * (measured.f32! - measured.byCodec[c.codec as 'f16']![c.deviceLayers]!)
        expect(drop).toBeLessThanOrEqual(0.5 + 1e-9)
        // a drop costs accuracy; a measured gain is not taken
        expect(c.accuracy).toBeCloseTo(base.accuracy - Math.max(0, drop) / 100, 12)
        // encoding and decoding beyond f32's, per value
        const values = dims.reduce((a, b) => a * b, 1)
        const ns = CODEC_OPTIONS.cost!.device[c.codec]! - 1 + CODEC_OPTIONS.cost!.edge[c.codec]! - 1
        expect(c.codecMs).toBeCloseTo((ns * values) / 1e6, 12)
      }
    }
    // the 0.8-point cuts are not offered; the others are (drops are drawn per exit, codec, then cut)
    let k = 0
    for (const e of m.exits) {
      for (const codec of LOSSY_CODECS) {
        for (let p = 0; p < e.layers.length; p++) {
          const drop = [0, 0.3, 0.8, -0.2][k++ % 4]
          expect(candidateAt(t, e.exit, p, codec) !== undefined).toBe(drop !== 0.8)
        }
      }
    }
    expect(t.codecNotes!.join('; ')).toContain('f16: some cuts cost more than 0.5 points of accuracy')
    // a wider bound offers them too
    const wide = buildCostTable(m, tinyProfile, Infinity, { ...CODEC_OPTIONS, maxDropPts: 1 })
    expect(wide.exits.flat().filter((c) => c.codec === 'f16')).toHaveLength(5 + 8)
  })

  it('offers no lossy codec whose accuracy was not measured, and no u8 without preprocessing: and says why', () => {
    const t = buildCostTable(tiny, tinyProfile, Infinity, CODEC_OPTIONS)
    expect(t.exits.flat().every((c) => c.codec === 'f32')).toBe(true)
    expect(t.codecNotes).toEqual(
      expect.arrayContaining([
        'f16: accuracy not measured for exits 1, 2 (edgent model verify --codecs)',
        'u8: model tiny declares no preprocessing for the edge to do'
      ])
    )
    // a file measured before the f32 baseline was kept: the drop is unknown, so not offered
    const m = withCodecs(tiny, [0])
    const old = parseManifest({ ...m, codecAccuracy: { ...m.codecAccuracy!, exits: m.codecAccuracy!.exits.map(({ f32: _f, ...e }) => e) } }, 'old')
    expect(
      buildCostTable(old, tinyProfile, Infinity, CODEC_OPTIONS)
        .exits.flat()
        .filter((c) => LOSSY_CODECS.includes(c.codec as 'f16'))
    ).toEqual([])
    // f32 only unless asked
    expect(
      buildCostTable(m, tinyProfile)
        .exits.flat()
        .every((c) => c.codec === 'f32')
    ).toBe(true)
  })

  it('picks a middle cut under int8 when its bytes make the difference, with its accuracy and codec in the plan', () => {
    const m = withCodecs(tiny, [0.1])
    const t = buildCostTable(m, tinyProfile, Infinity, { ...CODEC_OPTIONS, codecs: ['f32', 'int8'] })
    const f32Only = buildCostTable(m, tinyProfile)
    // exit 2 on the device alone takes 2.11 ms: under 1.9 ms it needs the edge, which f32 bytes reach at a higher bandwidth than int8's
    const won: number[] = []
    for (let kbps = 50; kbps < 5000; kbps *= 1.1) {
      const cond = { uplinkKbps: kbps, latencyMs: 1.9 }
      const p = plan(t, cond)!
      const q = plan(f32Only, cond)!
      expect(p.accuracy).toBeGreaterThanOrEqual(q.accuracy - 0.001 - 1e-12)
      if (p.exit === 2 && p.codec === 'int8' && p.feasible && (q.exit === 1 || !q.feasible)) {
        won.push(kbps)
        expect(p.accuracy).toBeCloseTo(0.9 - 0.001, 12)
        expect(p.breakdown.codecMs).toBeGreaterThan(0)
        expect(p.uploadBytes).toBeLessThan(candidateAt(t, 2, p.deviceLayers)!.uploadBytes)
      }
    }
    expect(won.length).toBeGreaterThan(0)
  })

  it('mode edgent equals a brute force over every (exit, deviceLayers, codec)', () => {
    fc.assert(
      fc.property(modelShape, profileArb, conditions, dropsArb, (shape, profile, cond, drops) => {
        const m = withCodecs(buildManifest(shape), drops)
        const t = buildCostTable(m, profile, Infinity, CODEC_OPTIONS)
        const p = plan(t, cond)!
        const b = bruteEdgent(t, cond)
        expect({ exit: p.exit, deviceLayers: p.deviceLayers, codec: p.codec }).toEqual({ exit: b.exit, deviceLayers: b.deviceLayers, codec: b.codec })
      }),
      { ...runs, numRuns: Math.min(runs.numRuns, 300) }
    )
  })

  it('the lower envelope holds exactly the lines that are least somewhere', () => {
    fc.assert(
      fc.property(fc.array(fc.record({ C: fc.integer({ min: 0, max: 50 }), K: fc.integer({ min: 0, max: 20 }) }), { minLength: 1, maxLength: 30 }), (lines) => {
        const hull = lowerEnvelope(lines)
        // every line of the hull is strictly least on some x ≥ −∞ … +∞ span between its neighbours' crossings; every other line is never strictly least
        const least = (x: number) => Math.min(...lines.map((l) => l.C + l.K * x))
        for (let x = -100; x <= 100; x += 0.25) expect(Math.min(...hull.map((l) => l.C + l.K * x))).toBe(least(x))
        for (let i = 1; i < hull.length; i++) expect(hull[i]!.K).toBeLessThan(hull[i - 1]!.K)
      }),
      { ...runs, numRuns: Math.min(runs.numRuns, 200) }
    )
  })
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

/**
 * A counterexample fast-check found (seed 1144324288): no plan meets the requirement, the plans'
 * latencies are all within a hair of each other, and the planner measured the tie from the first
 * candidate tied with the minimum instead of from the minimum — taking a more accurate plan outside it.
 */
const NEAR_TIES_INFEASIBLE: [ModelShape, CalibrationProfile, Conditions] = [
  {
    inputShape: [1, 1, 28, 28],
    trunk: [
      { type: 'conv', out: [1, 9, 23, 23], k: 1, s: 1, f: 1 },
      { type: 'pool', out: [1, 12, 1, 1], k: 1, s: 1, f: 1 },
      { type: 'lrn', out: [1, 1], k: 1, s: 1, f: 1 },
      { type: 'lrn', out: [1, 1], k: 1, s: 1, f: 1 },
      { type: 'dropout', out: [1, 1, 1, 1], k: 1, s: 1, f: 1 },
      { type: 'conv', out: [1, 1], k: 1, s: 1, f: 1 }
    ],
    branches: [
      {
        after: 1,
        layers: [
          { type: 'conv', out: [1, 1, 1, 1], k: 1, s: 1, f: 1 },
          { type: 'dropout', out: [1, 1], k: 1, s: 1, f: 1 }
        ]
      },
      { after: 1, layers: [{ type: 'conv', out: [1, 1], k: 1, s: 1, f: 1 }] }
    ],
    accuracies: [0.5, 0.5, 0.9]
  } as unknown as ModelShape,
  profileOf(zeroRegressions({ dropout: [3.4418834449212454e-10], globalpool: [0.0008675194139330216] }), zeroRegressions()),
  { uplinkKbps: 1, latencyMs: 1 }
]

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
      { ...runs, examples: [tieChain(), NEAR_TIES_INFEASIBLE] }
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
        fc.boolean(),
        dropsArb,
        (shape, profile, latencyMs, fromKbps, span, downlinkKbps, mode, samples, codecs, drops) => {
          const m = withCodecs(buildManifest(shape), drops)
          const costs = buildCostTable(m, profile, Infinity, codecs ? CODEC_OPTIONS : undefined)
          const toKbps = fromKbps * span
          const map = configurationMap(costs, { latencyMs, fromKbps, toKbps, mode, ...(downlinkKbps !== undefined ? { downlinkKbps } : {}) })
          const pairwise = configurationMapPairwise(costs, { latencyMs, fromKbps, toKbps, mode, ...(downlinkKbps !== undefined ? { downlinkKbps } : {}) })
          expect(map[0]!.fromKbps).toBe(fromKbps)
          expect(map[map.length - 1]!.toKbps).toBe(toKbps)
          for (let i = 1; i < map.length; i++) {
            expect(map[i]!.fromKbps).toBe(map[i - 1]!.toKbps)
            const a = map[i - 1]!
            const b = map[i]!
            expect([a.exit, a.deviceLayers, a.codec, a.feasible]).not.toEqual([b.exit, b.deviceLayers, b.codec, b.feasible])
          }
          const breakpoints = [...map.slice(1), ...pairwise.slice(1)].map((iv) => iv.fromKbps)
          for (const u of samples) {
            const kbps = fromKbps * span ** u
            // At a breakpoint two plans tie (within the planner's tie epsilon): a sample that close to
            // one may fall on either side of it.
            if (breakpoints.some((b) => Math.abs(kbps - b) <= 1e-6 * b)) continue
            const iv = lookupMap(map, kbps)!
            // the all-pairs map it replaced agrees too
            const old = lookupMap(pairwise, kbps)!
            expect([old.exit, old.deviceLayers, old.codec, old.feasible]).toEqual([iv.exit, iv.deviceLayers, iv.codec, iv.feasible])
            const p = plan(costs, { uplinkKbps: kbps, latencyMs, ...(downlinkKbps !== undefined ? { downlinkKbps } : {}) }, mode)
            expect({ exit: iv.exit, deviceLayers: iv.deviceLayers, codec: iv.codec, feasible: iv.feasible }).toEqual(
              p
                ? { exit: p.exit, deviceLayers: p.deviceLayers, codec: p.codec, feasible: p.feasible }
                : { exit: null, deviceLayers: null, codec: null, feasible: false }
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
