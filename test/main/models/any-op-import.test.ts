/**
 * Importing whatever onnxruntime runs (issue 32, item 1): the torchvision architectures that were
 * refused on ReduceMean and Slice — ConvNeXt (LayerNorm as ReduceMean/Sub/Pow/Sqrt/Div, GELU as
 * Erf), ViT (attention: MatMul/Softmax, Slice/Gather, the class token), ShuffleNet V2 (channel split
 * and shuffle) and MNASNet (a ReduceMean global pool) — as small exports of the architectures'
 * own torchvision classes (test/fixtures/torchvision/README.md). Each imports, cuts between blocks,
 * every split reproduces the unsplit output, and its ops are priced (planning works on a fitted
 * profile that has never seen them). What cannot be cut or run is refused by name, nothing written.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AttributeProtoSchema, AttributeProto_AttributeType, GraphProtoSchema, ModelProtoSchema, NodeProtoSchema } from 'onnx-buf'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../cli-run.js'
import { edgentBin, startServe } from '../serve-process.js'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { verifyModel } from '../../../src/main/models/verify.js'
import { importModel, libraryDir } from '../../../src/main/models/library.js'
import { OrtExecutor } from '../../../src/main/runtime/executor.js'
import { packageRoot } from '../../../src/main/runtime/paths.js'
import { exitPath } from '../../../src/shared/contracts/manifest.js'
import { BUILTIN_PROFILES, predictLayerMs, regressionKeyOf } from '../../../src/shared/algorithms/latency.js'
import { GraphBuilder } from '../../../src/shared/onnx/onnx-builder.js'
import { residual } from '../../fixtures/dag.js'

const tmp = () => mkdtempSync(join(tmpdir(), 'edgent-anyop-'))
const fixture = (name: string) => join(packageRoot(), 'test', 'fixtures', 'torchvision', `tiny-${name}.onnx`)
const preprocess = { scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }

/** Each architecture: ops it must contain, and the fewest cut points its exit must have. */
const ARCHS = [
  { name: 'convnext_tiny', ops: ['ReduceMean', 'Erf', 'Transpose', 'Pow', 'Sqrt'], minCuts: 20 },
  { name: 'vit_b_16', ops: ['ReduceMean', 'MatMul', 'Softmax', 'Erf', 'Slice', 'Gather'], minCuts: 10 },
  { name: 'shufflenet_v2_x1_0', ops: ['Slice', 'Transpose', 'Reshape', 'Concat'], minCuts: 30 },
  { name: 'mnasnet0_5', ops: ['ReduceMean', 'Conv', 'Add'], minCuts: 30 }
] as const

describe('import of any op onnxruntime runs', () => {
  const ex = new OrtExecutor()
  const dataDir = tmp()
  beforeAll(() => ex.start())
  afterAll(() => ex.stop())

  for (const arch of ARCHS) {
    it(`${arch.name}: imports, cuts between blocks, every split equals the unsplit run, every layer priced`, async () => {
      const r = await importModel({ file: fixture(arch.name), dataDir, preprocess, accuracy: [0.5] }, ex)
      const m = r.manifest
      const path = exitPath(m, 1)
      expect(path.length).toBeGreaterThanOrEqual(arch.minCuts)
      const ops = new Set(m.layers.flatMap((l) => (l.type === 'block' ? Object.keys(l.ops ?? {}) : [l.type === 'other' ? l.op : l.type])))
      const opsInBlocks = new Set(m.layers.flatMap((l) => (l.type === 'block' ? (l.nodes ?? []).map((n) => (n.type === 'other' ? n.op : n.type)) : [])))
      for (const op of arch.ops) expect(ops.has(op) || opsInBlocks.has(op) || (op === 'Conv' && ops.has('conv')), op).toBe(true)
      // the user is told which ops had no model of their own and how they are priced
      if (arch.name !== 'mnasnet0_5') expect(r.notes.join('\n')).toMatch(/priced until a campaign times them: .*by the generic model/)
      const v = await verifyModel({ model: r.dir, samples: 2, splitSamples: 2 }, undefined, ex)
      expect(v.exits[0]!.splitsChecked).toBe(2 * (path.length + 1))
      expect(v.exits[0]!.maxSplitAbsDiff).toBeLessThanOrEqual(1e-4)
      // every layer (and every op of every block) has a regression and a finite prediction
      for (const l of path) {
        const ms = predictLayerMs(BUILTIN_PROFILES['paper-2018']!, 'edge', l)
        expect(Number.isFinite(ms), l.id).toBe(true)
      }
    }, 120_000)
  }

  it('vit_b_16 co-infers: served by `edgent serve`, split mid-encoder, each frame answered as the whole model on the edge answers it', async () => {
    const { dir } = await importModel({ file: fixture('vit_b_16'), dataDir: tmp(), id: 'vit-served', preprocess, accuracy: [0.5] }, ex)
    const serve = await startServe({ dataDir: tmp(), args: ['--model', dir, '--no-mqtts', '--local-cpu-quota', '0.5'] })
    try {
      const run = promisify(execFile)
      const infer = async (plan: string) => {
        const { stdout } = await run(
          process.execPath,
          [edgentBin, 'infer', '--agent', 'local-pi', '--count', '12', '--latency-ms', '1000', '--plan', plan, '--data-dir', serve.dataDir, '--json'],
          { timeout: 120_000 }
        )
        return JSON.parse(stdout) as {
          summary: { completed: number; lost: number }
          rows: { sample: number; predictedLabel: number; deviceLayers: number; uploadBytes: number }[]
        }
      }
      // wait for the local device, then the same frames edge-only and cut after the first encoder block
      for (let i = 0; i < 120; i++) {
        const d = await runCli('devices', '--data-dir', serve.dataDir, '--json')
        if (d.code === 0 && (JSON.parse(d.out) as { id: string; state: string }[]).some((x) => x.id === 'local-pi' && x.state === 'online')) break
        await new Promise((r) => setTimeout(r, 500))
      }
      const whole = await infer('1/0')
      const split = await infer('1/7')
      expect(whole.summary).toMatchObject({ completed: 12, lost: 0 })
      expect(split.summary).toMatchObject({ completed: 12, lost: 0 })
      expect(split.rows.every((r) => r.deviceLayers === 7 && r.uploadBytes > 0)).toBe(true)
      const bySample = new Map(whole.rows.map((r) => [r.sample, r.predictedLabel]))
      const same = split.rows.filter((r) => bySample.has(r.sample))
      expect(same.length).toBeGreaterThanOrEqual(6) // the runs share frames (the device's samples, in order)
      for (const r of same) expect(r.predictedLabel, `sample ${r.sample}`).toBe(bySample.get(r.sample))
      // (random weights answer nearly one class: that the scores of every split equal the unsplit
      // run's is what verifyModel checks above; here, that the split runs through agent and console)
    } finally {
      await serve.stop()
    }
  }, 240_000)

  it('prices ops without a model of their own by their kind', () => {
    const key = (op: string) =>
      regressionKeyOf({ id: 'x', type: 'other', op, inputShape: [1, 8], outputShape: [1, 8], outputBytes: 32, input: 'a', output: 'b' })
    expect(['ReduceMean', 'Slice', 'Gather', 'Transpose', 'Resize'].map(key)).toEqual(['generic', 'generic', 'generic', 'generic', 'generic'])
    expect(['Div', 'Pow', 'Sub'].map(key)).toEqual(['add', 'add', 'add'])
    expect(['Erf', 'Sqrt', 'Tanh'].map(key)).toEqual(['activation', 'activation', 'activation'])
    expect(['Reshape', 'Squeeze'].map(key)).toEqual(['other', 'other'])
  })

  describe('refuses what cannot be run or cut with one line, exit 2, and writes nothing', () => {
    const lib = tmp()
    const dir = tmp()
    const nothingWritten = () => expect(existsSync(libraryDir(lib)) ? readdirSync(libraryDir(lib)) : []).toEqual([])
    const withModel = (name: string, edit: (m: ReturnType<typeof parse>) => void) => {
      const m = parse()
      edit(m)
      writeFileSync(join(dir, name), toBinary(ModelProtoSchema, m))
      return join(dir, name)
    }
    const parse = () => fromBinary(ModelProtoSchema, residual().bytes)

    it.each([
      [
        'dynamic control flow (an If with a subgraph)',
        () =>
          withModel('branch.onnx', (m) => {
            const g = m.graph!
            const relu = g.node.find((n) => n.opType === 'Relu')!
            const branch = create(GraphProtoSchema, { name: 'then', node: [] })
            g.node.splice(
              g.node.indexOf(relu),
              1,
              create(NodeProtoSchema, {
                name: 'data_branch',
                opType: 'If',
                input: relu.input,
                output: relu.output,
                attribute: [
                  create(AttributeProtoSchema, { name: 'then_branch', type: AttributeProto_AttributeType.GRAPH, g: branch }),
                  create(AttributeProtoSchema, { name: 'else_branch', type: AttributeProto_AttributeType.GRAPH, g: branch })
                ]
              })
            )
          }),
        /^edgent: branch\.onnx: node "data_branch" \(op If\) is dynamic control flow: the layers it runs depend on the data, so it can be neither cut nor priced/
      ],
      [
        'an op onnxruntime does not have',
        () =>
          withModel('custom.onnx', (m) => {
            const relu = m.graph!.node.find((n) => n.opType === 'Relu')!
            relu.opType = 'Frobnicate'
            relu.domain = 'com.example'
            m.opsetImport.push({ ...m.opsetImport[0]!, domain: 'com.example', version: 1n })
          }),
        /^edgent: custom\.onnx: onnxruntime cannot load the graph \(.*Frobnicate.*\)$/
      ],
      [
        'an output with no cut point before it (two paths that meet only at the output)',
        () => {
          const b = new GraphBuilder('nocut')
          const whole = b.gemm(b.flatten('x'), 3 * 8 * 8, 10)
          const pooled = b.gemm(b.flatten(b.globalAveragePool('x')), 3, 10)
          const y = b.add(whole, pooled)
          writeFileSync(join(dir, 'nocut.onnx'), b.build('x', [1, 3, 8, 8], [{ name: y, dims: [1, 10] }]))
          return join(dir, 'nocut.onnx')
        },
        /^edgent: nocut\.onnx: output "add\d+" has no cut point: .* so it cannot be partitioned$/
      ]
    ])('%s', async (_what, file, message) => {
      const r = await runCli('model', 'import', file(), '--data-dir', lib, '--accuracy', '0.5')
      expect(r.err.trim().split('\n')).toHaveLength(1)
      expect(r.err.trim()).toMatch(message)
      expect(r.code).toBe(2)
      nothingWritten()
    })
  })
})
