/**
 * The model contract (DESIGN.md, "The model contract"): one ONNX file with one graph output per exit,
 * and a manifest naming every layer of every exit's path by the tensors at its boundaries, so that any
 * contiguous range of an exit's layers can be cut out as its own graph.
 */
import { z } from 'zod'
import { UserError, describeIssues } from '../errors.js'
import { LOSSY_CODECS } from '../algorithms/codecs.js'

export const LAYER_TYPES = ['conv', 'relu', 'pool', 'lrn', 'dropout', 'fc', 'flatten', 'softmax', 'other', 'block'] as const
export type LayerType = (typeof LAYER_TYPES)[number]

export const DTYPE_BYTES = { float32: 4, uint8: 1, int8: 1, float16: 2, int32: 4, int64: 8 } as const
export type Dtype = keyof typeof DTYPE_BYTES

const positiveInt = z.number().int().positive()
const shape = z.array(positiveInt).min(1)
const pair = z.array(positiveInt).length(2)
const tensorName = z.string().min(1)

const layerBase = {
  id: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected letters, digits, "_", "." or "-"'),
  inputShape: shape,
  outputShape: shape,
  outputBytes: positiveInt,
  /** Name of the tensor this layer reads. */
  input: tensorName,
  /** Name of the tensor this layer writes. */
  output: tensorName,
  /** Multiply-accumulates of the layer (imported models; computed from the attributes otherwise). */
  macs: z.number().int().nonnegative().optional(),
  /** Bytes of the weights the layer reads (imported models). */
  paramBytes: z.number().int().nonnegative().optional()
}

const SINGLE_LAYER_SCHEMAS = [
  z.object({
    ...layerBase,
    type: z.literal('conv'),
    kernel: pair,
    stride: pair,
    padding: z.array(z.number().int().nonnegative()).optional(),
    filters: positiveInt,
    /** Groups (channels for a depthwise convolution). */
    group: positiveInt.optional()
  }),
  z.object({
    ...layerBase,
    type: z.literal('pool'),
    kernel: pair,
    stride: pair,
    padding: z.array(z.number().int().nonnegative()).optional(),
    op: z.enum(['max', 'avg']).default('max')
  }),
  z.object({ ...layerBase, type: z.literal('fc'), units: positiveInt }),
  z.object({
    ...layerBase,
    type: z.literal('lrn'),
    size: positiveInt.optional(),
    alpha: z.number().optional(),
    beta: z.number().optional(),
    bias: z.number().optional()
  }),
  z.object({ ...layerBase, type: z.literal('dropout'), ratio: z.number().min(0).max(1).optional() }),
  z.object({ ...layerBase, type: z.literal('relu') }),
  z.object({ ...layerBase, type: z.literal('flatten') }),
  z.object({ ...layerBase, type: z.literal('softmax') }),
  z.object({ ...layerBase, type: z.literal('other'), op: z.string().optional() })
] as const

/** A layer of one op (what a block is made of). */
export const SingleLayerSchema = z.discriminatedUnion('type', SINGLE_LAYER_SCHEMAS)
export type SingleLayer = z.infer<typeof SingleLayerSchema>

export const LayerSchema = z.discriminatedUnion('type', [
  ...SINGLE_LAYER_SCHEMAS,
  /**
   * Several ops between two cut points of a DAG (a residual or inception block): the op mix, and
   * (imported models) each op as a layer record of its own, so that a block can be predicted as the
   * sum over its ops.
   */
  z.object({ ...layerBase, type: z.literal('block'), ops: z.record(z.string(), positiveInt), nodes: z.array(SingleLayerSchema).max(4096).optional() })
])
export type Layer = z.infer<typeof LayerSchema>

export const ExitSchema = z.object({
  exit: positiveInt,
  layers: z.array(z.string()).min(1),
  /** Top-1 accuracy in [0, 1], measured on the full test set (or supplied by the user, see accuracySource). */
  accuracy: z.number().min(0).max(1),
  testSamples: positiveInt.optional(),
  /** How the accuracy is known: measured by this project on `testSamples` images (default), or supplied by the user. */
  accuracySource: z.enum(['measured', 'supplied']).default('measured'),
  output: tensorName
})
export type Exit = z.infer<typeof ExitSchema>

export const ManifestSchema = z
  .object({
    schema: z.literal(1).default(1),
    id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'expected a lowercase id of [a-z0-9-]'),
    name: z.string().optional(),
    onnx: z.string().min(1),
    /** Size of the ONNX file; the feature of the "model loading" regression. */
    onnxBytes: positiveInt.optional(),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional(),
    input: z.object({
      name: tensorName,
      shape,
      dtype: z.enum(Object.keys(DTYPE_BYTES) as [Dtype, ...Dtype[]])
    }),
    preprocessing: z
      .object({
        from: z.literal('uint8'),
        layout: z.enum(['NCHW', 'NHWC']),
        scale: z.number(),
        mean: z.array(z.number()).min(1),
        std: z.array(z.number().positive()).min(1)
      })
      .loose()
      .optional(),
    classes: z.array(z.string()).min(2),
    layers: z.array(LayerSchema).min(1),
    exits: z.array(ExitSchema).min(1),
    samples: z.object({ images: z.string(), labels: z.string(), count: positiveInt }).loose().optional(),
    /**
     * Top-1 accuracy of every exit with its activation sent under each lossy codec, per deviceLayers
     * 0..N−1, measured by `edgent model verify --codecs` over `samples` labelled samples (f32 and u8 are exact).
     */
    codecAccuracy: z
      .object({
        samples: positiveInt,
        source: z.string(),
        exits: z.array(
          z.object({
            exit: z.number().int().positive(),
            /** The exit's accuracy on the same samples with nothing lossy (the baseline of every drop); absent in files measured before it was kept. */
            f32: z.number().min(0).max(1).optional(),
            byCodec: z.partialRecord(z.enum(LOSSY_CODECS), z.array(z.number().min(0).max(1)))
          })
        )
      })
      .optional(),
    training: z.record(z.string(), z.unknown()).optional(),
    /**
     * Confidence exits (`edgent model policies`): a temperature per exit, the confidence measure, and
     * the Pareto policies — a threshold per exit (null: never leave there; the last always answers) —
     * each with where frames left and its accuracy on held-out frames.
     */
    confidence: z
      .object({
        measure: z.enum(['max-softmax', 'entropy']),
        temperatures: z.array(z.number().positive()).min(1),
        source: z.string(),
        fitSamples: positiveInt,
        heldOutSamples: positiveInt,
        /** Each exit's accuracy alone on the same held-out frames (what a policy's accuracy is compared with); absent in files measured before it was kept. */
        exitAccuracy: z.array(z.number().min(0).max(1)).optional(),
        policies: z
          .array(
            z.object({
              thresholds: z.array(z.number().min(0).max(1).nullable()),
              leave: z.array(z.number().min(0).max(1)),
              /** On the held-out frames. */
              accuracy: z.number().min(0).max(1),
              fitAccuracy: z.number().min(0).max(1),
              /** Expected multiply-accumulates per frame. */
              macs: z.number().nonnegative()
            })
          )
          .max(256)
      })
      .optional()
  })
  .loose()
  .superRefine((m, ctx) => {
    const byId = new Map<string, Layer>()
    m.layers.forEach((layer, i) => {
      if (byId.has(layer.id)) ctx.addIssue({ code: 'custom', path: ['layers', i, 'id'], message: `duplicate layer id "${layer.id}"` })
      byId.set(layer.id, layer)
      const elements = product(layer.outputShape)
      const expected = elements * DTYPE_BYTES.float32
      if (layer.outputBytes !== expected) {
        ctx.addIssue({
          code: 'custom',
          path: ['layers', i, 'outputBytes'],
          message: `layer "${layer.id}": outputBytes ${layer.outputBytes} does not match outputShape [${layer.outputShape.join(', ')}] (expected ${expected} for float32)`
        })
      }
    })
    const seenExits = new Set<number>()
    m.exits.forEach((exit, e) => {
      if (seenExits.has(exit.exit)) ctx.addIssue({ code: 'custom', path: ['exits', e, 'exit'], message: `duplicate exit number ${exit.exit}` })
      seenExits.add(exit.exit)
      let tensor = m.input.name
      let shapeIn: readonly number[] = m.input.shape
      exit.layers.forEach((id, j) => {
        const layer = byId.get(id)
        if (!layer) {
          ctx.addIssue({ code: 'custom', path: ['exits', e, 'layers', j], message: `unknown layer id "${id}"` })
          return
        }
        if (layer.input !== tensor) {
          ctx.addIssue({
            code: 'custom',
            path: ['exits', e, 'layers', j],
            message: `layer "${id}" reads tensor "${layer.input}" but the previous layer of exit ${exit.exit} writes "${tensor}"`
          })
        }
        if (!sameShape(layer.inputShape, shapeIn)) {
          ctx.addIssue({
            code: 'custom',
            path: ['exits', e, 'layers', j],
            message: `layer "${id}" expects input shape [${layer.inputShape.join(', ')}] but receives [${shapeIn.join(', ')}]`
          })
        }
        tensor = layer.output
        shapeIn = layer.outputShape
      })
      if (exit.layers.every((id) => byId.has(id)) && tensor !== exit.output) {
        ctx.addIssue({
          code: 'custom',
          path: ['exits', e, 'output'],
          message: `exit ${exit.exit} names output "${exit.output}" but its last layer writes "${tensor}"`
        })
      }
    })
    const numbers = [...seenExits].sort((a, b) => a - b)
    if (numbers.some((n, i) => n !== i + 1)) {
      ctx.addIssue({ code: 'custom', path: ['exits'], message: `exit numbers must be 1..${numbers.length} (1 = earliest), got ${numbers.join(', ')}` })
    }
  })

export type Manifest = z.infer<typeof ManifestSchema>

/** Validates parsed JSON as a manifest; `source` (a file name) starts the error message. */
export function parseManifest(json: unknown, source = 'manifest'): Manifest {
  const result = ManifestSchema.safeParse(json)
  if (!result.success) throw new UserError(describeIssues(source, result.error.issues))
  const manifest = result.data
  manifest.exits.sort((a, b) => a.exit - b.exit)
  return manifest
}

export function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1)
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i])
}

export function inputBytes(m: Manifest): number {
  return product(m.input.shape) * DTYPE_BYTES[m.input.dtype]
}

/** The exit with number `exit`, or a UserError naming the exits that exist. */
export function getExit(m: Manifest, exit: number): Exit {
  const found = m.exits.find((e) => e.exit === exit)
  if (!found) throw new UserError(`model ${m.id} has no exit ${exit} (exits: ${m.exits.map((e) => e.exit).join(', ')})`)
  return found
}

/** The ordered layers of an exit's path (L1..LN). */
export function exitPath(m: Manifest, exit: number): Layer[] {
  const byId = new Map(m.layers.map((l) => [l.id, l]))
  return getExit(m, exit).layers.map((id) => byId.get(id)!)
}

/** The shape of the tensor at the cut after `deviceLayers` layers of an exit's `path`: the input's for 0, else that layer's output. */
export function cutShape(m: Manifest, path: readonly Layer[], deviceLayers: number): readonly number[] {
  return deviceLayers === 0 ? m.input.shape : path[deviceLayers - 1]!.outputShape
}

/**
 * Bytes that cross the link for a partition: the input as sent for deviceLayers = 0, else the
 * output of the last device layer. Device-only (deviceLayers = N) uploads nothing.
 */
export function uploadBytes(m: Manifest, exit: number, deviceLayers: number): number {
  const path = exitPath(m, exit)
  if (deviceLayers < 0 || deviceLayers > path.length || !Number.isInteger(deviceLayers)) {
    throw new UserError(`deviceLayers ${deviceLayers} is out of range 0..${path.length} for exit ${exit}`)
  }
  if (deviceLayers === path.length) return 0
  if (deviceLayers === 0) return inputBytes(m)
  return path[deviceLayers - 1]!.outputBytes
}

/** An exit's last layer: its output is the exit's scores. */
export function exitOutput(m: Manifest, exit: number): Layer {
  const path = exitPath(m, exit)
  return path[path.length - 1]!
}

/** Bytes of an exit's result (its output tensor). */
export function resultBytes(m: Manifest, exit: number): number {
  return exitOutput(m, exit).outputBytes
}

/** Multiply-accumulates of one layer (conv and fc; 0 for the others), for throughput figures. */
export function layerMacs(layer: Layer): number {
  if (layer.macs !== undefined) return layer.macs
  if (layer.type === 'conv') {
    const [, cin] = layer.inputShape as [number, number]
    const [kh, kw] = layer.kernel as [number, number]
    return (product(layer.outputShape) * cin * kh * kw) / (layer.group ?? 1)
  }
  if (layer.type === 'fc') return product(layer.inputShape) * layer.units
  return 0
}
