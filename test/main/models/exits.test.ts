/**
 * Exits added to a single-exit network (`edgent model exits add`, issue 32 item 2), on real trained
 * weights: the shipped camera model's final-exit path sliced out as its own ONNX file (a network with
 * one exit), heads trained on its shipped labelled frames with the backbone frozen. The new model is
 * a library model like any import: the original untouched, every exit measured on held-out frames,
 * every split equal to the unsplit run, and each appended head computing exactly what was trained.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../cli-run.js'
import { addExits, proposeExits, trainSoftmaxHead } from '../../../src/main/models/exits.js'
import { importModel } from '../../../src/main/models/library.js'
import { verifyModel } from '../../../src/main/models/verify.js'
import { OrtExecutor } from '../../../src/main/runtime/executor.js'
import { loadManifest } from '../../../src/main/runtime/files.js'
import { packageRoot } from '../../../src/main/runtime/paths.js'
import { exitPath, layerMacs } from '../../../src/shared/contracts/manifest.js'
import { parseOnnx, sliceModel } from '../../../src/shared/onnx/onnx-slicer.js'
import { ModelJobs } from '../../../src/main/console/features/model-jobs.js'
import { Uploads } from '../../../src/main/console/api/uploads.js'
import { listModels } from '../../../src/main/models/library.js'
import type { ModelJobView } from '../../../src/shared/contracts/console-api.js'
import pino from 'pino'

const tmp = () => mkdtempSync(join(tmpdir(), 'edgent-exits-'))
const camera = join(packageRoot(), 'resources', 'models', 'branchy-resnet96')

describe('model exits add', () => {
  const ex = new OrtExecutor()
  const dataDir = tmp()
  const { manifest: shipped } = loadManifest(camera)
  const images = join(camera, shipped.samples!.images)
  const labels = join(camera, shipped.samples!.labels)
  let backboneDir = ''
  let backboneSha = ''

  beforeAll(async () => {
    await ex.start()
    // The camera model's final exit alone: a single-exit network with trained weights.
    const last = shipped.exits[shipped.exits.length - 1]!
    const file = join(tmp(), 'camera-backbone.onnx')
    writeFileSync(
      file,
      sliceModel(
        parseOnnx(new Uint8Array(readFileSync(join(camera, shipped.onnx)))),
        { name: shipped.input.name, dims: shipped.input.shape },
        {
          name: last.output,
          dims: [1, shipped.classes.length]
        }
      )
    )
    const classes = join(tmp(), 'classes.txt')
    writeFileSync(classes, shipped.classes.join('\n'))
    const pre = shipped.preprocessing!
    const r = await importModel(
      { file, dataDir, id: 'camera-backbone', preprocess: { scale: pre.scale, mean: pre.mean, std: pre.std }, classes, accuracy: [last.accuracy] },
      ex
    )
    backboneDir = r.dir
    backboneSha = createHash('sha256')
      .update(readFileSync(join(r.dir, 'model.onnx')))
      .digest('hex')
  }, 120_000)
  afterAll(() => ex.stop())

  it('proposes exits at distinct shares of the compute, after the activation, never at the head', () => {
    const { manifest: m } = loadManifest(backboneDir)
    const path = exitPath(m, 1)
    const cuts = proposeExits(path, 3)
    expect(cuts).toHaveLength(3)
    for (const k of cuts) {
      expect(path[k - 1]!.outputShape).toHaveLength(4) // a feature map
      expect(k).toBeLessThan(path.length - 1)
    }
    // none in the last tenth of the compute (it would cost what the final exit does)
    const macs = path.map(layerMacs)
    const total = macs.reduce((x, y) => x + y, 0)
    for (const k of cuts) expect(macs.slice(0, k).reduce((x, y) => x + y, 0) / total).toBeLessThanOrEqual(0.9)
    // a block and the ReLU after it share a compute share: at most one of them, the ReLU
    for (const k of cuts) expect(path[k - 1]!.type === 'block' && path[k]?.type === 'relu' && (path[k]!.macs ?? 0) === 0).toBe(false)
  })

  it("proposes as many exits on a shipped model whose manifest states no MACs (they are computed from the layers' shapes)", () => {
    const { manifest: m } = loadManifest(join(packageRoot(), 'resources', 'models', 'branchy-alexnet'))
    const path = exitPath(m, m.exits[m.exits.length - 1]!.exit)
    expect(proposeExits(path, 2)).toHaveLength(2)
  })

  it('trains the same head from the same seed, and a different one from another', async () => {
    const n = 64
    const f = 6
    const x = Float32Array.from({ length: n * f }, (_, i) => Math.sin(i * 12.9898) * 3)
    // the class is the largest of the first three features: linearly separable
    const y = Array.from({ length: n }, (_, i) => [0, 1, 2].reduce((a, c) => (x[i * f + c]! > x[i * f + a]! ? c : a), 0))
    const a = await trainSoftmaxHead(x, y, n, f, 3, { epochs: 60, seed: 5 })
    const b = await trainSoftmaxHead(x, y, n, f, 3, { epochs: 60, seed: 5 })
    const c = await trainSoftmaxHead(x, y, n, f, 3, { epochs: 60, seed: 6 })
    expect(Array.from(a.weights)).toEqual(Array.from(b.weights))
    expect(Array.from(a.weights)).not.toEqual(Array.from(c.weights))
    // a separable problem is learnt
    expect(a.trainAccuracy).toBeGreaterThan(0.9)
  })

  it('adds three exits on labelled frames, measures each on held-out frames, leaves the original untouched', async () => {
    const steps: string[] = []
    const r = await addExits({ model: backboneDir, dataDir, images, labels, epochs: 15, codecs: true, codecSamples: 40 }, ex, (_d, _t, what) =>
      steps.push(what)
    )
    const m = r.import.manifest
    expect(r.added).toHaveLength(3)
    expect(m.exits).toHaveLength(4)
    // the last fifth of the 2,000 frames held out, never trained on
    expect(r.trainSamples).toBe(1600)
    expect(r.heldOut.samples).toBe(400)
    // the appended heads, as onnxruntime runs them, compute what was trained
    expect(r.check.frames).toBe(16)
    expect(r.check.maxAbsDiff).toBeLessThanOrEqual(1e-4)
    for (const e of m.exits) {
      expect(e.accuracySource).toBe('measured')
      expect(e.testSamples).toBe(400)
    }
    // ordered by compute: the added exits first, the model's own last, and cheaper exits are not free
    expect(m.exits[3]!.output).toBe(shipped.exits[shipped.exits.length - 1]!.output)
    expect(m.exits.map((e) => e.layers.length)).toEqual([...m.exits.map((e) => e.layers.length)].sort((a, b) => a - b))
    // trained frozen-backbone heads on real features: far above chance (10 classes), the earliest too
    for (const e of m.exits.slice(0, 3)) expect(e.accuracy).toBeGreaterThan(0.7)
    expect(steps.some((s) => /features of the training frames/.test(s))).toBe(true)
    expect(steps.some((s) => /training the exit after/.test(s))).toBe(true)
    expect((m.training as { trainFrames: number }).trainFrames).toBe(1600)
    // the codecs' accuracies, measured on held-out frames and stored in the new model's manifest
    expect(r.codecAccuracy!.samples).toBe(40)
    expect(r.codecAccuracy!.exits).toHaveLength(4)
    expect(loadManifest(r.import.dir).manifest.codecAccuracy?.samples).toBe(40)
    expect(m.codecAccuracy?.samples).toBe(40)
    // the original model is untouched
    expect(
      createHash('sha256')
        .update(readFileSync(join(backboneDir, 'model.onnx')))
        .digest('hex')
    ).toBe(backboneSha)
    expect(loadManifest(backboneDir).manifest.exits).toHaveLength(1)
    // every split of every exit of the new model equals its unsplit run
    const v = await verifyModel({ model: r.import.dir, samples: 50, splitSamples: 1 }, undefined, ex)
    for (const e of v.exits) expect(e.maxSplitAbsDiff).toBeLessThanOrEqual(1e-4)
    // and the accuracies verify reproduces on the frames the new model keeps (the held-out ones)
    for (const e of v.exits) expect(Math.abs(e.deltaPoints!)).toBeLessThanOrEqual(10)
  }, 600_000)

  describe("from the console (the Models page's job: an admin worker, its own onnxruntime)", () => {
    const uploads = new Uploads(dataDir, { maxBytes: 64 * 2 ** 20 })
    const added: string[] = []
    const jobs = new ModelJobs({ dataDir, uploads, log: pino({ level: 'silent' }), onModel: (id) => added.push(id) })
    beforeAll(() => uploads.start())
    afterAll(async () => {
      await jobs.stop()
      uploads.stop()
    })
    const upload = async () => [(await uploads.receive('images', readFileSync(images))).upload, (await uploads.receive('labels', readFileSync(labels))).upload]
    const until = async (id: string, ok: (j: ModelJobView) => boolean, seconds: number): Promise<ModelJobView> => {
      const end = Date.now() + seconds * 1000
      for (;;) {
        const j = jobs.get(id)
        if (ok(j)) return j
        if (Date.now() > end) throw new Error(`job ${id}: ${JSON.stringify(j)}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    }

    it('adds exits with progress, the new model in the library, the uploads removed', async () => {
      const [im, lb] = await upload()
      const started = jobs.exitsAdd({ model: 'camera-backbone', images: im!, labels: lb!, id: 'camera-via-console', count: 2, epochs: 5 })
      expect(started.state).toBe('running')
      // one job at a time
      expect(() => jobs.exitsAdd({ model: 'camera-backbone', images: im!, labels: lb! })).toThrow(/a model job is running/)
      const seen = await until(started.id, (j) => j.progress !== null, 120)
      expect(seen.progress!.what).toMatch(/features of the training frames/)
      const done = await until(started.id, (j) => j.state !== 'running', 600)
      expect(done.state, done.error ?? '').toBe('done')
      expect(done.result!.exits).toHaveLength(3)
      expect(done.result!.exits.filter((e) => e.after !== null)).toHaveLength(2)
      expect(done.result!.heldOutFrames).toBe(400)
      expect(added).toEqual(['camera-via-console'])
      expect(listModels(dataDir).some((e) => e.id === 'camera-via-console')).toBe(true)
      expect(uploads.list()).toEqual([])
    }, 660_000)

    it('cancels a running job: it stops, says so, and writes nothing', async () => {
      const [im, lb] = await upload()
      const started = jobs.exitsAdd({ model: 'camera-backbone', images: im!, labels: lb!, id: 'camera-cancelled', epochs: 5 })
      await until(started.id, (j) => (j.progress?.done ?? 0) >= 250, 120)
      jobs.cancel(started.id)
      const end = await until(started.id, (j) => j.state !== 'running', 60)
      expect(end.state).toBe('cancelled')
      expect(end.error).toMatch(/cancelled/)
      expect(listModels(dataDir).some((e) => e.id === 'camera-cancelled')).toBe(false)
      expect(uploads.list()).toEqual([])
      expect(() => jobs.exitsAdd({ model: 'camera-backbone', images: 'f'.repeat(24), labels: 'e'.repeat(24) })).toThrow(/upload/)
    }, 300_000)
  })

  it('refuses bad requests by name, writing nothing', async () => {
    const lib = tmp()
    const cli = (...args: string[]) => runCli('model', 'exits', 'add', backboneDir, '--data-dir', lib, ...args)
    const a = await cli('--images', images, '--labels', labels, '--at', 'm_stem_stem.0_Conv,nowhere')
    expect(a.code).toBe(2)
    expect(a.err.trim()).toMatch(/^edgent: exits add: --at "nowhere" is not a layer an exit can follow \(a feature map on the path to exit 1\): /)
    const b = await cli('--images', join(packageRoot(), 'resources', 'models', 'branchy-alexnet', 'samples-images-idx3-ubyte'), '--labels', labels)
    expect(b.code).toBe(2)
    expect(b.err.trim().split('\n')).toHaveLength(1)
    expect(b.err).toMatch(/exits add: .* (pixels per frame|images but|labels)/)
    const c = await cli('--images', images, '--labels', labels, '--test-images', images)
    expect(c.code).toBe(2)
    expect(c.err.trim()).toMatch(/--test-images and --test-labels go together/)
    const d = await runCli('model', 'exits', 'add', backboneDir, '--data-dir', dataDir, '--images', images, '--labels', labels, '--id', 'camera-backbone')
    expect(d.code).toBe(2)
    expect(d.err.trim()).toBe('edgent: exits add: a model with id "camera-backbone" exists already: choose another with --id')
    expect(existsSync(join(lib, 'models')) ? readdirSync(join(lib, 'models')) : []).toEqual([])
  }, 120_000)
})
