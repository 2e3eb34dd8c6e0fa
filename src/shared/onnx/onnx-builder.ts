/**
 * Synthetic single-layer ONNX models for benchmark campaigns (Edgent's offline profiling): one layer
 * of a given type and configuration, opset 13, with deterministic weights, built on onnx-buf. Every
 * model comes with the manifest-style layer record the latency features are computed from, so a
 * measurement maps straight onto the paper's regression variables.
 */
import { create, toBinary } from '@bufbuild/protobuf'
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  TensorProtoSchema,
  TensorProto_DataType,
  type AttributeProto,
  type NodeProto,
  type TensorProto
} from 'onnx-buf'
import { z } from 'zod'
import { UserError } from '../errors.js'
import { product, type Layer } from '../contracts/manifest.js'
import { floatValueInfo } from './onnx-slicer.js'

/** The synthetic blocks timed under the `block` key. */
export const BLOCK_KINDS = ['residual', 'inverted', 'inception'] as const

/** Element-wise activations timed under the `activation` key. */
export const ACTIVATION_OPS = ['Clip', 'HardSwish', 'Sigmoid'] as const

/**
 * Ops without a model of their own, timed for the `generic` key (input and output elements): the data
 * movement and reductions of transformers and channel shuffles (LayerNorm's ReduceMean, the
 * NCHW↔NHWC Transpose, the Slice of a channel split), and the shuffle's Reshape, for `other`.
 */
export const GENERIC_OPS = ['ReduceMean', 'Transpose', 'Slice', 'Reshape'] as const

export type SyntheticSpec =
  | { type: 'conv'; channels: number; size: number; filters: number; kernel: number; stride: number }
  | { type: 'pool'; channels: number; size: number; kernel: number; stride: number }
  | { type: 'fc'; inputs: number; outputs: number }
  | { type: 'relu' | 'lrn' | 'dropout' | 'softmax' | 'flatten'; shape: number[] }
  /** A depthwise convolution (group = channels), padding keeping the size at stride 1. */
  | { type: 'dwconv'; channels: number; size: number; kernel: number; stride: number }
  /** Batch norm, element-wise add (of the input to itself), global average pool: over an NCHW shape. */
  | { type: 'batchnorm' | 'add' | 'globalpool'; shape: number[] }
  /** `parts` copies of the input concatenated along the channels. */
  | { type: 'concat'; shape: number[]; parts: number }
  | { type: 'activation'; op: (typeof ACTIVATION_OPS)[number]; shape: number[] }
  /** ReduceMean over the last axis, Transpose to NHWC, Slice of the first half of the channels, Reshape to [1, 2, C/2, H, W]. */
  | { type: 'generic'; op: (typeof GENERIC_OPS)[number]; shape: number[] }
  /**
   * A block of several ops (stride 1, sizes kept): `residual` (3×3 conv, ReLU, 3×3 conv, + input,
   * ReLU), `inverted` (MobileNetV2: 1×1 expand ×`expand`, ReLU6, 3×3 depthwise, ReLU6, 1×1 project,
   * + input), `inception` (1×1 conv ‖ 3×3 conv + ReLU, concatenated).
   */
  | { type: 'block'; kind: (typeof BLOCK_KINDS)[number]; channels: number; size: number; expand?: number }

const dim = (max: number) => z.number().int().positive().max(max)
/** Specs arrive over MQTT: bounded so that no request can make an agent allocate without limit. */
const nchw = z
  .array(dim(4096))
  .length(4)
  .refine((s) => s[0] === 1 && s.reduce((a, b) => a * b, 1) <= 4_000_000, 'batch 1, at most 4M elements')
export const SyntheticSpecSchema: z.ZodType<SyntheticSpec> = z.union([
  z.object({ type: z.literal('dwconv'), channels: dim(1024), size: dim(256), kernel: dim(11), stride: dim(4) }),
  z.object({ type: z.enum(['batchnorm', 'add', 'globalpool']), shape: nchw }),
  z.object({ type: z.literal('concat'), shape: nchw, parts: z.number().int().min(2).max(4) }),
  z.object({ type: z.literal('activation'), op: z.enum(ACTIVATION_OPS), shape: nchw }),
  z.object({ type: z.literal('generic'), op: z.enum(GENERIC_OPS), shape: nchw.refine((s) => s[1]! % 2 === 0, 'an even channel count') }),
  z.object({ type: z.literal('block'), kind: z.enum(BLOCK_KINDS), channels: dim(256), size: dim(64), expand: z.number().int().min(1).max(6).optional() }),
  z.object({ type: z.literal('conv'), channels: dim(512), size: dim(256), filters: dim(1024), kernel: dim(11), stride: dim(4) }),
  z.object({ type: z.literal('pool'), channels: dim(1024), size: dim(256), kernel: dim(11), stride: dim(4) }),
  z.object({ type: z.literal('fc'), inputs: dim(16384), outputs: dim(8192) }),
  z.object({
    type: z.enum(['relu', 'lrn', 'dropout', 'softmax', 'flatten']),
    shape: z
      .array(dim(65536))
      .min(1)
      .max(4)
      .refine((s) => s.reduce((a, b) => a * b, 1) <= 4_000_000, 'at most 4M elements')
  })
])

export interface SyntheticModel {
  spec: SyntheticSpec
  bytes: Uint8Array
  /** The layer as a manifest record (features of the regression). */
  layer: Layer
  inputDims: number[]
}

/** Deterministic small weights (a linear congruential sequence), so every side times the same model. */
export function weights(name: string, dims: number[], seed: number): TensorProto {
  const n = product(dims)
  const data = new Float32Array(n)
  let x = seed >>> 0
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    data[i] = (x / 4294967296 - 0.5) * 0.1
  }
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: TensorProto_DataType.FLOAT, rawData: new Uint8Array(data.buffer) })
}

export const ints = (name: string, v: number[]): AttributeProto =>
  create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: v.map(BigInt) })
export const int = (name: string, v: number): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(v) })
export const float = (name: string, v: number): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: v })

function outSize(size: number, kernel: number, stride: number, pad: number): number {
  return Math.floor((size + 2 * pad - kernel) / stride) + 1
}

export function specKey(s: SyntheticSpec): string {
  return JSON.stringify(s)
}

/** The op types of today's networks, built with GraphBuilder; the layer record is what an import would derive. */
function buildModern(
  spec: Exclude<SyntheticSpec, { type: 'conv' | 'pool' | 'fc' | 'relu' | 'lrn' | 'dropout' | 'softmax' | 'flatten' | 'block' }>
): SyntheticModel {
  const b = new GraphBuilder(spec.type)
  let inputDims: number[]
  let outputDims: number[]
  let y: string
  let layer: Record<string, unknown>
  let opset = 13
  switch (spec.type) {
    case 'dwconv': {
      const pad = Math.floor(spec.kernel / 2)
      const o = outSize(spec.size, spec.kernel, spec.stride, pad)
      if (o < 1) throw new UserError(`dwconv ${JSON.stringify(spec)} has no output`)
      inputDims = [1, spec.channels, spec.size, spec.size]
      outputDims = [1, spec.channels, o, o]
      y = b.conv('x', spec.channels, spec.channels, spec.kernel, spec.stride, spec.channels)
      layer = {
        type: 'conv',
        kernel: [spec.kernel, spec.kernel],
        stride: [spec.stride, spec.stride],
        padding: [pad, pad, pad, pad],
        filters: spec.channels,
        group: spec.channels
      }
      break
    }
    case 'batchnorm':
      inputDims = [...spec.shape]
      outputDims = [...spec.shape]
      y = b.batchNorm('x', spec.shape[1]!)
      layer = { type: 'other', op: 'BatchNormalization' }
      break
    case 'add':
      inputDims = [...spec.shape]
      outputDims = [...spec.shape]
      y = b.add('x', 'x')
      layer = { type: 'other', op: 'Add' }
      break
    case 'globalpool':
      inputDims = [...spec.shape]
      outputDims = [1, spec.shape[1]!, 1, 1]
      y = b.globalAveragePool('x')
      layer = { type: 'pool', kernel: [spec.shape[2]!, spec.shape[3]!], stride: [1, 1], op: 'avg' }
      break
    case 'concat':
      inputDims = [...spec.shape]
      outputDims = [1, spec.shape[1]! * spec.parts, spec.shape[2]!, spec.shape[3]!]
      y = b.concat(Array.from({ length: spec.parts }, () => 'x'))
      layer = { type: 'other', op: 'Concat' }
      break
    case 'activation':
      inputDims = [...spec.shape]
      outputDims = [...spec.shape]
      if (spec.op === 'Clip') y = b.clip('x', 0, 6)
      else y = b.node(spec.op, ['x'])
      if (spec.op === 'HardSwish') opset = 14
      layer = { type: 'other', op: spec.op }
      break
    case 'generic': {
      const [, c, h, w] = spec.shape as [number, number, number, number]
      inputDims = [...spec.shape]
      if (spec.op === 'ReduceMean') {
        outputDims = [1, c, h, 1]
        y = b.node('ReduceMean', ['x'], [ints('axes', [-1]), int('keepdims', 1)])
      } else if (spec.op === 'Transpose') {
        outputDims = [1, h, w, c]
        y = b.node('Transpose', ['x'], [ints('perm', [0, 2, 3, 1])])
      } else if (spec.op === 'Slice') {
        outputDims = [1, c / 2, h, w]
        y = b.node('Slice', ['x', b.int64('starts', [0]), b.int64('ends', [c / 2]), b.int64('axes', [1])])
      } else {
        outputDims = [1, 2, c / 2, h, w]
        y = b.node('Reshape', ['x', b.int64('shape', outputDims)])
      }
      layer = { type: 'other', op: spec.op }
      break
    }
  }
  const record = {
    id: spec.type,
    inputShape: inputDims,
    outputShape: outputDims,
    outputBytes: product(outputDims) * 4,
    input: 'x',
    output: y,
    ...layer
  } as Layer
  return { spec, bytes: b.build('x', inputDims, [{ name: y, dims: outputDims }], opset), layer: record, inputDims }
}

/** A synthetic block, with the record an import would derive: the block and each of its ops. */
function buildBlock(spec: Extract<SyntheticSpec, { type: 'block' }>): SyntheticModel {
  const { channels: c, size } = spec
  const b = new GraphBuilder(`block-${spec.kind}`)
  const nodes: Layer[] = []
  const plane = [size, size]
  const base = (id: string, input: string, output: string, inC: number, outC: number, outPlane = plane) => ({
    id,
    inputShape: [1, inC, ...plane],
    outputShape: [1, outC, ...outPlane],
    outputBytes: 4 * outC * outPlane[0]! * outPlane[1]!,
    input,
    output
  })
  const conv = (x: string, cin: number, cout: number, k: number, group = 1): string => {
    const y = b.conv(x, cin, cout, k, 1, group)
    const pad = Math.floor(k / 2)
    nodes.push({
      ...base(y, x, y, cin, cout),
      type: 'conv',
      kernel: [k, k],
      stride: [1, 1],
      padding: [pad, pad, pad, pad],
      filters: cout,
      ...(group > 1 ? { group } : {}),
      macs: (cout * size * size * k * k * cin) / group
    } as Layer)
    return y
  }
  const relu = (x: string, ch: number): string => {
    const y = b.relu(x)
    nodes.push({ ...base(y, x, y, ch, ch), type: 'relu' } as Layer)
    return y
  }
  const clip = (x: string, ch: number): string => {
    const y = b.clip(x, 0, 6)
    nodes.push({ ...base(y, x, y, ch, ch), type: 'other', op: 'Clip' } as Layer)
    return y
  }
  const add = (x: string, skip: string, ch: number): string => {
    const y = b.add(x, skip)
    nodes.push({ ...base(y, x, y, ch, ch), type: 'other', op: 'Add' } as Layer)
    return y
  }
  let y: string
  let outC = c
  if (spec.kind === 'residual') {
    y = relu(add(conv(relu(conv('x', c, c, 3), c), c, c, 3), 'x', c), c)
  } else if (spec.kind === 'inverted') {
    const e = c * (spec.expand ?? 4)
    y = add(conv(clip(conv(clip(conv('x', c, e, 1), e), e, e, 3, e), e), e, c, 1), 'x', c)
  } else {
    const half = Math.max(1, c >> 1)
    const a = conv('x', c, half, 1)
    const r = relu(conv('x', c, half, 3), half)
    y = b.concat([a, r])
    outC = 2 * half
    nodes.push({ ...base(y, a, y, half, outC), type: 'other', op: 'Concat' } as Layer)
  }
  const ops: Record<string, number> = {}
  for (const n of nodes) {
    const op = n.type === 'conv' ? 'Conv' : n.type === 'relu' ? 'Relu' : n.type === 'other' ? n.op! : n.type
    ops[op] = (ops[op] ?? 0) + 1
  }
  const inputDims = [1, c, size, size]
  const outputDims = [1, outC, size, size]
  const record = {
    ...base(`block-${spec.kind}`, 'x', y, c, outC),
    type: 'block',
    ops,
    nodes,
    macs: nodes.reduce((a, n) => a + (n.macs ?? 0), 0)
  } as Layer
  return { spec, bytes: b.build('x', inputDims, [{ name: y, dims: outputDims }]), layer: record, inputDims }
}

export function buildSynthetic(spec: SyntheticSpec): SyntheticModel {
  switch (spec.type) {
    case 'dwconv':
    case 'batchnorm':
    case 'add':
    case 'globalpool':
    case 'concat':
    case 'activation':
    case 'generic':
      return buildModern(spec)
    case 'block':
      return buildBlock(spec)
  }
  const nodes: NodeProto[] = []
  const init: TensorProto[] = []
  let inputDims: number[]
  let outputDims: number[]
  let layer: Record<string, unknown>
  const node = (op: string, inputs: string[], attrs: AttributeProto[] = []) =>
    nodes.push(create(NodeProtoSchema, { opType: op, input: inputs, output: ['y'], name: op.toLowerCase(), attribute: attrs }))
  switch (spec.type) {
    case 'conv': {
      const pad = Math.floor(spec.kernel / 2)
      const o = outSize(spec.size, spec.kernel, spec.stride, pad)
      if (o < 1) throw new UserError(`conv ${JSON.stringify(spec)} has no output`)
      inputDims = [1, spec.channels, spec.size, spec.size]
      outputDims = [1, spec.filters, o, o]
      init.push(weights('w', [spec.filters, spec.channels, spec.kernel, spec.kernel], 1), weights('b', [spec.filters], 2))
      node(
        'Conv',
        ['x', 'w', 'b'],
        [ints('kernel_shape', [spec.kernel, spec.kernel]), ints('strides', [spec.stride, spec.stride]), ints('pads', [pad, pad, pad, pad])]
      )
      layer = { type: 'conv', kernel: [spec.kernel, spec.kernel], stride: [spec.stride, spec.stride], padding: [pad, pad], filters: spec.filters }
      break
    }
    case 'pool': {
      const o = outSize(spec.size, spec.kernel, spec.stride, 0)
      if (o < 1) throw new UserError(`pool ${JSON.stringify(spec)} has no output`)
      inputDims = [1, spec.channels, spec.size, spec.size]
      outputDims = [1, spec.channels, o, o]
      node('MaxPool', ['x'], [ints('kernel_shape', [spec.kernel, spec.kernel]), ints('strides', [spec.stride, spec.stride])])
      layer = { type: 'pool', kernel: [spec.kernel, spec.kernel], stride: [spec.stride, spec.stride], op: 'max' }
      break
    }
    case 'fc':
      inputDims = [1, spec.inputs]
      outputDims = [1, spec.outputs]
      init.push(weights('w', [spec.outputs, spec.inputs], 3), weights('b', [spec.outputs], 4))
      node('Gemm', ['x', 'w', 'b'], [int('transB', 1)])
      layer = { type: 'fc', units: spec.outputs }
      break
    case 'relu':
    case 'lrn':
    case 'dropout':
    case 'softmax':
    case 'flatten': {
      inputDims = [...spec.shape]
      outputDims = spec.type === 'flatten' ? [1, product(spec.shape.slice(1))] : [...spec.shape]
      if (spec.type === 'relu') node('Relu', ['x'])
      else if (spec.type === 'lrn') node('LRN', ['x'], [int('size', 5), float('alpha', 1e-4), float('beta', 0.75), float('bias', 2)])
      else if (spec.type === 'dropout') {
        init.push(
          create(TensorProtoSchema, { name: 'ratio', dims: [], dataType: TensorProto_DataType.FLOAT, rawData: new Uint8Array(Float32Array.of(0.5).buffer) })
        )
        node('Dropout', ['x', 'ratio'])
      } else if (spec.type === 'softmax') node('Softmax', ['x'], [int('axis', -1)])
      else node('Flatten', ['x'], [int('axis', 1)])
      layer = { type: spec.type }
      break
    }
  }
  const model = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'edgent campaign',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
    graph: create(GraphProtoSchema, {
      name: spec.type,
      node: nodes,
      initializer: init,
      input: [floatValueInfo('x', inputDims)],
      output: [floatValueInfo('y', outputDims)]
    })
  })
  const record = {
    id: spec.type,
    inputShape: inputDims,
    outputShape: outputDims,
    outputBytes: product(outputDims) * 4,
    input: 'x',
    output: 'y',
    ...layer
  } as Layer
  return { spec, bytes: toBinary(ModelProtoSchema, model), layer: record, inputDims }
}

/**
 * A small graph builder for models of any shape (chains and DAGs): each method adds one node with
 * deterministic weights and returns its output tensor's name. Test fixtures and synthetic blocks
 * are built with it; `build()` serialises the model (opset 13).
 */
export class GraphBuilder {
  private readonly nodes: NodeProto[] = []
  private readonly init: TensorProto[] = []
  private n = 0

  constructor(readonly name = 'graph') {}

  private next(op: string): string {
    return `${op.toLowerCase()}${this.n++}`
  }

  node(op: string, inputs: string[], attrs: AttributeProto[] = [], name = this.next(op)): string {
    this.nodes.push(create(NodeProtoSchema, { opType: op, input: inputs, output: [name], name, attribute: attrs }))
    return name
  }

  /** A convolution with `group` groups (group = channels: depthwise), padding keeping the size at stride 1. */
  conv(x: string, cin: number, cout: number, kernel: number, stride = 1, group = 1): string {
    const name = this.next('Conv')
    const pad = Math.floor(kernel / 2)
    this.init.push(weights(`${name}.w`, [cout, cin / group, kernel, kernel], this.n * 7 + 1), weights(`${name}.b`, [cout], this.n * 7 + 2))
    return this.node(
      'Conv',
      [x, `${name}.w`, `${name}.b`],
      [ints('kernel_shape', [kernel, kernel]), ints('strides', [stride, stride]), ints('pads', [pad, pad, pad, pad]), int('group', group)],
      name
    )
  }

  batchNorm(x: string, channels: number): string {
    const name = this.next('BatchNormalization')
    const ones = create(TensorProtoSchema, {
      name: `${name}.var`,
      dims: [BigInt(channels)],
      dataType: TensorProto_DataType.FLOAT,
      rawData: new Uint8Array(new Float32Array(channels).fill(1).buffer)
    })
    this.init.push(
      weights(`${name}.scale`, [channels], this.n * 7 + 3),
      weights(`${name}.bias`, [channels], this.n * 7 + 4),
      weights(`${name}.mean`, [channels], this.n * 7 + 5),
      ones
    )
    return this.node('BatchNormalization', [x, `${name}.scale`, `${name}.bias`, `${name}.mean`, `${name}.var`], [], name)
  }

  relu(x: string): string {
    return this.node('Relu', [x])
  }

  add(a: string, b: string): string {
    return this.node('Add', [a, b])
  }

  concat(xs: string[]): string {
    return this.node('Concat', xs, [int('axis', 1)])
  }

  maxPool(x: string, kernel: number, stride: number): string {
    return this.node('MaxPool', [x], [ints('kernel_shape', [kernel, kernel]), ints('strides', [stride, stride])])
  }

  globalAveragePool(x: string): string {
    return this.node('GlobalAveragePool', [x])
  }

  flatten(x: string): string {
    return this.node('Flatten', [x], [int('axis', 1)])
  }

  /** Clip to [min, max] (ReLU6 at 0, 6), bounds as constant initializers (opset ≥ 11). */
  clip(x: string, min: number, max: number): string {
    const name = this.next('Clip')
    const scalar = (n: string, v: number) =>
      create(TensorProtoSchema, { name: n, dims: [], dataType: TensorProto_DataType.FLOAT, rawData: new Uint8Array(Float32Array.of(v).buffer) })
    this.init.push(scalar(`${name}.min`, min), scalar(`${name}.max`, max))
    return this.node('Clip', [x, `${name}.min`, `${name}.max`], [], name)
  }

  /** A constant int64 initializer (shapes, slice bounds); returns its name. */
  int64(name: string, values: number[]): string {
    const full = `${this.next(name)}.i64`
    this.init.push(
      create(TensorProtoSchema, {
        name: full,
        dims: [BigInt(values.length)],
        dataType: TensorProto_DataType.INT64,
        rawData: new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer)
      })
    )
    return full
  }

  gemm(x: string, inputs: number, outputs: number): string {
    const name = this.next('Gemm')
    this.init.push(weights(`${name}.w`, [outputs, inputs], this.n * 7 + 6), weights(`${name}.b`, [outputs], this.n * 7 + 7))
    return this.node('Gemm', [x, `${name}.w`, `${name}.b`], [int('transB', 1)], name)
  }

  /** The model: one float32 input of `inputDims`, and `outputs` (graph outputs, in order, with their dims). */
  build(input: string, inputDims: number[], outputs: { name: string; dims: number[] }[], opset = 13): Uint8Array {
    const model = create(ModelProtoSchema, {
      irVersion: 8n,
      producerName: 'edgent graph builder',
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })],
      graph: create(GraphProtoSchema, {
        name: this.name,
        node: this.nodes,
        initializer: this.init,
        input: [floatValueInfo(input, inputDims)],
        output: outputs.map((o) => floatValueInfo(o.name, o.dims))
      })
    })
    return toBinary(ModelProtoSchema, model)
  }
}
