/**
 * How a fitted profile predicts a plan's segments: fused composition (junctions), segments as plans
 * run them, messaging — each against a figure recomputed by hand from the manifest.
 */
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { fitMessaging, fitSegments, probePlans, residualMs } from '../../../src/main/calibration/link-fit.js'
import { fitJunctions, type MeasurementRow } from '../../../src/main/calibration/fit.js'
import { buildSynthetic, specKey, type SyntheticSpec } from '../../../src/shared/onnx/onnx-builder.js'
import { exitPath, inputBytes, parseManifest, product } from '../../../src/shared/contracts/manifest.js'
import { junctionMs, parseProfile, predictLayerMs, predictSumOfOps, segmentTermsMs, type CalibrationProfile } from '../../../src/shared/algorithms/latency.js'
import { buildCostTable, latencyOf } from '../../../src/shared/algorithms/planner.js'
import type { InferRow } from '../../../src/shared/contracts/console-api.js'

const tiny = parseManifest(JSON.parse(readFileSync(new URL('../../fixtures/tiny/manifest.json', import.meta.url), 'utf8')), 'tiny')
const base = JSON.parse(readFileSync(new URL('../../fixtures/tiny/profile.json', import.meta.url), 'utf8')) as Record<string, unknown>

describe('segment composition', () => {
  it('a profile without composition is the paper’s sum of layers, unchanged', () => {
    const p = parseProfile(base, 'tiny')
    expect(p.composition).toBe('sum')
    const t = buildCostTable(tiny, p)
    for (const g of t.exits) {
      const path = exitPath(tiny, g[0]!.exit)
      for (const c of g) {
        const dev = path.slice(0, c.deviceLayers).reduce((a, l) => a + predictLayerMs(p, 'device', l), 0)
        expect(c.deviceMs).toBeCloseTo(dev, 12)
        expect(c.overheadMs).toBe(p.overheadMs)
      }
    }
  })

  it('fused: each junction inside a segment takes back its fixed cost and its tensor’s elements; the segment terms map what is left; messaging charges plans that send', () => {
    const junctions = { device: { fixedMs: 0.05, perElementMs: 1e-6 }, edge: { fixedMs: 0.01, perElementMs: 2e-7 } }
    const segments = { device: { fixedMs: 0.3, scale: 1.2 }, edge: { fixedMs: 0.05, scale: 0.9 } }
    const messaging = { fixedMs: 1.5, perByteMs: 1e-5 }
    const p = parseProfile({ ...base, composition: 'fused', junctions, segments, messaging }, 'fused')
    const t = buildCostTable(tiny, p)
    for (const g of t.exits) {
      const path = exitPath(tiny, g[0]!.exit)
      const n = path.length
      for (const c of g) {
        const seg = (side: 'device' | 'edge', from: number, to: number) => {
          if (from >= to) return 0
          let ms = 0
          for (let j = from; j < to; j++) ms += predictLayerMs(p, side, path[j]!)
          for (let j = from; j + 1 < to; j++) ms -= junctions[side].fixedMs + junctions[side].perElementMs * product(path[j]!.outputShape)
          return Math.max(0, segments[side].fixedMs + segments[side].scale * Math.max(0, ms))
        }
        expect(c.deviceMs).toBeCloseTo(seg('device', 0, c.deviceLayers), 12)
        expect(c.edgeMs).toBeCloseTo(seg('edge', c.deviceLayers, n), 12)
        const sent = c.deviceLayers === n ? 0 : c.deviceLayers === 0 ? inputBytes(tiny) : path[c.deviceLayers - 1]!.outputBytes
        expect(c.overheadMs).toBeCloseTo(c.deviceLayers === n ? 0 : 1.5 + 1e-5 * sent, 12)
        const cond = { uplinkKbps: 800, latencyMs: 1 }
        expect(latencyOf(c, cond)).toBeCloseTo(
          c.deviceMs + c.edgeMs + c.overheadMs + (sent * 8) / 800 + (c.deviceLayers === n ? 0 : (path[n - 1]!.outputBytes * 8) / 800),
          9
        )
      }
    }
    // Without fitted junctions, a single-Dropout model's run cost: its intercept and its slope.
    const { junctions: _j, ...rest } = p
    const drop = { coefficients: [4e-7], intercept: 0.006 }
    const noJunctions = { ...(rest as CalibrationProfile), edge: { ...p.edge, dropout: drop } }
    const l = exitPath(tiny, tiny.exits[0]!.exit)
    expect(junctionMs(noJunctions, 'edge', l[0]!, l[1]!)).toBeCloseTo(-(0.006 + 4e-7 * product(l[0]!.outputShape)), 12)
    // Neither: nothing is taken back (the sum of layers).
    const { dropout: _d, ...deviceWithoutDropout } = p.device
    expect(junctionMs({ ...(rest as CalibrationProfile), device: deviceWithoutDropout }, 'device', l[0]!, l[1]!)).toBe(0)
    expect(junctionMs({ ...p, composition: 'sum' }, 'edge', l[0]!, l[1]!)).toBe(0)
  })

  it('refuses malformed terms by name', () => {
    expect(() => parseProfile({ ...base, composition: 'stacked' }, 'x')).toThrow(/composition/)
    expect(() => parseProfile({ ...base, segments: { edge: { fixedMs: 0, scale: 0 } } }, 'x')).toThrow(/segments/)
    expect(() => parseProfile({ ...base, messaging: { fixedMs: -1, perByteMs: 0 } }, 'x')).toThrow(/messaging/)
  })
})

describe('junction fit on the grid’s blocks', () => {
  it('recovers the junction terms that made the blocks’ times, and checks them on the held-out blocks', () => {
    const p = parseProfile(base, 'tiny')
    const truth = { fixedMs: 0.004, perElementMs: 3e-7 }
    const specs: SyntheticSpec[] = []
    for (const channels of [16, 32, 64])
      for (const size of [7, 14, 28]) for (const kind of ['residual', 'inception'] as const) specs.push({ type: 'block', kind, channels, size })
    const rows: MeasurementRow[] = specs.map((spec, i) => {
      const layer = buildSynthetic(spec).layer
      const nodes = layer.type === 'block' ? layer.nodes! : []
      const internal = nodes.slice(0, -1)
      const sum = predictSumOfOps(p, 'edge', nodes)
      const y = sum - internal.length * truth.fixedMs - truth.perElementMs * internal.reduce((a, n) => a + product(n.outputShape), 0)
      return { side: 'edge', config: specKey(spec), regressionKey: 'block', features: [], runMs: y, loadMs: 0, modelBytes: 0, heldOut: i % 4 === 3 }
    })
    const byKey = new Map(specs.map((s) => [specKey(s), buildSynthetic(s).layer]))
    const fit = fitJunctions('edge', p.edge, rows, (c) => byKey.get(c) ?? null)!
    expect(fit.fixedMs).toBeCloseTo(truth.fixedMs, 9)
    expect(fit.perElementMs).toBeCloseTo(truth.perElementMs, 12)
    expect(fit.n).toBe(rows.filter((r) => !r.heldOut).length)
    expect(fit.heldOut.mape).toBeCloseTo(0, 9)
    expect(fit.heldOut.sumMape).toBeGreaterThan(0)
    // Too few training blocks: no fit.
    expect(fitJunctions('edge', p.edge, rows.slice(0, 5), (c) => byKey.get(c) ?? null)).toBeNull()
  })
})

describe('link stage fits', () => {
  it('probes the first and the last exit on each side alone, cut after the first layer and before the last, and inside the last and the middle exit', () => {
    const first = tiny.exits[0]!.exit
    const last = tiny.exits.at(-1)!.exit
    const mid = tiny.exits[Math.floor(tiny.exits.length / 2)]!.exit
    const n1 = exitPath(tiny, first).length
    const nL = exitPath(tiny, last).length
    const nM = exitPath(tiny, mid).length
    expect(probePlans(tiny)).toEqual(
      [
        { exit: first, deviceLayers: 0 },
        { exit: first, deviceLayers: 1 },
        { exit: first, deviceLayers: n1 - 1 },
        { exit: first, deviceLayers: n1 },
        { exit: last, deviceLayers: 0 },
        { exit: last, deviceLayers: 1 },
        { exit: last, deviceLayers: Math.floor(nL / 2) },
        { exit: last, deviceLayers: Math.floor((3 * nL) / 4) },
        { exit: last, deviceLayers: nL - 1 },
        { exit: last, deviceLayers: nL },
        { exit: mid, deviceLayers: Math.floor(nM / 2) }
      ].filter((p, i, all) => all.findIndex((q) => q.exit === p.exit && q.deviceLayers === p.deviceLayers) === i)
    )
  })

  it('a device segment takes a fixed extra when its plan sends (its worker waited out the remote part), where the probes show one', () => {
    // device probes as the shipped model's link stage has them: composed predictions, outputs, and whether the plan sends
    const probes = [
      { predictedMs: 0.41, outputElements: 25_088, sends: true },
      { predictedMs: 1.47, outputElements: 10, sends: true },
      { predictedMs: 1.65, outputElements: 10, sends: false },
      { predictedMs: 0.41, outputElements: 25_088, sends: true },
      { predictedMs: 5.5, outputElements: 4_704, sends: true },
      { predictedMs: 7.9, outputElements: 3_072, sends: true },
      { predictedMs: 9.56, outputElements: 10, sends: true },
      { predictedMs: 9.74, outputElements: 10, sends: false },
      { predictedMs: 3.33, outputElements: 4_704, sends: true }
    ]
    const noise = [0.01, -0.01, 0.02, -0.02, 0.01, 0.0, -0.01, 0.01, 0.0]
    const cold = fitSegments(probes.map((p, i) => ({ ...p, measuredMs: 0.05 + 1.1 * p.predictedMs + (p.sends ? 0.5 : 0) + noise[i]! })))
    expect(cold.form).toContain('when the plan sends')
    expect(cold.sendingMs).toBeCloseTo(0.5, 1)
    expect(cold.scale).toBeCloseTo(1.1, 1)
    // no such difference: not taken
    const warm = fitSegments(probes.map((p, i) => ({ ...p, measuredMs: 0.05 + 1.1 * p.predictedMs + noise[i]! })))
    expect(warm.sendingMs).toBeUndefined()
    // the planner adds it to the device segment of plans that send, not of device-only plans
    const terms = { fixedMs: 0, scale: 1, sendingMs: 0.5 }
    const a = buildCostTable(tiny, parseProfile(base, 'tiny'))
    const b = buildCostTable(tiny, parseProfile({ ...base, segments: { device: terms } }, 'tiny'))
    for (const [g, group] of b.exits.entries())
      for (const [p, c] of group.entries()) {
        const before = a.exits[g]![p]!
        if (c.deviceLayers === 0) expect(c.deviceMs).toBe(0)
        else expect(c.deviceMs).toBeCloseTo(before.deviceMs + (c.deviceLayers < c.layers ? 0.5 : 0), 9)
      }
  })

  it('messaging takes a cost per device ms before the send where the probes show one, and only then', () => {
    // nine sending probes as the shipped model's link stage has them: bytes and the device segment before each
    const probes = [
      { bytes: 3_200, idleMs: 0 },
      { bytes: 100_500, idleMs: 1.2 },
      { bytes: 1_300, idleMs: 1.8 },
      { bytes: 3_200, idleMs: 0 },
      { bytes: 100_500, idleMs: 1.2 },
      { bytes: 9_400, idleMs: 6.1 },
      { bytes: 4_200, idleMs: 8.4 },
      { bytes: 300, idleMs: 9.6 },
      { bytes: 25_200, idleMs: 3.0 }
    ]
    const noise = [0.03, -0.02, 0.01, -0.03, 0.02, -0.01, 0.02, -0.02, 0.0]
    const waking = fitMessaging(probes.map((p, i) => ({ ...p, residualMs: 1.2 + 2e-6 * p.bytes + 0.1 * p.idleMs + noise[i]! })))
    expect(waking.form).toBe('fixed + per byte + per device ms before')
    expect(waking.perIdleMs).toBeCloseTo(0.1, 1)
    expect(waking.fixedMs).toBeCloseTo(1.2, 1)
    expect(waking.looErrorMs).toBeLessThan(0.05)
    // the same probes with no dependence on the wait keep bytes alone (the extra term does not earn its place)
    const flat = fitMessaging(probes.map((p, i) => ({ ...p, residualMs: 1.2 + 2e-6 * p.bytes + noise[i]! })))
    expect(flat.form).toBe('fixed + per byte')
    expect(flat.perIdleMs).toBeUndefined()
    // nor where the waits do not differ enough to pin it down
    expect(fitMessaging(probes.map((p, i) => ({ ...p, idleMs: 0.5, residualMs: 1.2 + noise[i]! }))).perIdleMs).toBeUndefined()
    // and the planner charges it to plans that send, by their predicted device segment
    const a = buildCostTable(tiny, parseProfile({ ...base, messaging: { fixedMs: 1, perByteMs: 1e-6 } }, 'tiny'))
    const b = buildCostTable(tiny, parseProfile({ ...base, messaging: { fixedMs: 1, perByteMs: 1e-6, perIdleMs: 0.1 } }, 'tiny'))
    expect(b.exits.flat().some((c) => c.deviceLayers > 0 && c.deviceLayers < c.layers && c.deviceMs > 0)).toBe(true)
    for (const [g, group] of b.exits.entries())
      for (const [p, c] of group.entries()) {
        const before = a.exits[g]![p]!
        expect(c.overheadMs).toBeCloseTo(c.deviceLayers === c.layers ? 0 : before.overheadMs + 0.1 * c.deviceMs, 9)
      }
  })

  it('the residual leaves out both segments and the serialisation wait; lines through the probes', () => {
    const row = { e2eMs: 10, deviceMs: 3, edgeMs: 1, uploadBytes: 50_000 } as InferRow
    expect(residualMs(row, 100_000)).toBeCloseTo(10 - 3 - 1 - 4, 12)
    expect(
      fitMessaging([
        { bytes: 1000, residualMs: 2 },
        { bytes: 101_000, residualMs: 3 }
      ])
    ).toMatchObject({ fixedMs: 1.99, perByteMs: 1e-5, form: 'fixed + per byte', looErrorMs: null })
    // A residual that falls with size: no negative cost per byte, the median as the fixed cost.
    expect(
      fitMessaging([
        { bytes: 1000, residualMs: 2 },
        { bytes: 101_000, residualMs: 1 }
      ])
    ).toMatchObject({ fixedMs: 1.5, perByteMs: 0 })
    const s = fitSegments([
      { predictedMs: 1, measuredMs: 1.5 },
      { predictedMs: 2, measuredMs: 2.7 },
      { predictedMs: 4, measuredMs: 5.1 }
    ])
    expect(s.scale).toBeCloseTo(1.2, 9)
    expect(s.fixedMs).toBeCloseTo(0.3, 9)
    // Two probes, or probes too alike (a one-exit model's), or a scale outside 0.5–2: the offset only,
    // weighted as the line is (1/measured²). A SqueezeNet campaign once fitted 6.9 × and −1.9e16 ms.
    const offset = (pts: { predictedMs: number; measuredMs: number }[]) => {
      const w = pts.map((p) => 1 / p.measuredMs ** 2)
      return pts.reduce((a, p, i) => a + w[i]! * (p.measuredMs - p.predictedMs), 0) / w.reduce((a, v) => a + v, 0)
    }
    const cases = {
      two: [
        { predictedMs: 1, measuredMs: 2 },
        { predictedMs: 2, measuredMs: 1.5 }
      ],
      alike: [
        { predictedMs: 10, measuredMs: 12 },
        { predictedMs: 10.1, measuredMs: 12.5 },
        { predictedMs: 10.2, measuredMs: 11.9 }
      ],
      steep: [
        { predictedMs: 0.1, measuredMs: 0.1 },
        { predictedMs: 1, measuredMs: 5 },
        { predictedMs: 2, measuredMs: 12 }
      ]
    }
    for (const [name, pts] of Object.entries(cases)) {
      expect(fitSegments(pts).scale, name).toBe(1)
      expect(fitSegments(pts).fixedMs, name).toBeCloseTo(offset(pts), 12)
    }
  })

  it('fits a cost per input element and per ms of idle where the probes pin them down, and leaves them out where they do not', () => {
    // Edge segments of 9 probes, measured = 0.02 + 1.1 × predicted + 4e-6 × input elements + 0.01 × idle (± 1 %).
    const probes = [
      [1.0, 784, 0],
      [1.0, 25_088, 0.8],
      [0.05, 10, 1.5],
      [0.19, 784, 0],
      [0.18, 25_088, 0.8],
      [0.4, 9_408, 5.4],
      [0.16, 1_024, 7.1],
      [0.05, 10, 7.9],
      [0.24, 18_816, 2.7]
    ] as const
    const truth = (p: number, e: number, i: number) => 0.02 + 1.1 * p + 4e-6 * e + 0.01 * i
    const pts = probes.map(([p, e, i], k) => ({ predictedMs: p, inputElements: e, idleMs: i, measuredMs: truth(p, e, i) * (k % 2 ? 1.01 : 0.99) }))
    const s = fitSegments(pts)
    expect(s.form).toBe('fixed + scale × composed + per input element + per idle ms')
    expect(s.scale).toBeCloseTo(1.1, 1)
    expect(s.perInputElementMs! / 4e-6).toBeCloseTo(1, 1)
    expect(s.perIdleMs! / 0.01).toBeCloseTo(1, 0)
    expect(s.looError).toBeLessThan(0.03)
    // The profile's terms predict a segment from the same variables.
    expect(segmentTermsMs(s, 0.3, { inputElements: 5000, outputElements: 10, idleMs: 2 })).toBeCloseTo(truth(0.3, 5000, 2), 2)
    // One input size and no idle effect: the line alone (no term the probes cannot pin down, none that does not help).
    const sameInput = pts.map((p) => ({ ...p, inputElements: 784, measuredMs: truth(p.predictedMs, 784, 0) }))
    const line = fitSegments(sameInput)
    expect(line.form).toBe('fixed + scale × composed')
    expect(line.perInputElementMs).toBeUndefined()
    expect(line.perIdleMs).toBeUndefined()
    // A term that would make a segment faster with more input is not believable: dropped.
    const falling = pts.map((p) => ({ ...p, measuredMs: Math.max(0.01, truth(p.predictedMs, 0, p.idleMs!) - 2e-6 * p.inputElements!) }))
    expect(fitSegments(falling).perInputElementMs).toBeUndefined()
    // A device segment that hands on a large activation (cut after the first conv) costs more: the output term.
    const device = [
      [0.4, 25_088],
      [2.0, 10],
      [2.0, 10],
      [0.4, 25_088],
      [5.7, 9_408],
      [8.0, 1_024],
      [9.4, 10],
      [9.3, 10],
      [2.9, 4_704]
    ].map(([p, o], k) => ({ predictedMs: p!, inputElements: 784, outputElements: o!, measuredMs: (0.3 + p! + 2.5e-5 * o!) * (k % 2 ? 1.005 : 0.995) }))
    const d = fitSegments(device)
    expect(d.form).toBe('fixed + scale × composed + per output element')
    expect(d.perOutputElementMs! / 2.5e-5).toBeCloseTo(1, 1)
    // Probes exactly the composition shifted: the offset alone does as well as a line, and is kept.
    const shifted = fitSegments(device.map((p) => ({ ...p, outputElements: 10, measuredMs: p.predictedMs + 0.3 })))
    expect(shifted).toMatchObject({ form: 'offset', scale: 1 })
    expect(shifted.fixedMs).toBeCloseTo(0.3, 9)
    // Too few probes for four terms (5 < 7): at most three.
    expect(fitSegments(pts.slice(0, 5)).form.split(' + ').length).toBeLessThanOrEqual(3)
  })
})
