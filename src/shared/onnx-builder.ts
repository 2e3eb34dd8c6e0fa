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
import { UserError } from './errors.js'
import { product, type Layer } from './manifest.js'
import { floatValueInfo } from './onnx-slicer.js'

export type SyntheticSpec =
  | { type: 'conv'; channels: number; size: number; filters: number; kernel: number; stride: number }
  | { type: 'pool'; channels: number; size: number; kernel: number; stride: number }
  | { type: 'fc'; inputs: number; outputs: number }
  | { type: 'relu' | 'lrn' | 'dropout' | 'softmax' | 'flatten'; shape: number[] }

const dim = (max: number) => z.number().int().positive().max(max)
/** Specs arrive over MQTT: bounded so that no request can make an agent allocate without limit. */
export const SyntheticSpecSchema: z.ZodType<SyntheticSpec> = z.union([
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
function weights(name: string, dims: number[], seed: number): TensorProto {
  const n = product(dims)
  const data = new Float32Array(n)
  let x = seed >>> 0
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    data[i] = (x / 4294967296 - 0.5) * 0.1
  }
  return create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: TensorProto_DataType.FLOAT, rawData: new Uint8Array(data.buffer) })
}

const ints = (name: string, v: number[]): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: v.map(BigInt) })
const int = (name: string, v: number): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(v) })
const float = (name: string, v: number): AttributeProto => create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: v })

function outSize(size: number, kernel: number, stride: number, pad: number): number {
  return Math.floor((size + 2 * pad - kernel) / stride) + 1
}

export function specKey(s: SyntheticSpec): string {
  return JSON.stringify(s)
}

export function buildSynthetic(spec: SyntheticSpec): SyntheticModel {
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
