/**
 * The manifest of an imported model, derived from its graph (onnx-graph.ts) and the tensor shapes one
 * run of the model gave: one manifest layer per pair of consecutive cut points, typed with the paper's
 * types where the layer is one op of such a type (`block` for several ops), with the features the
 * latency models need (input/output elements, multiply-accumulates, parameter bytes, the op mix).
 */
import type { AttributeProto, ModelProto, NodeProto } from 'onnx-buf'
import { FieldError, UserError } from '../errors.js'
import { DTYPE_BYTES, product, type Layer } from '../contracts/manifest.js'
import { regressionKeyOf } from '../algorithms/latency.js'
import { type CutLayer, type ExitAnalysis, analyseExit, checkOps, indexGraph, opMix, refusedNode } from './onnx-graph.js'

export interface ProbedShape {
  dims: number[]
  type: string
}

export interface ImportOptions {
  id: string
  name?: string
  onnx: string
  onnxBytes: number
  sha256: string
  inputShape: number[]
  preprocessing: { scale: number; mean: number[]; std: number[] }
  classes?: string[]
  source: string
}

/** A manifest draft before accuracies: exits carry their path, ordered by compute. */
export interface ManifestDraft {
  manifest: Record<string, unknown> & { layers: Record<string, unknown>[]; exits: { exit: number; layers: string[]; output: string; macs: number }[] }
  /** What the user is told about the import (ops priced by the generic model). */
  notes: string[]
  /** Each graph output's cut points (tensor names, input first). */
  cuts: { output: string; tensors: string[] }[]
}

const attr = (n: NodeProto, name: string): AttributeProto | undefined => n.attribute.find((a) => a.name === name)
const attrInts = (n: NodeProto, name: string): number[] | undefined => {
  const a = attr(n, name)
  return a?.ints.length ? a.ints.map(Number) : undefined
}
const attrInt = (n: NodeProto, name: string): number | undefined => {
  const a = attr(n, name)
  return a ? Number(a.i) : undefined
}
const attrFloat = (n: NodeProto, name: string): number | undefined => attr(n, name)?.f

/** A tensor's shape from the probe; the error names the tensor. */
function shapeOf(shapes: Readonly<Record<string, ProbedShape>>, name: string): number[] {
  const s = shapes[name]
  if (!s) throw new UserError(`tensor "${name}": no shape (onnxruntime did not produce it)`)
  return s.dims
}

/** Multiply-accumulates of one node (conv and matrix products; 0 for the rest). */
function nodeMacs(n: NodeProto, shapes: Readonly<Record<string, ProbedShape>>, weightDims: (t: string) => number[] | undefined): number {
  const out = shapes[n.output[0] ?? '']?.dims
  if (!out) return 0
  if (n.opType === 'Conv') {
    const w = weightDims(n.input[1] ?? '') ?? shapes[n.input[1] ?? '']?.dims
    if (!w) return 0
    return product(out) * product(w.slice(1)) // out elements × (cin / group) × kh × kw
  }
  if (n.opType === 'Gemm' || n.opType === 'MatMul') {
    const a = shapes[n.input[0] ?? '']?.dims ?? weightDims(n.input[0] ?? '')
    if (!a) return 0
    const transA = n.opType === 'Gemm' && attrInt(n, 'transA') === 1
    const k = transA ? a[a.length - 2]! : a[a.length - 1]!
    return product(out) * k
  }
  return 0
}

/** Derives the manifest (without accuracies) from the graph and the probed shapes. */
export function deriveManifest(model: ModelProto, shapes: Readonly<Record<string, ProbedShape>>, o: ImportOptions, source = 'model.onnx'): ManifestDraft {
  const ix = indexGraph(model, source)
  const g = model.graph!
  if (ix.outputs.length === 0) throw new UserError(`${source}: the graph has no outputs`)
  const analyses: ExitAnalysis[] = ix.outputs.map((out) => analyseExit(ix, out))
  for (const e of analyses)
    if (e.layers.length === 1 && e.layers[0]!.nodes.length > 1)
      throw new UserError(
        `${source}: output "${e.output}" has no cut point: no single tensor between the input and it carries everything the rest needs (every path around one), so it cannot be partitioned`
      )
  const notes: string[] = []
  const refused = refusedNode(ix)
  if (refused) throw new UserError(`${source}: ${refused}`)
  // An op without a model of its own is not a refusal: it is a layer (or part of a block) like any
  // other, priced by the regression of its kind (latency.ts regressionKeyOf); the user is told which.
  const unpriced = new Map<string, number>()
  for (const u of checkOps(ix, analyses)) {
    const n = ix.nodes[u.node]!
    const op = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType
    unpriced.set(op, (unpriced.get(op) ?? 0) + 1)
  }
  if (unpriced.size) {
    const byKey = new Map<string, string[]>()
    for (const [op, k] of unpriced) {
      const key = regressionKeyOf({ type: 'other', op } as Layer)
      byKey.set(key, [...(byKey.get(key) ?? []), `${op} ×${k}`])
    }
    const how: Record<string, string> = {
      generic: 'by the generic model (input and output elements)',
      add: 'as element-wise binary ops (the add model)',
      activation: 'as element-wise unary ops (the activation model)'
    }
    notes.push(
      `ops without a model of their own, priced until a campaign times them: ${[...byKey].map(([key, ops]) => `${ops.join(', ')} ${how[key] ?? `with the ${key} model`}`).join('; ')}`
    )
  }
  const initDims = new Map(g.initializer.map((t) => [t.name, t.dims.map(Number)]))
  const initBytes = new Map(g.initializer.map((t) => [t.name, product(t.dims.map(Number)) * (DTYPE_BYTES[dtypeName(t.dataType)] ?? 4)]))
  for (const n of g.node) if (n.opType === 'Constant' && n.output[0]) initDims.set(n.output[0], shapes[n.output[0]]?.dims ?? [])
  const weightDims = (t: string) => initDims.get(t)

  const layerIds = new Map<string, string>()
  const usedIds = new Set<string>()
  const layers: Record<string, unknown>[] = []
  const layerMacsByKey = new Map<string, number>()
  const keyOf = (l: CutLayer) => `${l.input}\u0000${l.output}`
  /** One op of a block as a layer record of its own (its first activation input, its first output). */
  const nodeRecord = (n: NodeProto, i: number): Record<string, unknown> => {
    const input = n.input.find((t) => t && !ix.constants.has(t)) ?? ix.input
    const inShape = input === ix.input ? o.inputShape : shapeOf(shapes, input)
    const outShape = shapeOf(shapes, n.output[0]!)
    return {
      id: sanitize(n.name || `${n.opType}${i + 1}`),
      ...single(n, inShape, outShape, weightDims),
      inputShape: inShape,
      outputShape: outShape,
      outputBytes: product(outShape) * 4,
      input,
      output: n.output[0]!,
      macs: Math.round(nodeMacs(n, shapes, weightDims))
    }
  }
  const describe = (l: CutLayer): string => {
    const key = keyOf(l)
    const known = layerIds.get(key)
    if (known) return known
    const nodes = l.nodes.map((i) => ix.nodes[i]!)
    const inputShape = l.input === ix.input ? o.inputShape : shapeOf(shapes, l.input)
    const outputShape = shapeOf(shapes, l.output)
    if (shapes[l.output] && shapes[l.output]!.type !== 'float32')
      throw new UserError(`${source}: tensor "${l.output}" is ${shapes[l.output]!.type}; activations must be float32`)
    const macs = nodes.reduce((a, n) => a + nodeMacs(n, shapes, weightDims), 0)
    const paramBytes = [...new Set(nodes.flatMap((n) => n.input.filter((t) => ix.initializers.has(t))))].reduce((a, t) => a + (initBytes.get(t) ?? 0), 0)
    const base = { inputShape, outputShape, outputBytes: product(outputShape) * 4, input: l.input, output: l.output, macs: Math.round(macs), paramBytes }
    const typed =
      nodes.length === 1 ? single(nodes[0]!, inputShape, outputShape, weightDims) : { type: 'block', ops: opMix(ix, l), nodes: nodes.map(nodeRecord) }
    let id = sanitize(nodes.length === 1 ? nodes[0]!.name || `${nodes[0]!.opType}${layers.length + 1}` : `block${layers.length + 1}`)
    if (usedIds.has(id)) id = `${id}-${layers.length + 1}`
    usedIds.add(id)
    layerIds.set(key, id)
    layerMacsByKey.set(key, macs)
    layers.push({ id, ...typed, ...base })
    return id
  }
  const drafts = analyses.map((e) => {
    const ids = e.layers.map(describe)
    const macs = e.layers.reduce((a, l) => a + (layerMacsByKey.get(keyOf(l)) ?? 0), 0)
    return { layers: ids, output: e.output, macs, nodes: e.layers.reduce((a, l) => a + l.nodes.length, 0) }
  })
  // Exits ordered by the compute on their path (1 = cheapest).
  drafts.sort((a, b) => a.macs - b.macs || a.nodes - b.nodes)
  for (const d of drafts) {
    const dims = shapeOf(shapes, d.output)
    if (dims.length !== 2 || dims[0] !== 1)
      throw new UserError(
        `${source}: output "${d.output}" is [${dims.join(', ')}]: an exit gives one score per class, [1, classes] (flatten or pool a feature map before it)`
      )
  }
  const lastOut = shapeOf(shapes, drafts[drafts.length - 1]!.output)
  const classCount = lastOut[lastOut.length - 1]!
  for (const d of drafts) {
    const dims = shapeOf(shapes, d.output)
    if (dims[dims.length - 1] !== classCount)
      throw new UserError(
        `${source}: output "${d.output}" has ${dims[dims.length - 1]} scores, the others ${classCount}: every output must be an exit over the same classes`
      )
  }
  const classes = o.classes ?? Array.from({ length: classCount }, (_, i) => `class${i}`)
  if (classes.length !== classCount) throw new FieldError(`{classes} names ${classes.length} classes, the model's outputs have ${classCount} scores`)
  const channels = o.inputShape[1] ?? 1
  const perChannel = (v: number[], what: string) => {
    if (v.length === 1) return Array.from({ length: channels }, () => v[0]!)
    if (v.length !== channels) throw new FieldError(`{preprocess} ${what} has ${v.length} values, the input has ${channels} channels`)
    return v
  }
  return {
    manifest: {
      schema: 1,
      id: o.id,
      ...(o.name ? { name: o.name } : {}),
      onnx: o.onnx,
      onnxBytes: o.onnxBytes,
      sha256: o.sha256,
      input: { name: ix.input, shape: o.inputShape, dtype: 'float32' },
      preprocessing: {
        from: 'uint8',
        layout: 'NCHW',
        scale: o.preprocessing.scale,
        mean: perChannel(o.preprocessing.mean, 'mean'),
        std: perChannel(o.preprocessing.std, 'std')
      },
      classes,
      layers,
      exits: drafts.map((d, i) => ({ exit: i + 1, layers: d.layers, output: d.output, macs: Math.round(d.macs) })),
      imported: { source: o.source, at: new Date().toISOString(), cutPoints: analyses.reduce((a, e) => a + e.cuts.length, 0), notes }
    },
    notes,
    cuts: analyses.map((a) => ({ output: a.output, tensors: a.cuts }))
  }
}

function sanitize(name: string): string {
  const s = name.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^_+|_+$/g, '')
  return s || 'layer'
}

function dtypeName(code: number): keyof typeof DTYPE_BYTES {
  // TensorProto.DataType: 1 FLOAT, 2 UINT8, 3 INT8, 6 INT32, 7 INT64, 10 FLOAT16
  return ({ 1: 'float32', 2: 'uint8', 3: 'int8', 6: 'int32', 7: 'int64', 10: 'float16' } as const)[code as 1] ?? 'float32'
}

/** A one-op layer: the paper's type where the op is one, with its attributes; `other` (with the op) otherwise. */
function single(n: NodeProto, inputShape: number[], outputShape: number[], weightDims: (t: string) => number[] | undefined): Record<string, unknown> {
  switch (n.opType) {
    case 'Conv': {
      const w = weightDims(n.input[1] ?? '')
      const kernel = attrInts(n, 'kernel_shape') ?? w?.slice(2) ?? [1, 1]
      const stride = attrInts(n, 'strides') ?? [1, 1]
      const pads = attrInts(n, 'pads')
      const group = attrInt(n, 'group') ?? 1
      return {
        type: 'conv',
        kernel: pair(kernel),
        stride: pair(stride),
        ...(pads ? { padding: pads } : {}),
        filters: outputShape[1]!,
        ...(group > 1 ? { group } : {})
      }
    }
    case 'MaxPool':
    case 'AveragePool': {
      const pads = attrInts(n, 'pads')
      return {
        type: 'pool',
        kernel: pair(attrInts(n, 'kernel_shape') ?? [1, 1]),
        stride: pair(attrInts(n, 'strides') ?? [1, 1]),
        ...(pads ? { padding: pads } : {}),
        op: n.opType === 'MaxPool' ? 'max' : 'avg'
      }
    }
    case 'GlobalAveragePool':
      return { type: 'pool', kernel: pair(inputShape.slice(2).length ? inputShape.slice(2) : [1, 1]), stride: [1, 1], op: 'avg' }
    case 'Gemm':
    case 'MatMul':
      return { type: 'fc', units: outputShape[outputShape.length - 1]! }
    case 'Relu':
      return { type: 'relu' }
    case 'LRN':
      return { type: 'lrn', size: attrInt(n, 'size'), alpha: attrFloat(n, 'alpha'), beta: attrFloat(n, 'beta'), bias: attrFloat(n, 'bias') }
    case 'Dropout':
      return { type: 'dropout' }
    case 'Flatten':
      return { type: 'flatten' }
    case 'Reshape':
      return outputShape.length === 2 ? { type: 'flatten' } : { type: 'other', op: 'Reshape' }
    case 'Softmax':
      return { type: 'softmax' }
    default:
      return { type: 'other', op: n.opType }
  }
}

function pair(v: number[]): [number, number] {
  return [v[0] ?? 1, v[1] ?? v[0] ?? 1]
}
