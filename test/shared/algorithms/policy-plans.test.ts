/** Planning with confidence-exit policies (issue 31): a policy's latency is a mixture over where frames leave. */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseManifest, type Manifest } from '../../../src/shared/contracts/manifest.js'
import {
  buildCostTable,
  candidateAt,
  configurationMap,
  latencyOf,
  lookupMap,
  plan,
  sameConfiguration,
  type LayerLatencySource
} from '../../../src/shared/algorithms/planner.js'
import { mixtureMs, rankAccuracy, type MixtureComponent } from '../../../src/shared/algorithms/policy-plans.js'
import { tailTable, type TailModel } from '../../../src/shared/algorithms/tail.js'

// the camera model as measured, its own policies left out (each test gives its own)
const { confidence: _c, ...raw } = JSON.parse(
  readFileSync(join(__dirname, '..', '..', '..', 'resources', 'models', 'branchy-resnet96', 'manifest.json'), 'utf8')
)

/** The camera model with measured policies: the static final exit, an early-leaving one and one far less accurate. */
function withPolicies(policies: { thresholds: (number | null)[]; leave: number[]; accuracy: number }[]): Manifest {
  return parseManifest(
    {
      ...raw,
      confidence: {
        measure: 'max-softmax',
        temperatures: [0.9, 1, 1.1, 1.2, 1.4],
        source: 'test',
        fitSamples: 100,
        heldOutSamples: 100,
        exitAccuracy: [0.87, 0.91, 0.93, 0.935, 0.94],
        policies: policies.map((p) => ({ ...p, fitAccuracy: p.accuracy, macs: 1 }))
      }
    },
    'camera'
  )
}

// a slow device, a fast edge: each layer 2 ms there, 0.1 ms here; messaging 1 ms
const source: LayerLatencySource = { id: 'synthetic', overheadMs: 1, layerMs: (side) => (side === 'device' ? 2 : 0.1) }
const STATIC_FINAL = { thresholds: [null, null, null, null, 0], leave: [0, 0, 0, 0, 1], accuracy: 0.94 }
const EARLY = { thresholds: [0.9, null, null, null, 0], leave: [0.6, 0, 0, 0, 0.4], accuracy: 0.937 }
const POOR = { thresholds: [0.5, null, null, null, 0], leave: [0.9, 0, 0, 0, 0.1], accuracy: 0.9 }

describe('policy plans', () => {
  const m = withPolicies([STATIC_FINAL, EARLY, POOR])
  const table = buildCostTable(m, source, Infinity, undefined, {})

  it('prices the policy that never leaves early exactly as the static final exit, at every cut', () => {
    const n = table.exits[4]![0]!.layers
    for (let d = 0; d <= n; d++) {
      for (const kbps of [100, 10_000]) {
        const cond = { uplinkKbps: kbps, latencyMs: 100 }
        expect(latencyOf(table.policies![0]![d]!, cond)).toBeCloseTo(latencyOf(candidateAt(table, 5, d)!, cond), 9)
      }
    }
  })

  it("predicts a policy's mean as the share-weighted components, each leaving where its exit is evaluated", () => {
    const c = table.policies![1]![5]! // exit 1 branches after layer 5: evaluated on the device
    const [early, final] = c.policy!.components
    expect(early).toMatchObject({ exit: 1, side: 'device', share: 0.6, uploadBytes: 0 })
    // trunk 0..5 and exit 1's four-layer head on the device
    expect(early!.deviceMs).toBeCloseTo(9 * 2, 9)
    expect(final).toMatchObject({ exit: 5, side: 'edge', share: 0.4 })
    expect(final!.deviceMs).toBeCloseTo(9 * 2, 9) // the head ran before the frame went on
    const cond = { uplinkKbps: 1000, latencyMs: 100 }
    const ms = (x: typeof early) => x!.deviceMs + x!.edgeMs + x!.overheadMs + (x!.uploadBytes * 8) / 1000 + (x!.downloadBytes * 8) / 1000
    expect(latencyOf(c, cond)).toBeCloseTo(0.6 * ms(early) + 0.4 * ms(final), 9)
    // a cut before exit 1's branch point: it is evaluated on the edge
    expect(table.policies![1]![3]!.policy!.components.map((x) => x.side)).toEqual(['edge', 'edge'])
  })

  it("prices a policy's sessions as measured where the source measured them, the rest composed; static plans as before", () => {
    // the trunk up to exit 1's branch point (a piece under the final exit) and exit 1's head, as the
    // agent runs them (each session's start included): 7 and 3 ms where their layers compose to 10 and 8
    const measured: Record<string, number> = { '5/0-5': 7, '1/5-9': 3 }
    const pieces: LayerLatencySource = { ...source, pieceMs: (side, exit, from, to) => (side === 'device' ? measured[`${exit}/${from}-${to}`] : undefined) }
    const t = buildCostTable(m, pieces, Infinity, undefined, {})
    const at5 = t.policies![1]![5]!.policy!.components
    expect(at5.map((x) => x.deviceMs)).toEqual([10, 10])
    // a cut past the branch point: a frame that goes on runs the piece from there to the cut, not
    // measured, composed (2 layers × 2 ms)
    expect(t.policies![1]![7]!.policy!.components.map((x) => x.deviceMs)).toEqual([10, 14])
    // static plans are priced from the layers, as without pieces
    for (const d of [5, 7]) expect(candidateAt(t, 5, d)!.deviceMs).toBeCloseTo(candidateAt(table, 5, d)!.deviceMs, 9)
  })

  it('takes the quantile of a mixture: the least component latency whose cumulative share reaches it', () => {
    const comps = [
      { share: 0.6, t: 10 },
      { share: 0.3, t: 30 },
      { share: 0.1, t: 50 }
    ].map(({ share, t }): MixtureComponent => ({ exit: 1, side: 'device', share, deviceMs: t, uploadBytes: 0, edgeMs: 0, downloadBytes: 0, overheadMs: 0 }))
    const ms = (x: MixtureComponent) => x.deviceMs
    expect(mixtureMs(comps, ms)).toBeCloseTo(20, 9)
    expect(mixtureMs(comps, ms, 0.5)).toBe(10)
    expect(mixtureMs(comps, ms, 0.9)).toBe(30)
    expect(mixtureMs(comps, ms, 0.95)).toBe(50)
  })

  it('ranks a policy at the most accurate static exit it is within the tolerance of', () => {
    expect(rankAccuracy(m, 0.937)).toBe(m.exits[4]!.accuracy)
    // 1 point below exit 2 held out (0.91): ranked with exit 1, which it beats, unless the tolerance reaches exit 2
    expect(rankAccuracy(m, 0.9)).toBe(m.exits[0]!.accuracy)
    expect(rankAccuracy(m, 0.9, 1.5)).toBe(m.exits[1]!.accuracy)
    // below every exit by more than the tolerance: its own accuracy
    expect(rankAccuracy(m, 0.8)).toBe(0.8)
  })

  it('chooses a faster policy within the tolerance over the static exit, never one outside it, and mode paper none', () => {
    const cond = { uplinkKbps: 1000, latencyMs: 1000 }
    const p = plan(table, cond)!
    expect(p.policy?.index).toBe(1)
    expect(p.accuracy).toBe(0.937)
    expect(p.policy!.mixture.reduce((a, x) => a + x.share, 0)).toBeCloseTo(1, 9)
    expect(plan(table, cond, 'paper')!.policy).toBeUndefined()
    // without policies: the static final exit
    expect(plan(buildCostTable(m, source), cond)!.policy).toBeUndefined()
    // the poor policy (3.7 points below) is never taken while anything more accurate meets the requirement
    for (const kbps of [10, 100, 1000, 1e5]) expect(plan(table, { uplinkKbps: kbps, latencyMs: 1000 })!.policy?.index).not.toBe(2)
  })

  it('keeps the configuration map and the planner in agreement, on the mean and at a percentile', () => {
    const tail: TailModel = { percentile: 95, samples: 100, deviceFactor: 1.2, edgeFactor: 1.5, extraMs: 2, why: null } as TailModel
    for (const t of [table, tailTable(table, tail)]) {
      for (const latencyMs of [20, 35, 60]) {
        const map = configurationMap(t, { latencyMs, fromKbps: 1, toKbps: 1e6 })
        for (let kbps = 1.3; kbps < 1e6; kbps *= 1.7) {
          const want = plan(t, { uplinkKbps: kbps, latencyMs })!
          const got = lookupMap(map, kbps)!
          expect(sameConfiguration(got, want), `${latencyMs} ms at ${kbps} kbps`).toBe(true)
        }
      }
    }
  })

  it('prices audits: the audited share runs to the final exit past every head', () => {
    const audited = buildCostTable(m, source, Infinity, undefined, { auditShare: 0.1 })
    const c = audited.policies![1]![5]!
    expect(c.policy!.components.map((x) => x.share)).toEqual([0.6 * 0.9, 0.4 * 0.9, 0.1])
    const cond = { uplinkKbps: 1000, latencyMs: 100 }
    expect(latencyOf(c, cond)).toBeGreaterThan(latencyOf(table.policies![1]![5]!, cond))
  })

  it('says why a model without measured policies plans statically', () => {
    expect(buildCostTable(parseManifest(raw, 'camera'), source, Infinity, undefined, {}).policyNote).toMatch(/no measured policies \(edgent model policies\)/)
  })
})
