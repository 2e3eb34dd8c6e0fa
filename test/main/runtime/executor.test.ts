import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OrtExecutor } from '../../../src/main/runtime/executor.js'
import { defaultModelDir } from '../../../src/main/runtime/paths.js'
import { loadManifest, readShippedSamples } from '../../../src/main/runtime/files.js'
import { argmax, preprocess } from '../../../src/shared/algorithms/preprocess.js'
import { roundTrip } from '../../../src/shared/algorithms/codecs.js'

const dir = defaultModelDir()
const loaded = loadManifest(dir)
const { manifest } = loaded
const samples = readShippedSamples(loaded)
const input = (k: number) => preprocess(manifest, samples.images.subarray(k * samples.imageElements, (k + 1) * samples.imageElements))

/** A copy of the shipped model folder with the manifest (and optionally the ONNX file) altered. */
function alteredModel(edit: (m: any) => void, onnx?: (bytes: Buffer) => Buffer): string {
  const d = mkdtempSync(join(tmpdir(), 'edgent-model-'))
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'))
  edit(m)
  writeFileSync(join(d, 'manifest.json'), JSON.stringify(m))
  if (onnx) writeFileSync(join(d, m.onnx), onnx(readFileSync(join(dir, m.onnx))))
  else copyFileSync(join(dir, m.onnx), join(d, m.onnx))
  return d
}

describe('ORT executor on the shipped model', () => {
  const ex = new OrtExecutor({ maxSessions: 48 })
  beforeAll(async () => {
    await ex.start()
    await ex.openModel(dir)
  })
  afterAll(() => ex.stop())

  it('reproduces the unsplit output with prefix-then-suffix for every exit and every deviceLayers', async () => {
    let checked = 0
    for (const e of manifest.exits) {
      const N = e.layers.length
      for (const k of [0, 1, 2]) {
        const x = input(k)
        const whole = await ex.runSegment(manifest.id, { exit: e.exit, from: 0, to: N }, x)
        expect(whole.dims).toEqual([1, manifest.classes.length])
        for (let p = 0; p <= N; p++) {
          const split = await ex.runSplit(manifest.id, e.exit, p, x)
          let diff = 0
          for (let i = 0; i < whole.output.length; i++) diff = Math.max(diff, Math.abs(split.output[i]! - whole.output[i]!))
          expect(diff, `exit ${e.exit} deviceLayers ${p} sample ${k}`).toBeLessThanOrEqual(1e-4)
          expect(split.activation === null).toBe(p === N)
          if (p > 0 && p < N) expect(split.activation!.length * 4).toBe(manifest.layers.find((l) => l.id === e.layers[p - 1])!.outputBytes)
          checked++
        }
      }
    }
    expect(checked).toBe(3 * manifest.exits.reduce((a, e) => a + e.layers.length + 1, 0))
  })

  it('runs every suffix on f16 and int8 activations within a bounded error of the f32 one (every exit and cut)', async () => {
    // measured over 20 samples (scratch, 1,480 cuts): f16 ≤ 0.06 %, int8 ≤ 2.2 %, int8c ≤ 1.2 % of the largest score, no top-1 change
    const bound = { f16: 0.005, int8: 0.1, int8c: 0.1 } as const
    let checked = 0
    for (const e of manifest.exits) {
      const N = e.layers.length
      for (const k of [0, 1, 2]) {
        const x = input(k)
        for (let p = 0; p < N; p++) {
          const pre = p ? await ex.runSegment(manifest.id, { exit: e.exit, from: 0, to: p }, x) : { output: x, dims: manifest.input.shape }
          const y = (await ex.runSegment(manifest.id, { exit: e.exit, from: p, to: N }, pre.output, pre.dims)).output
          const top = Math.max(...Array.from(y, Math.abs))
          for (const codec of ['f16', 'int8', 'int8c'] as const) {
            const y2 = (await ex.runSegment(manifest.id, { exit: e.exit, from: p, to: N }, roundTrip(codec, pre.dims, pre.output), pre.dims)).output
            let diff = 0
            for (let i = 0; i < y.length; i++) diff = Math.max(diff, Math.abs(y2[i]! - y[i]!))
            expect(diff / top, `${codec}, exit ${e.exit}, deviceLayers ${p}, sample ${k}`).toBeLessThanOrEqual(bound[codec])
            if (codec === 'f16') expect(argmax(y2)).toBe(argmax(y))
            checked++
          }
        }
      }
    }
    expect(checked).toBe(3 * 3 * manifest.exits.reduce((a, e) => a + e.layers.length, 0))
  })

  it('times each layer through single-layer slices, checking every output shape', async () => {
    const e = manifest.exits[manifest.exits.length - 1]!
    const chain = await ex.runChain(manifest.id, { exit: e.exit, from: 0, to: e.layers.length }, input(0))
    expect(chain.layers).toEqual(e.layers)
    expect(chain.layerMs).toHaveLength(e.layers.length)
    for (const ms of chain.layerMs) expect(ms).toBeGreaterThan(0)
    const whole = await ex.runSegment(manifest.id, { exit: e.exit, from: 0, to: e.layers.length }, input(0))
    for (let i = 0; i < whole.output.length; i++) expect(chain.output[i]).toBeCloseTo(whole.output[i]!, 5)
  })

  it('rejects an input of the wrong shape or dtype, naming the input and its dims', async () => {
    const e = manifest.exits[0]!
    await expect(ex.runSegment(manifest.id, { exit: 1, from: 0, to: e.layers.length }, new Float32Array(10))).rejects.toThrow(
      `input "${manifest.input.name}" must be float32 [${manifest.input.shape.join(', ')}] (${manifest.input.shape.reduce((a, b) => a * b, 1)} values), got [${manifest.input.shape.join(', ')}] with 10 values`
    )
    await expect(ex.runSegment(manifest.id, { exit: 1, from: 0, to: e.layers.length }, input(0), [1, 784])).rejects.toThrow(/got \[1, 784\]/)
    await expect(ex.runSegment(manifest.id, { exit: 1, from: 0, to: e.layers.length }, new Float64Array(784) as unknown as Float32Array)).rejects.toThrow(
      `input "${manifest.input.name}" must be float32 [${manifest.input.shape.join(', ')}], got Float64Array`
    )
    await expect(ex.runSegment(manifest.id, { exit: 1, from: 2, to: 2 }, input(0))).rejects.toThrow('segment [2, 2) is not a non-empty range')
    await expect(ex.runSplit(manifest.id, 1, 99, input(0))).rejects.toThrow(`deviceLayers 99 is out of range 0..${e.layers.length} for exit 1`)
  })

  it('stays usable after bad requests', async () => {
    const e = manifest.exits[0]!
    const r = await ex.runSegment(manifest.id, { exit: 1, from: 0, to: e.layers.length }, input(0))
    expect(r.output).toHaveLength(manifest.classes.length)
  })
})

describe('a pool of ORT workers shared by several owners', () => {
  const ex = new OrtExecutor({ workers: 2 })
  const single = new OrtExecutor()
  beforeAll(async () => {
    await Promise.all([ex.start(), single.start()])
    await Promise.all([ex.openModel(dir), single.openModel(dir)])
  })
  afterAll(async () => {
    await ex.stop()
    await single.stop()
  })

  it('serves owners round robin when every worker is busy, with the same outputs as one worker, and times the wait', async () => {
    expect(ex.size).toBe(2)
    const exit = 5
    const to = manifest.exits[exit - 1]!.layers.length
    const seen: { owner: string; queuedMs: number; worker: number }[] = []
    ex.observe((r) => seen.push(r))
    // Six runs of a busy owner, then two of a quiet one: the quiet one is not served after all six.
    const jobs = [...Array.from({ length: 6 }, (_, i) => ({ owner: 'busy', k: i })), { owner: 'quiet', k: 6 }, { owner: 'quiet', k: 7 }].map(({ owner, k }) =>
      ex.runSegment(manifest.id, { exit, from: 0, to }, input(k), undefined, { owner }).then((r) => ({ ...r, name: `${owner}${k}` }))
    )
    const runs = await Promise.all(jobs)
    expect(ex.queued).toBe(0)
    for (let k = 0; k < 8; k++) {
      const want = await single.runSegment(manifest.id, { exit, from: 0, to }, input(k))
      expect(Array.from(runs[k]!.output)).toEqual(Array.from(want.output))
    }
    // two start at once, the rest alternate between the owners
    const order = [...runs].sort((a, b) => a.handedAt - b.handedAt).map((r) => r.name)
    expect(order.slice(2)).toEqual(['busy2', 'quiet6', 'busy3', 'quiet7', 'busy4', 'busy5'])
    expect(new Set(runs.map((r) => r.worker))).toEqual(new Set([0, 1]))
    expect(runs[0]!.queuedMs).toBeLessThan(runs[7]!.queuedMs)
    expect(runs[7]!.queuedMs).toBeGreaterThan(0)
    for (const r of runs) expect(r.serviceMs).toBeGreaterThanOrEqual(r.ms)
    expect(seen.map((r) => r.owner).sort()).toEqual([...Array(6).fill('busy'), 'quiet', 'quiet'])
    ex.observe(null)
  })

  it('moves an input it is given to the worker instead of copying it, and copies one it is lent', async () => {
    const exit = 5
    const to = manifest.exits[exit - 1]!.layers.length
    const lent = input(3)
    const given = input(3)
    const a = await ex.runSegment(manifest.id, { exit, from: 0, to }, lent)
    const b = await ex.runSegment(manifest.id, { exit, from: 0, to }, given, undefined, { give: true })
    expect(lent.length).toBe(784) // still the caller's
    expect(given.length).toBe(0) // transferred: detached here
    expect(Array.from(b.output)).toEqual(Array.from(a.output))
    // a view into a larger buffer is copied even when given (its buffer is not the tensor's alone)
    const view = new Float32Array(784 * 2).subarray(784)
    view.set(input(3))
    await ex.runSegment(manifest.id, { exit, from: 0, to }, view, undefined, { give: true })
    expect(view.length).toBe(784)
  })

  it('opens and closes a model on every worker', async () => {
    await ex.closeModel(manifest.id)
    await expect(ex.runSegment(manifest.id, { exit: 1, from: 0, to: 2 }, input(0))).rejects.toThrow(/not open/)
    await ex.openModel(dir)
    const r = await Promise.all([0, 1, 2, 3].map((k) => ex.runSegment(manifest.id, { exit: 1, from: 0, to: 2 }, input(k), undefined, { owner: `o${k}` })))
    expect(new Set(r.map((x) => x.worker))).toEqual(new Set([0, 1]))
  })
})

describe('models that do not match their manifest', () => {
  const ex = new OrtExecutor()
  beforeAll(() => ex.start())
  afterAll(() => ex.stop())

  it('names a layer whose boundary tensor is missing from the graph', async () => {
    const d = alteredModel((m) => {
      const l = m.layers.find((x: any) => x.id === 'conv2')
      const next = m.layers.find((x: any) => x.input === 'conv2')
      l.output = 'conv2_out'
      next.input = 'conv2_out'
    })
    await expect(ex.openModel(d)).rejects.toThrow('model.onnx: layer "conv2": its output tensor "conv2_out" does not exist in the ONNX graph')
  })

  it('names the input whose shape differs', async () => {
    const d = alteredModel((m) => {
      m.input.shape = [1, 1, 32, 32]
      m.layers[0].inputShape = [1, 1, 32, 32]
    })
    await expect(ex.openModel(d)).rejects.toThrow(/model\.onnx: input "input" has shape \[1, 1, 28, 28\] in the graph but \[1, 1, 32, 32\] in the manifest/)
  })

  it('names a layer whose computed output shape differs from the manifest', async () => {
    const d = alteredModel((m) => {
      // A consistent but wrong manifest: pool1 claimed to keep 28×28.
      const byId = (id: string) => m.layers.find((x: any) => x.id === id)
      const pool = byId('pool1')
      pool.outputShape = [1, pool.outputShape[1], 28, 28]
      pool.outputBytes = pool.outputShape.reduce((a: number, b: number) => a * b, 1) * 4
      for (const l of m.layers.filter((x: any) => x.input === 'pool1')) {
        l.inputShape = pool.outputShape
        if (['lrn', 'relu', 'dropout'].includes(l.type)) {
          l.outputShape = pool.outputShape
          l.outputBytes = pool.outputBytes
        }
      }
      for (const l of m.layers.filter((x: any) => x.input === 'lrn1')) l.inputShape = pool.outputShape
      delete m.sha256
    })
    await ex.openModel(d)
    await expect(ex.runChain('branchy-alexnet', { exit: 1, from: 0, to: 4 }, input(0))).rejects.toThrow(
      /layer "pool1" outputs \[1, \d+, 14, 14\] but the manifest says \[1, \d+, 28, 28\]/
    )
  })

  it('reports a truncated ONNX file', async () => {
    const d = alteredModel(
      (m) => delete m.sha256,
      (b) => b.subarray(0, Math.floor(b.length / 3))
    )
    await expect(ex.openModel(d)).rejects.toThrow(/^model\.onnx: not a readable ONNX model, truncated or corrupt/)
  })

  it('reports an ONNX file that does not match the manifest checksum', async () => {
    const d = alteredModel(
      () => undefined,
      (b) => {
        const c = Buffer.from(b)
        c[c.length - 1] = c[c.length - 1]! ^ 0xff
        return c
      }
    )
    await expect(ex.openModel(d)).rejects.toThrow(/model branchy-alexnet: model\.onnx does not match the manifest's sha256/)
  })
})
