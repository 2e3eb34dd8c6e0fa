/**
 * Today's op types in the latency model: an imported MobileNet-style DAG's layers are keyed as
 * depthwise conv, batch norm, global pool… ; a profile without those keys (the paper's, or one fitted
 * before they existed) still predicts every layer through its fallbacks; and the `layers` grid's new
 * configurations, timed on onnxruntime, fit a regression of each new key that predicts its held-out
 * configurations.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fitProfile, type MeasurementRow } from '../../../../../src/main/calibration/fit.js'
import { layerGrid } from '../../../../../src/main/calibration/layers.js'
import { heldOutKeys } from '../../../../../src/main/calibration/layers.js'
import { importModel } from '../../../../../src/main/models/library.js'
import { OrtExecutor } from '../../../../../src/main/runtime/executor.js'
import { timeSynthetic } from '../../../../../src/main/runtime/synthetic.js'
import { FALLBACK, PAPER_2018, fitFeatures, parseProfile, predictLayerMs, regressionKeyOf } from '../../../../../src/shared/algorithms/latency.js'
import { buildSynthetic, type SyntheticSpec } from '../../../../../src/shared/onnx/onnx-builder.js'
import type { Layer } from '../../../../../src/shared/contracts/manifest.js'
import { depthwise } from '../../../../fixtures/dag.js'

const NEW_KEYS = ['dwconv', 'batchnorm', 'add', 'concat', 'globalpool', 'activation', 'block'] as const

describe('the op types of imported networks in the latency model', () => {
  const ex = new OrtExecutor()
  beforeAll(() => ex.start())
  afterAll(() => ex.stop())

  it('keys an imported depthwise DAG by op type, and the paper profile still predicts every layer through fallbacks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-modern-'))
    const f = depthwise()
    writeFileSync(join(dir, 'dw.onnx'), f.bytes)
    const { manifest } = await importModel({ file: join(dir, 'dw.onnx'), dataDir: dir, accuracy: [0.5] }, ex)
    const keys = manifest.layers.map(regressionKeyOf)
    expect(keys).toContain('dwconv')
    expect(keys).toContain('batchnorm')
    expect(keys).toContain('globalpool')
    expect(keys).toContain('block')
    // an imported block carries each of its ops as a layer record
    const block = manifest.layers.find((l) => l.type === 'block')!
    expect(block.type === 'block' && block.nodes!.map((n) => n.type)).toEqual(expect.arrayContaining(['conv', 'relu']))
    for (const l of manifest.layers) for (const side of ['device', 'edge'] as const) expect(predictLayerMs(PAPER_2018, side, l)).toBeGreaterThanOrEqual(0)
    // A depthwise conv without a dwconv regression is predicted as a conv.
    const dw = manifest.layers.find((l) => regressionKeyOf(l) === 'dwconv')!
    expect(FALLBACK.dwconv).toBe('conv')
    expect(predictLayerMs(PAPER_2018, 'edge', dw)).toBeGreaterThan(0) // (the device's conv intercept, -9.909 ms, clamps so small a layer to 0)
  })

  it("fits each new key from the grid's configurations, predicting its held-out ones", async () => {
    // the new keys, and the ops blocks are made of (conv, relu), so that the sum over ops can be compared
    const grid = layerGrid().filter((s) => (NEW_KEYS as readonly string[]).includes(s.type) || s.type === 'conv' || s.type === 'relu')
    const measured = await timeSynthetic(ex, grid, 5)
    const held = heldOutKeys(
      measured.map((m) => m.key),
      measured.map((m) => m.regressionKey)
    )
    const rows: MeasurementRow[] = measured.map((m) => ({
      side: 'edge',
      config: m.key,
      regressionKey: m.regressionKey,
      features: m.features,
      runMs: m.runMs,
      loadMs: m.loadMs,
      modelBytes: m.modelBytes,
      heldOut: held.get(m.key)!
    }))
    const { profile, report } = fitProfile('modern', 'modern ops', rows, {}, (config) => {
      const spec = JSON.parse(config) as SyntheticSpec
      return spec.type === 'block' ? buildSynthetic(spec).layer : null
    })
    const mape = (k: string) => report.find((x) => x.side === 'edge' && x.key === k)?.heldOutMape
    console.log(`new op types, edge, held-out MAPE: ${NEW_KEYS.map((k) => `${k} ${(100 * (mape(k) ?? NaN)).toFixed(1)} %`).join(', ')}`)
    for (const key of NEW_KEYS) {
      const r = report.find((x) => x.side === 'edge' && x.key === key)!
      expect(r, key).toBeDefined()
      expect(profile.edge[key], key).toBeDefined()
      expect(r.heldOutN, key).toBeGreaterThan(0)
      // How well is a benchmark's matter (one pass of µs-scale ops on a shared machine is noisy); here: a finite figure.
      expect(Number.isFinite(r.heldOutMape), key).toBe(true)
    }
    expect(profile.edge.dwconv!.features).toEqual(['inputElements', 'outputElements', 'macs'])
    // Blocks: the fitted term and the sum over ops, both measured on the held-out blocks; the better one is used.
    const block = report.find((x) => x.side === 'edge' && x.key === 'block')!
    expect(Number.isFinite(block.sumHeldOutMape)).toBe(true)
    // (a term that fell back to a constant never wins: it cannot scale with a block's size)
    const constant = profile.edge.block!.coefficients.every((c) => c === 0)
    expect(block.preferSum).toBe(constant || block.sumHeldOutMape! < block.heldOutMape!)
    expect(profile.edge.block!.preferSum).toBe(block.preferSum)
    console.log(
      `blocks, edge, held-out MAPE: block term ${(100 * block.heldOutMape!).toFixed(1)} %, sum over ops ${(100 * block.sumHeldOutMape!).toFixed(1)} % → ${block.preferSum ? 'sum' : 'term'}`
    )
  }, 120_000)

  it('never prefers a block term that fell back to a constant: it cannot scale with the block', () => {
    // Residual blocks (input and output sizes equal: the block term's variables are collinear, so it
    // falls back to the median) all measuring 0.07 ms, and op rows whose sum over a block's ops is
    // 1.5× that: on these held-out blocks the constant is exact and the sum is 50 % off — and the
    // sum is still what predicts blocks, since the constant would put a 256-channel block at 0.07 ms too.
    const specs = layerGrid().filter((g) => g.type === 'block' && g.kind === 'residual')
    const blocks = specs.map((spec) => ({ spec, layer: buildSynthetic(spec).layer }))
    const perOp = 0.07 * 1.5
    const row = (config: string, layer: Layer, runMs: number, heldOut: boolean): MeasurementRow => ({
      side: 'edge',
      config,
      regressionKey: regressionKeyOf(layer),
      features: fitFeatures(layer),
      runMs,
      loadMs: 1,
      modelBytes: 1000,
      heldOut
    })
    // every op of a block costs its share of 1.5 × 0.07 ms (by count), whatever its size
    const rows = [
      ...blocks.map((b, i) => row(JSON.stringify(b.spec), b.layer, 0.07, i % 3 === 0)),
      ...blocks.flatMap((b, i) =>
        (b.layer.type === 'block' ? b.layer.nodes! : []).map((n, j) =>
          row(`op-${i}-${j}`, n, perOp / (b.layer.type === 'block' ? b.layer.nodes!.length : 1), false)
        )
      )
    ]
    const { profile, report } = fitProfile(
      'constant-block',
      'constant block',
      rows,
      {},
      (config) => blocks.find((b) => JSON.stringify(b.spec) === config)?.layer ?? null
    )
    const entry = report.find((r) => r.side === 'edge' && r.key === 'block')!
    expect(profile.edge.block!.coefficients.every((c) => c === 0)).toBe(true) // fell back to a constant
    expect(entry.heldOutMape!).toBeLessThan(entry.sumHeldOutMape!) // and beat the sum on the held-out blocks
    expect(entry.preferSum).toBe(true) // yet the sum predicts blocks
    expect(profile.edge.block!.preferSum).toBe(true)
  })

  it('predicts a block with its ops as the sum over them, or with the block term when that predicted better', async () => {
    const m = buildSynthetic({ type: 'block', kind: 'residual', channels: 16, size: 14 })
    expect(m.layer.type === 'block' && m.layer.nodes!.map((n) => n.type)).toEqual(['conv', 'relu', 'conv', 'other', 'relu'])
    const line = (c: number) => ({ features: ['inputElements'], coefficients: [c], intercept: 0 })
    const base = { format: 'edgent-calibration', schema: 1, id: 't', overheadMs: 0 } as const
    const side = { conv: { coefficients: [0, 0], intercept: 1 }, relu: line(0), other: line(0) }
    const term = { features: ['inputElements', 'outputElements', 'macs'], coefficients: [0, 0, 0], intercept: 42 }
    const sum = parseProfile({ ...base, device: side, edge: side })
    const useTerm = parseProfile({ ...base, device: { ...side, block: { ...term, preferSum: false } }, edge: side })
    const useSum = parseProfile({ ...base, device: { ...side, block: { ...term, preferSum: true } }, edge: side })
    expect(predictLayerMs(sum, 'device', m.layer)).toBeCloseTo(2) // two convolutions at 1 ms, the rest free
    expect(predictLayerMs(useTerm, 'device', m.layer)).toBe(42)
    expect(predictLayerMs(useSum, 'device', m.layer)).toBeCloseTo(2)
    // Under fused composition the ops run in one session: the junctions between them count, as between a segment's layers.
    const fused = parseProfile({
      ...base,
      composition: 'fused',
      junctions: { device: { fixedMs: 0.1, perElementMs: 0 } },
      device: { ...side, block: { ...term, preferSum: true } },
      edge: side
    })
    expect(predictLayerMs(fused, 'device', m.layer)).toBeCloseTo(2 - 4 * 0.1) // five ops, four junctions
    // A block without its ops (an older manifest): the block term, else `other`.
    const { nodes: _n, ...bare } = m.layer as Extract<typeof m.layer, { type: 'block' }>
    expect(predictLayerMs(useSum, 'device', bare)).toBe(42)
    expect(predictLayerMs(sum, 'device', bare)).toBe(0)
  })
})
