/**
 * Early exits added to a model the user already has (`edgent model exits add`, issue 32): Edgent's
 * right-sizing assumes a BranchyNet, which almost nobody has. This makes one from the network as it
 * is, without Python or a GPU:
 *
 * 1. exit points are proposed among the final exit's cut points — feature maps at a spread of shares
 *    of the path's compute, the smallest activation near each share (or the layers the user names);
 * 2. the backbone is frozen: each training frame runs once through onnxruntime, segment after
 *    segment, and the feature map at every exit point is average-pooled to a 2×2 grid (the shipped
 *    camera model's exit heads have the same form: pooling, one fully connected layer, softmax);
 * 3. one classifier per exit — a softmax regression on the pooled features, trained with Adam by
 *    TensorFlow.js's CPU backend (its ops and optimiser; the gradient in closed form, p − y) (a fixed seed, the features standardised and the scaling folded back
 *    into the layer's weights);
 * 4. the heads are appended to the ONNX graph as extra outputs (AveragePool → Flatten → Gemm →
 *    Softmax), and the new model goes through the import path: a new library entry (the original is
 *    untouched) whose every exit's accuracy is measured on held-out labelled frames, never on the
 *    frames the heads were trained on.
 */
import { clone, create, toBinary } from '@bufbuild/protobuf'
import * as tf from '@tensorflow/tfjs-core'
import '@tensorflow/tfjs-backend-cpu'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ModelProtoSchema, NodeProtoSchema, TensorProtoSchema, TensorProto_DataType } from 'onnx-buf'
import { FieldError, UserError } from '../../shared/errors.js'
import { exitPath, layerMacs, product, type Layer, type Manifest } from '../../shared/contracts/manifest.js'
import { argmax, preprocess } from '../../shared/algorithms/preprocess.js'
import { softmaxT } from '../../shared/algorithms/confidence.js'
import { float, int, ints } from '../../shared/onnx/onnx-builder.js'
import { floatValueInfo, parseOnnx } from '../../shared/onnx/onnx-slicer.js'
import type { OrtExecutor } from '../runtime/executor.js'
import { loadManifest, readSampleSet, type SampleSet } from '../runtime/files.js'
import { importModel, listModels } from './library.js'
import type { AddExitsOptions, AddExitsReport, AddedExit, ImportReport } from './reports.js'
export type { AddExitsOptions, AddExitsReport, AddedExit } from './reports.js'
import { verifyModel, type Progress } from './verify.js'

/** Held-out frames on which the new graph's heads are compared with the trained ones. */
const CHECK_FRAMES = 16
/** The largest score difference between the two (float32 sums in another order). */
const CHECK_TOLERANCE = 1e-4

/** The pooled grid of every exit head (as the shipped camera model's heads: 2×2). */
const GRID = 2
const DEFAULT_EPOCHS = 30
const BATCH = 128
const LEARNING_RATE = 0.01
const L2 = 1e-4

/** A layer after which an exit may go: a feature map of at least 2×2 on the final exit's path, before its last layer. */
function candidates(path: readonly Layer[]): number[] {
  const out: number[] = []
  for (let k = 1; k < path.length - 1; k++) {
    const s = path[k - 1]!.outputShape
    if (s.length === 4 && s[2]! >= GRID && s[3]! >= GRID) out.push(k)
  }
  return out
}

/** Share of the path's multiply-accumulates done before each cut (index = deviceLayers). */
function computeShares(path: readonly Layer[]): number[] {
  const macs = path.map(layerMacs)
  const total = macs.reduce((a, b) => a + b, 0) || 1
  const shares = [0]
  for (const m of macs) shares.push(shares[shares.length - 1]! + m / total)
  return shares
}

/**
 * Proposed exit points: for targets at i/(count+1) of the path's compute, the candidate with the
 * smallest activation within ±10 % of the share (the nearest when none is), each share used once,
 * none past 90 % of the compute; fewer than `count` when the path has fewer such points.
 */
export function proposeExits(path: readonly Layer[], count: number): number[] {
  const cand = candidates(path)
  const shares = computeShares(path)
  const chosen: number[] = []
  for (let i = 1; i <= count; i++) {
    const target = i / (count + 1)
    // Each exit at a share of its own (a ReLU after a block adds none: one exit for the two cuts).
    // No exit in the path's last tenth (it would cost about what the final exit does).
    const free = cand.filter((k) => shares[k]! <= 0.9 && !chosen.some((c) => Math.abs(shares[c]! - shares[k]!) < 1e-9))
    if (!free.length) break
    const near = free.filter((k) => Math.abs(shares[k]! - target) <= 0.1)
    // The smallest activation near the share; on a tie the later cut (after the block's activation).
    const pick = near.length
      ? near.reduce((a, b) => (path[b - 1]!.outputBytes <= path[a - 1]!.outputBytes ? b : a))
      : free.reduce((a, b) => (Math.abs(shares[b]! - target) <= Math.abs(shares[a]! - target) ? b : a))
    chosen.push(pick)
  }
  return chosen.sort((a, b) => a - b)
}

/** AveragePool geometry giving a GRID×GRID (or near) map from h×w, no padding (what ONNX computes). */
function poolOf(h: number, w: number): { kernel: number; stride: number; grid: [number, number] } {
  const kernel = Math.max(1, Math.floor(Math.min(h, w) / GRID))
  const grid: [number, number] = [Math.floor((h - kernel) / kernel) + 1, Math.floor((w - kernel) / kernel) + 1]
  return { kernel, stride: kernel, grid }
}

/** Average-pools one NCHW feature map (batch 1) as ONNX AveragePool without padding, into `out` at `at`. */
function poolInto(x: Float32Array, c: number, h: number, w: number, p: ReturnType<typeof poolOf>, out: Float32Array, at: number): void {
  const [gh, gw] = p.grid
  const area = p.kernel * p.kernel
  let o = at
  for (let ch = 0; ch < c; ch++) {
    const base = ch * h * w
    for (let i = 0; i < gh; i++)
      for (let j = 0; j < gw; j++) {
        let s = 0
        for (let a = 0; a < p.kernel; a++) {
          const row = base + (i * p.stride + a) * w + j * p.stride
          for (let b = 0; b < p.kernel; b++) s += x[row + b]!
        }
        out[o++] = s / area
      }
  }
}

/** A deterministic permutation (a linear congruential generator and Fisher–Yates). */
function shuffled(n: number, seed: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i)
  let s = seed >>> 0
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    const j = s % (i + 1)
    const t = p[i]!
    p[i] = p[j]!
    p[j] = t
  }
  return p
}

export interface SoftmaxHead {
  /** [classes][features], row-major, on the raw (unstandardised) features. */
  weights: Float32Array
  bias: Float32Array
  trainAccuracy: number
}

/**
 * Trains a softmax regression on `x` (n × f, row-major) for labels in [0, classes) with TensorFlow.js
 * (Adam, mini-batches in a seeded order, L2): the features are standardised for the optimiser and the
 * scaling folded back, so the head reads the raw pooled features.
 */
export async function trainSoftmaxHead(
  x: Float32Array,
  y: ArrayLike<number>,
  n: number,
  f: number,
  classes: number,
  o: { epochs: number; seed: number; signal?: AbortSignal; progress?: (epoch: number, loss: number) => void }
): Promise<SoftmaxHead> {
  tf.enableProdMode() // no per-op checks, and no advice to install the native backend
  await tf.setBackend('cpu')
  const mean = new Float32Array(f)
  const std = new Float32Array(f)
  for (let i = 0; i < n; i++) for (let j = 0; j < f; j++) mean[j]! += x[i * f + j]! / n
  for (let i = 0; i < n; i++)
    for (let j = 0; j < f; j++) {
      const d = x[i * f + j]! - mean[j]!
      std[j]! += (d * d) / n
    }
  for (let j = 0; j < f; j++) std[j] = Math.sqrt(std[j]!) || 1
  const z = new Float32Array(n * f)
  for (let i = 0; i < n; i++) for (let j = 0; j < f; j++) z[i * f + j] = (x[i * f + j]! - mean[j]!) / std[j]!
  const labels = Int32Array.from({ length: n }, (_, i) => y[i]!)
  const W = tf.variable(tf.zeros([f, classes]), true, `exit-head-W-${o.seed}`)
  const b = tf.variable(tf.zeros([classes]), true, `exit-head-b-${o.seed}`)
  const opt = tf.train.adam(LEARNING_RATE)
  try {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      if (o.signal?.aborted) throw new UserError('exits add: cancelled')
      const order = shuffled(n, o.seed + epoch)
      let lossSum = 0
      for (let s = 0; s < n; s += BATCH) {
        const idx = order.subarray(s, Math.min(n, s + BATCH))
        const xb = new Float32Array(idx.length * f)
        const yb = new Int32Array(idx.length)
        for (const [r, i] of idx.entries()) {
          xb.set(z.subarray(i * f, (i + 1) * f), r * f)
          yb[r] = labels[i]!
        }
        // The softmax cross-entropy's gradient in closed form (dL/dlogits = p − y), applied by Adam.
        const { gW, gb, loss } = tf.tidy(() => {
          const xt = tf.tensor2d(xb, [idx.length, f])
          const yt = tf.oneHot(tf.tensor1d(yb, 'int32'), classes)
          const logits = tf.add(tf.matMul(xt, W), b)
          const d = tf.div(tf.sub(tf.softmax(logits), yt), idx.length)
          return {
            gW: tf.add(tf.matMul(xt, d, true, false), tf.mul(2 * L2, W)),
            gb: tf.sum(d, 0),
            loss: tf.add(tf.neg(tf.mean(tf.sum(tf.mul(yt, tf.logSoftmax(logits)), 1))), tf.mul(L2, tf.sum(tf.square(W))))
          }
        })
        opt.applyGradients([
          { name: W.name, tensor: gW },
          { name: b.name, tensor: gb }
        ])
        gW.dispose()
        gb.dispose()
        lossSum += (await loss.data())[0]! * idx.length
        loss.dispose()
      }
      o.progress?.(epoch + 1, lossSum / n)
      await new Promise((r) => setImmediate(r)) // let a cancel or a progress line through
    }
    const w = await W.data()
    const bias = Float32Array.from(await b.data())
    // Fold the standardisation in: W'[c][j] = W[j][c] / std[j]; b'[c] = b[c] − Σ_j W[j][c] mean[j] / std[j].
    const weights = new Float32Array(classes * f)
    for (let c = 0; c < classes; c++)
      for (let j = 0; j < f; j++) {
        const v = w[j * classes + c]! / std[j]!
        weights[c * f + j] = v
        bias[c]! -= v * mean[j]!
      }
    let correct = 0
    const scores = new Float32Array(classes)
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < classes; c++) {
        let s = bias[c]!
        for (let j = 0; j < f; j++) s += weights[c * f + j]! * x[i * f + j]!
        scores[c] = s
      }
      if (argmax(scores) === labels[i]) correct++
    }
    return { weights, bias, trainAccuracy: correct / n }
  } finally {
    W.dispose()
    b.dispose()
    opt.dispose()
  }
}

const floatTensor = (name: string, dims: number[], data: Float32Array) =>
  create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: TensorProto_DataType.FLOAT, rawData: new Uint8Array(data.slice().buffer) })

/** The model with one head per exit appended (AveragePool → Flatten → Gemm → Softmax), each a new graph output. */
export function appendHeads(
  onnx: Uint8Array,
  source: string,
  heads: { tensor: string; output: string; pool: ReturnType<typeof poolOf>; head: SoftmaxHead; features: number; classes: number }[]
): Uint8Array {
  const model = clone(ModelProtoSchema, parseOnnx(onnx, source))
  const g = model.graph!
  const taken = new Set([...g.node.flatMap((n) => n.output), ...g.initializer.map((t) => t.name), ...g.input.map((v) => v.name)])
  for (const h of heads) {
    const p = `${h.output}/`
    for (const t of [`${p}pool`, `${p}flat`, `${p}logits`, h.output, `${p}W`, `${p}b`])
      if (taken.has(t)) throw new UserError(`${source}: the graph has a tensor "${t}" already: choose another id`)
    g.initializer.push(floatTensor(`${p}W`, [h.classes, h.features], h.head.weights), floatTensor(`${p}b`, [h.classes], h.head.bias))
    const node = (opType: string, input: string[], output: string, attribute = [] as ReturnType<typeof int>[]) =>
      create(NodeProtoSchema, { name: `${p}${opType}`, opType, input, output: [output], attribute })
    g.node.push(
      node('AveragePool', [h.tensor], `${p}pool`, [ints('kernel_shape', [h.pool.kernel, h.pool.kernel]), ints('strides', [h.pool.stride, h.pool.stride])]),
      node('Flatten', [`${p}pool`], `${p}flat`, [int('axis', 1)]),
      node('Gemm', [`${p}flat`, `${p}W`, `${p}b`], `${p}logits`, [int('transB', 1), float('alpha', 1), float('beta', 1)]),
      node('Softmax', [`${p}logits`], h.output, [int('axis', 1)])
    )
    g.output.push(floatValueInfo(h.output, [1, h.classes]))
  }
  return toBinary(ModelProtoSchema, model)
}

/** The held-out part: the given test set, else the last fifth of the training set (which is then not trained on). */
function splitSets(o: AddExitsOptions): { train: SampleSet; test: SampleSet; trainCount: number; testSource: string } {
  if ((o.testImages === undefined) !== (o.testLabels === undefined)) throw new FieldError('exits add: {testImages} and {testLabels} go together')
  const train = readSampleSet(o.images, o.labels)
  if (o.testImages) return { train, test: readSampleSet(o.testImages, o.testLabels!), trainCount: train.count, testSource: o.testImages }
  const held = Math.floor(train.count / 5)
  if (held < 1) throw new UserError(`exits add: ${train.count} labelled frames are too few to hold any out: give a held-out set ({testImages}, {testLabels})`)
  const keep = train.count - held
  const test: SampleSet = {
    count: held,
    images: train.images.subarray(keep * train.imageElements),
    labels: train.labels.subarray(keep),
    imageElements: train.imageElements,
    source: `${train.source} (frames ${keep + 1}–${train.count}, held out)`
  }
  return { train, test, trainCount: keep, testSource: test.source }
}

/** The trained head's class probabilities for pooled features (softmax of W·x + b). */
function headScores(head: SoftmaxHead, x: Float32Array, classes: number): Float64Array {
  const f = x.length
  const z = new Float64Array(classes)
  for (let c = 0; c < classes; c++) {
    let s = head.bias[c]!
    for (let j = 0; j < f; j++) s += head.weights[c * f + j]! * x[j]!
    z[c] = s
  }
  return softmaxT(z, 1)
}

/**
 * Runs the new model's added exits on a few held-out frames and compares their scores with the
 * trained heads applied (in TypeScript) to the source model's feature maps: the graph computes what
 * was trained, or the import is wrong.
 */
async function checkHeads(
  ex: OrtExecutor,
  source: Manifest,
  sourceDir: string,
  sourceExit: number,
  report: ImportReport,
  test: SampleSet,
  cuts: number[],
  shapes: number[][],
  pools: ReturnType<typeof poolOf>[],
  heads: Parameters<typeof appendHeads>[2]
): Promise<{ frames: number; maxAbsDiff: number }> {
  const m = report.manifest
  const frames = Math.min(CHECK_FRAMES, test.count)
  let maxAbsDiff = 0
  await ex.openModel(sourceDir)
  await ex.openModel(report.dir)
  try {
    for (let i = 0; i < frames; i++) {
      const pixels = test.images.subarray(i * test.imageElements, (i + 1) * test.imageElements)
      const x = preprocess(source, pixels)
      for (const [j, k] of cuts.entries()) {
        const fmap = await ex.runSegment(source.id, { exit: sourceExit, from: 0, to: k }, x)
        const s = shapes[j]!
        const pooled = new Float32Array(heads[j]!.features)
        poolInto(fmap.output, s[1]!, s[2]!, s[3]!, pools[j]!, pooled, 0)
        const want = headScores(heads[j]!.head, pooled, heads[j]!.classes)
        const e = m.exits.find((x) => x.output === heads[j]!.output)!
        const got = await ex.runSegment(m.id, { exit: e.exit, from: 0, to: e.layers.length }, preprocess(m, pixels))
        for (let c = 0; c < want.length; c++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(want[c]! - got.output[c]!))
      }
    }
  } finally {
    await ex.closeModel(source.id)
    await ex.closeModel(m.id)
  }
  return { frames, maxAbsDiff }
}

/** Adds exits to a model and imports the result as a new library model. */
export async function addExits(o: AddExitsOptions, ex: OrtExecutor, progress: Progress = () => undefined): Promise<AddExitsReport> {
  const started = performance.now()
  const { manifest: m, dir } = loadManifest(o.model)
  // The final exit: the longest path (the others are earlier exits the model has already).
  const final = m.exits.reduce((a, e) => (e.layers.length >= a.layers.length ? e : a))
  const path = exitPath(m, final.exit)
  const cand = candidates(path)
  if (!cand.length) throw new UserError(`exits add: model ${m.id} has no feature map on its path to place an exit after`)
  let cuts: number[]
  if (o.at?.length) {
    cuts = o.at.map((id) => {
      const k = path.findIndex((l) => l.id === id) + 1
      if (!k || !cand.includes(k))
        throw new FieldError(
          `exits add: {at} "${id}" is not a layer an exit can follow (a feature map on the path to exit ${final.exit}): ${cand.map((c) => path[c - 1]!.id).join(', ')}`
        )
      return k
    })
    cuts = [...new Set(cuts)].sort((a, b) => a - b)
  } else {
    const count = o.count ?? 3
    if (!Number.isInteger(count) || count < 1 || count > 8) throw new FieldError(`exits add: {count} must be 1–8, got ${o.count}`)
    cuts = proposeExits(path, count)
  }
  const epochs = o.epochs ?? DEFAULT_EPOCHS
  if (!Number.isInteger(epochs) || epochs < 1 || epochs > 1000) throw new FieldError(`exits add: {epochs} must be 1–1000, got ${o.epochs}`)
  const seed = o.seed ?? 2018
  const id = o.id ?? `${m.id}-exits`
  // Said before minutes of work, not after (the import would refuse it then).
  if (!/^[a-z0-9][a-z0-9-]*$/.test(id)) throw new FieldError(`exits add: model id "${id}" is not valid: use lowercase letters, digits and '-' ({id})`)
  if (listModels(o.dataDir).some((e) => e.id === id)) throw new FieldError(`exits add: a model with id "${id}" exists already: choose another with {id}`)
  const { train, test, trainCount, testSource } = splitSets(o)
  const want = product(m.input.shape)
  for (const s of [train, test])
    if (s.imageElements !== want)
      throw new UserError(`exits add: ${s.source} has ${s.imageElements} pixels per frame, model ${m.id} takes ${m.input.shape.slice(1).join('×')} = ${want}`)
  const classes = m.classes.length
  for (let i = 0; i < trainCount; i++)
    if (train.labels[i]! >= classes)
      throw new UserError(`exits add: frame ${i + 1} of ${train.source} is labelled ${train.labels[i]}, the model has ${classes} classes`)

  // 1. Features: each frame runs once, segment after segment, pooled at every exit point.
  const shapes = cuts.map((k) => path[k - 1]!.outputShape)
  const pools = shapes.map((s) => poolOf(s[2]!, s[3]!))
  const widths = shapes.map((s, i) => s[1]! * pools[i]!.grid[0] * pools[i]!.grid[1])
  const feats = widths.map((f) => new Float32Array(trainCount * f))
  await ex.openModel(dir)
  try {
    for (let i = 0; i < trainCount; i++) {
      if (o.signal?.aborted) throw new UserError('exits add: cancelled')
      let x = preprocess(m, train.images.subarray(i * train.imageElements, (i + 1) * train.imageElements))
      let from = 0
      for (const [j, k] of cuts.entries()) {
        const r = await ex.runSegment(m.id, { exit: final.exit, from, to: k }, x)
        const s = shapes[j]!
        poolInto(r.output, s[1]!, s[2]!, s[3]!, pools[j]!, feats[j]!, i * widths[j]!)
        x = r.output
        from = k
      }
      if ((i + 1) % 250 === 0 || i + 1 === trainCount) progress(i + 1, trainCount, 'features of the training frames (backbone frozen)')
    }
  } finally {
    await ex.closeModel(m.id)
  }

  // 2. One head per exit.
  const heads: Parameters<typeof appendHeads>[2] = []
  const added: AddedExit[] = []
  const shares = computeShares(path)
  for (const [j, k] of cuts.entries()) {
    const after = path[k - 1]!
    const head = await trainSoftmaxHead(feats[j]!, train.labels, trainCount, widths[j]!, classes, {
      epochs,
      seed: seed + 7919 * j,
      ...(o.signal ? { signal: o.signal } : {}),
      progress: (e, loss) => progress(e, epochs, `training the exit after ${after.id} (loss ${loss.toFixed(3)})`)
    })
    const output = `added_exit_${j + 1}`
    heads.push({ tensor: after.output, output, pool: pools[j]!, head, features: widths[j]!, classes })
    added.push({
      after: after.id,
      cut: k,
      computeShare: shares[k]!,
      featureShape: [...shapes[j]!],
      pool: pools[j]!,
      features: widths[j]!,
      trainAccuracy: head.trainAccuracy,
      output
    })
  }

  // 3. The new graph, through the import path, every exit measured on the held-out frames.
  const work = mkdtempSync(join(tmpdir(), 'edgent-exits-'))
  try {
    const file = join(work, `${id}.onnx`)
    writeFileSync(file, appendHeads(new Uint8Array(readFileSync(join(dir, m.onnx))), m.onnx, heads))
    const classFile = join(work, 'classes.txt')
    writeFileSync(classFile, `${m.classes.join('\n')}\n`)
    const pre = m.preprocessing
    const report = await importModel(
      {
        file,
        dataDir: o.dataDir,
        id,
        inputShape: m.input.shape,
        ...(pre ? { preprocess: { scale: pre.scale, mean: pre.mean, std: pre.std } } : {}),
        classes: classFile,
        set: test,
        training: {
          method: 'edgent model exits add: heads trained on the frozen backbone (softmax regression on 2×2-pooled features, Adam, TensorFlow.js CPU)',
          source: { model: m.id, sha256: m.sha256 ?? null },
          trainFrames: trainCount,
          trainSource: train.source,
          heldOut: { frames: test.count, source: testSource },
          epochs,
          seed,
          exits: added.map((a) => ({ after: a.after, computeShare: a.computeShare, features: a.features, trainAccuracy: a.trainAccuracy, output: a.output }))
        }
      },
      ex,
      progress,
      `${id}.onnx`
    )
    const check = await checkHeads(ex, m, dir, final.exit, report, test, cuts, shapes, pools, heads)
    if (check.maxAbsDiff > CHECK_TOLERANCE) {
      rmSync(report.dir, { recursive: true, force: true })
      throw new Error(`exits add: the appended heads differ from the trained ones by ${check.maxAbsDiff} on held-out frames (a bug: please report it)`)
    }
    // The codecs' accuracies, on held-out frames the new model keeps (the import stores up to 2,000 of them).
    let codecAccuracy: AddExitsReport['codecAccuracy']
    if (o.codecs) {
      const v = await verifyModel({ model: report.dir, codecs: true, samples: o.codecSamples ?? 500, splitSamples: 1 }, progress, ex)
      codecAccuracy = v.codecAccuracy
      report.manifest = loadManifest(report.dir).manifest
    }
    return {
      ...(codecAccuracy ? { codecAccuracy } : {}),
      import: report,
      source: m.id,
      added,
      trainSamples: trainCount,
      heldOut: { samples: test.count, source: testSource },
      check,
      seconds: (performance.now() - started) / 1000
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
