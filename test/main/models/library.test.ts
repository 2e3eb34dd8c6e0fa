/**
 * Importing models into the library (src/main/models/library.ts) with onnxruntime-node: DAG fixtures
 * built in TypeScript and the shipped chain re-imported from its bare ONNX file. For every fixture,
 * exit and cut point, the device prefix then the edge suffix equals the unsplit output; bad input
 * gets one line naming the problem and leaves nothing in the library.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ModelProtoSchema, TensorShapeProto_DimensionSchema } from 'onnx-buf'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../cli-run.js'
import { flagOf, type FieldError } from '../../../src/shared/errors.js'
import { verifyModel } from '../../../src/main/models/verify.js'
import { importModel, libraryDir, listModels, removeStaleImports, resolveModel } from '../../../src/main/models/library.js'
import { OrtExecutor } from '../../../src/main/runtime/executor.js'
import { loadManifest } from '../../../src/main/runtime/files.js'
import { defaultModelDir, packageRoot } from '../../../src/main/runtime/paths.js'
import { exitPath, product } from '../../../src/shared/contracts/manifest.js'
import { DAG_FIXTURES, residual } from '../../fixtures/dag.js'
import { shippedSubset } from '../../fixtures/samples.js'
import { GraphBuilder } from '../../../src/shared/onnx/onnx-builder.js'

const tmp = () => mkdtempSync(join(tmpdir(), 'edgent-import-'))

/** A deterministic input in the model's preprocessed space. */
function input(dims: number[], seed: number): Float32Array {
  const x = new Float32Array(product(dims))
  let s = seed
  for (let i = 0; i < x.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    x[i] = s / 2 ** 32 - 0.5
  }
  return x
}

describe('model import', () => {
  const ex = new OrtExecutor()
  const dataDir = tmp()
  beforeAll(() => ex.start())
  afterAll(() => ex.stop())

  for (const build of DAG_FIXTURES) {
    it(`${build.name}: derives cut points and layers, and every split equals the unsplit run`, async () => {
      const f = build()
      const file = join(tmp(), `${f.name}.onnx`)
      writeFileSync(file, f.bytes)
      const r = await importModel({ file, dataDir, accuracy: f.outputs.map(() => 0.5) }, ex)
      expect(r.manifest.exits).toHaveLength(f.outputs.length)
      expect(r.manifest.exits.every((e) => e.accuracySource === 'supplied')).toBe(true)
      const m = r.manifest
      await ex.openModel(r.dir)
      let splits = 0
      for (const e of m.exits) {
        const N = e.layers.length
        for (let k = 0; k < 3; k++) {
          const x = input(m.input.shape, 7 * k + e.exit)
          const whole = await ex.runSegment(m.id, { exit: e.exit, from: 0, to: N }, x)
          for (let p = 0; p <= N; p++) {
            const split = await ex.runSplit(m.id, e.exit, p, x)
            let diff = 0
            for (let i = 0; i < whole.output.length; i++) diff = Math.max(diff, Math.abs(split.output[i]! - whole.output[i]!))
            expect(diff, `exit ${e.exit}, deviceLayers ${p}`).toBeLessThanOrEqual(1e-4)
            splits++
          }
        }
      }
      expect(splits).toBeGreaterThan(15)
      await ex.closeModel(m.id)
    })
  }

  it('types layers and features: a residual block is one `block` layer with its op mix, MACs and weights', async () => {
    const { manifest } = loadManifest(resolveModel('residual', dataDir))
    const block = manifest.layers.find((l) => l.type === 'block')!
    expect(block.type === 'block' && block.ops).toEqual({ Conv: 2, Relu: 1, Add: 1 })
    // two 3×3 convolutions 8 → 8 over 16×16 outputs
    expect(block.macs).toBe(2 * 16 * 16 * 8 * 8 * 3 * 3)
    expect(block.paramBytes).toBe(2 * (8 * 8 * 3 * 3 + 8) * 4)
    const dw = loadManifest(resolveModel('depthwise', dataDir)).manifest.layers.find((l) => l.type === 'conv' && l.group === 8)
    expect(dw).toMatchObject({ type: 'conv', group: 8, kernel: [3, 3], macs: 8 * 8 * 8 * 9 })
    const multi = loadManifest(resolveModel('multi-exit', dataDir)).manifest
    expect(exitPath(multi, 1).length).toBeLessThan(exitPath(multi, 2).length) // exits ordered by compute
  })

  it("re-imports the shipped chain with the hand-written manifest's layers, and measures accuracy on a labelled set", async () => {
    const { manifest, dir } = loadManifest(defaultModelDir())
    const sets = shippedSubset(tmp(), 300)
    const p = manifest.preprocessing!
    const r = await importModel(
      {
        file: join(dir, manifest.onnx),
        id: 'alexnet-again',
        dataDir,
        images: sets.images,
        labels: sets.labels,
        preprocess: { scale: p.scale, mean: p.mean, std: p.std }
      },
      ex
    )
    const byId = new Map(manifest.layers.map((l) => [l.id, l]))
    const mine = new Map(r.manifest.layers.map((l) => [l.id, l]))
    for (const e of manifest.exits) {
      const again = r.manifest.exits.find((x) => x.output === e.output)!
      expect(again.exit).toBe(e.exit)
      expect(again.layers.map((id) => mine.get(id)!.output)).toEqual(e.layers.map((id) => byId.get(id)!.output))
      expect(again.layers.map((id) => mine.get(id)!.type)).toEqual(e.layers.map((id) => byId.get(id)!.type))
    }
    // accuracy as `edgent model verify` measures it on the same 300 images
    const v = await verifyModel({ model: defaultModelDir(), images: sets.images, labels: sets.labels, splitSamples: 1 }, undefined, ex)
    for (const e of r.manifest.exits) {
      expect(e).toMatchObject({ accuracySource: 'measured', testSamples: 300 })
      expect(e.accuracy).toBe(v.exits.find((x) => x.exit === e.exit)!.accuracy)
    }
    // its samples are kept beside it, and `model verify` works on it by id
    const again = await verifyModel({ model: resolveModel('alexnet-again', dataDir), splitSamples: 1 }, undefined, ex)
    expect(again.ok).toBe(true)
    expect(again.samples).toBe(300)
  })

  it('says when a file is already in the library, and names API fields (not CLI flags) where the console API imports', async () => {
    const f = DAG_FIXTURES[0]!()
    const file = join(tmp(), 'twin.onnx')
    writeFileSync(file, f.bytes)
    const dir = tmp()
    const first = await importModel({ file, dataDir: dir, id: 'twin-a', accuracy: f.outputs.map(() => 0.5) }, ex)
    expect(first.notes.filter((n) => n.startsWith('the same ONNX file'))).toEqual([])
    const second = await importModel({ file, dataDir: dir, id: 'twin-b', accuracy: f.outputs.map(() => 0.5) }, ex)
    expect(second.notes).toContain(`the same ONNX file as library model twin-a (sha256 ${first.manifest.sha256!.slice(0, 12)}…)`)
    // The message the API (and the Models page) shows names its fields; the CLI renders the same error with its flags.
    const err = (await importModel({ file, dataDir: dir, id: 'twin-c' }, ex).catch((e: unknown) => e)) as FieldError
    expect(err.message).toBe(
      'import: each exit needs an accuracy: give a labelled set (images and labels, or imageDir) to measure it, or accuracy a1,a2,… to supply it'
    )
    expect(err.render(flagOf)).toContain('(--images and --labels, or --image-dir) to measure it, or --accuracy a1,a2,…')
  })

  it('imports a real torchvision export (SqueezeNet 1.1): each fire module one block, every cut point splits exactly', async () => {
    const file = join(packageRoot(), 'test', 'fixtures', 'torchvision', 'squeezenet1_1.onnx')
    const r = await importModel({ file, dataDir, preprocess: { scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }, accuracy: [0.5] }, ex)
    const m = r.manifest
    expect(m.id).toBe('squeezenet1-1')
    expect(m.input.shape).toEqual([1, 3, 224, 224])
    const blocks = m.layers.filter((l) => l.type === 'block')
    expect(blocks).toHaveLength(8)
    for (const b of blocks) expect(b.type === 'block' && b.ops).toEqual({ Conv: 2, Relu: 2, Concat: 1 })
    // middle cuts whose activation is much smaller than the input: what makes partitioning pay
    expect(m.layers.filter((l) => l.outputBytes < 0.1 * 3 * 224 * 224 * 4).length).toBeGreaterThan(5)
    const v = await verifyModel({ model: r.dir, splitSamples: 1, samples: 1 }, undefined, ex)
    expect(v.exits[0]!.splitsChecked).toBe(m.exits[0]!.layers.length + 1)
    expect(v.exits[0]!.maxSplitAbsDiff).toBeLessThanOrEqual(1e-4)
  }, 120_000)

  it('removes the folder an import killed mid-way left, not one a live import is writing', () => {
    const lib = libraryDir(dataDir)
    const dead = spawnSync(process.execPath, ['-e', '0']).pid! // a process that has exited
    mkdirSync(join(lib, `.import-killed-${dead}`))
    writeFileSync(join(lib, `.import-killed-${dead}`, 'model.onnx'), 'half')
    mkdirSync(join(lib, `.import-busy-${process.pid}`))
    expect(removeStaleImports(lib)).toBe(1)
    expect(readdirSync(lib).filter((n) => n.startsWith('.import-'))).toEqual([`.import-busy-${process.pid}`])
    rmSync(join(lib, `.import-busy-${process.pid}`), { recursive: true })
  })

  it('lists shipped and imported models', () => {
    const ids = listModels(dataDir).map((e) => `${e.source}:${e.id}`)
    expect(ids).toEqual([
      'shipped:branchy-alexnet',
      'shipped:branchy-resnet96',
      'imported:alexnet-again',
      'imported:depthwise',
      'imported:inception',
      'imported:multi-exit',
      'imported:residual',
      'imported:squeezenet1-1'
    ])
  })

  it('verifies a model without a labelled set on random inputs', async () => {
    const v = await verifyModel({ model: resolveModel('inception', dataDir), splitSamples: 2 }, undefined, ex)
    expect(v.source).toMatch(/random inputs/)
    expect(v.ok).toBe(true)
    expect(v.exits[0]!.accuracy).toBeNull()
  })

  describe('refuses bad input with one line, exit 2, and writes nothing to the library', () => {
    const lib = tmp()
    const cli = async (...args: string[]) => {
      const r = await runCli('model', 'import', ...args, '--data-dir', lib)
      return { ...r, err: r.err.trim() }
    }
    const dir = tmp()
    const good = join(dir, 'residual.onnx')
    writeFileSync(good, residual().bytes)
    const variant = (name: string, edit: (m: ReturnType<typeof parse>) => void) => {
      const m = parse()
      edit(m)
      const file = join(dir, name)
      writeFileSync(file, toBinary(ModelProtoSchema, m))
      return file
    }
    const parse = () => fromBinary(ModelProtoSchema, residual().bytes)
    const nothingWritten = () => expect(existsSync(libraryDir(lib)) ? readdirSync(libraryDir(lib)) : []).toEqual([])

    it.each([
      [
        'a dynamic input dimension without --input-shape',
        () =>
          variant('dynamic.onnx', (m) => {
            const t = m.graph!.input[0]!.type!.value.value as { shape: { dim: unknown[] } }
            t.shape.dim[0] = create(TensorShapeProto_DimensionSchema, { value: { case: 'dimParam', value: 'batch' } })
          }),
        ['--accuracy', '0.5'],
        /^edgent: import: input "x" has a dynamic dimension \[\?, 3, 16, 16\]: give its shape with --input-shape, e\.g\. 1x3x224x224$/
      ],
      [
        'a truncated file',
        () => (writeFileSync(join(dir, 'cut.onnx'), residual().bytes.subarray(0, 300)), join(dir, 'cut.onnx')),
        ['--accuracy', '0.5'],
        /^edgent: cut\.onnx: not a readable ONNX model, truncated or corrupt/
      ],
      [
        'a file that is not ONNX',
        () => (writeFileSync(join(dir, 'notes.onnx'), 'hello, this is text\n'.repeat(20)), join(dir, 'notes.onnx')),
        ['--accuracy', '0.5'],
        /^edgent: notes\.onnx: not a readable ONNX model|^edgent: notes\.onnx: the ONNX model has no graph nodes/
      ],
      [
        'a file over the size cap',
        () => good,
        ['--max-mb', '0.001', '--accuracy', '0.5'],
        /^edgent: import: residual\.onnx is \d+ bytes, over the 1049 bytes import cap \(--max-mb\)$/
      ],
      [
        'a feature map as an exit (a 4-D output)',
        () => {
          const b = new GraphBuilder('fmap')
          const out = b.relu(b.conv('x', 3, 8, 3))
          writeFileSync(join(dir, 'fmap.onnx'), b.build('x', [1, 3, 16, 16], [{ name: out, dims: [1, 8, 16, 16] }]))
          return join(dir, 'fmap.onnx')
        },
        ['--accuracy', '0.5'],
        /^edgent: fmap\.onnx: output "relu\d+" is \[1, 8, 16, 16\]: an exit gives one score per class, \[1, classes\] \(flatten or pool a feature map before it\)$/
      ],
      ['no accuracy', () => good, ['--id', 'no-acc'], /^edgent: import: each exit needs an accuracy: give a labelled set/],
      [
        'accuracies for the wrong number of exits',
        () => good,
        ['--id', 'two-acc', '--accuracy', '0.5,0.6'],
        /^edgent: import: --accuracy gives 2 values, the model has 1 exits/
      ],
      [
        'an existing id',
        () => good,
        ['--id', 'branchy-alexnet', '--accuracy', '0.5'],
        /^edgent: import: a model with id "branchy-alexnet" exists already \(choose another id\)$/
      ]
    ])('%s', async (_what, file, extra, message) => {
      const r = await cli(file(), ...extra)
      expect(r.err.split('\n')).toHaveLength(1)
      expect(r.err).toMatch(message)
      expect(r.code).toBe(2)
      nothingWritten()
    })

    it('a labels file whose count does not match the images', async () => {
      const { manifest, dir: shipped } = loadManifest(defaultModelDir())
      const sets = shippedSubset(tmp(), 20)
      const r = await cli(join(shipped, manifest.onnx), '--id', 'mismatch', '--images', sets.images, '--labels', sets.shortLabels)
      expect(r.err).toMatch(/^edgent: images \+ labels-short: .*20.*19|^edgent: .*20 images but 19 labels/)
      expect(r.code).toBe(2)
      nothingWritten()
    })

    it('and imports a good file through the CLI, printing its cut points', async () => {
      const r = await cli(good, '--accuracy', '0.9')
      expect(r.code, r.err).toBe(0)
      expect(r.out).toMatch(/^imported residual into /)
      expect(r.out).toMatch(/Conv×2 Relu×1 Add×1/)
    })
  })
})
