/**
 * Latency prediction, after Edgent's offline stage (Li, Zhou, Chen, MECOMM 2018, Table 1): one linear
 * regression per (side, layer type) on the paper's variables. Sizes count elements (batch included,
 * batch = 1); model size counts bytes; latencies are milliseconds.
 */
import { Matrix, solve } from 'ml-matrix'
import { z } from 'zod'
import { UserError, describeIssues } from '../errors.js'
import { product, type Layer } from '../contracts/manifest.js'
import { ForestSchema, forestPredict } from './forest.js'
import { REGRESSORS, type Regressor } from './regressors.js'
export { REGRESSORS, REGRESSOR_TEXT, type Regressor } from './regressors.js'

export const SIDES = ['device', 'edge'] as const
export type Side = (typeof SIDES)[number]

/**
 * Regression keys: the layer types of the paper's table, model loading, the rest; and the op types of
 * today's networks (grouped and depthwise convolution, batch norm, element-wise add/mul, concat,
 * global pooling, the other activations), which the `layers` grid times too.
 */
export const REGRESSION_KEYS = [
  'conv',
  'relu',
  'pool',
  'lrn',
  'dropout',
  'fc',
  'modelLoad',
  'flatten',
  'softmax',
  'other',
  'dwconv',
  'batchnorm',
  'add',
  'concat',
  'globalpool',
  'activation',
  'generic',
  'block'
] as const
export type RegressionKey = (typeof REGRESSION_KEYS)[number]

/** The independent variables of each regression, in coefficient order (the paper's Table 1). */
export const FEATURES: Record<RegressionKey, readonly string[]> = {
  conv: ['inputElements', 'kernelOverStrideSquaredTimesFilters'],
  relu: ['inputElements'],
  pool: ['inputElements', 'outputElements'],
  lrn: ['inputElements'],
  dropout: ['inputElements'],
  fc: ['inputElements', 'outputElements'],
  modelLoad: ['modelBytes'],
  // Not in the paper: a constant plus input size, as for the cheap element-wise layers.
  flatten: ['inputElements'],
  softmax: ['inputElements'],
  other: ['inputElements'],
  // Not in the paper (2018 networks had none of these), in its spirit: sizes of what is read and written.
  dwconv: ['inputElements', 'outputElements'],
  batchnorm: ['inputElements'],
  add: ['inputElements'],
  concat: ['outputElements'],
  globalpool: ['inputElements'],
  activation: ['inputElements'],
  /** Any op without a model of its own (ReduceMean, Transpose, Slice, Gather…): what it reads and writes. */
  generic: ['inputElements', 'outputElements'],
  /** A whole block (several ops between two cut points), as one term. */
  block: ['inputElements', 'outputElements']
}

/**
 * The regression used when a profile has none for a key: profiles fitted before the key existed (and
 * the paper's) still predict every layer — a depthwise conv as a conv, a global pool as a pool,
 * batch norm, add, concat and the other activations, like flatten and softmax, as `other`.
 */
export const FALLBACK: Partial<Record<RegressionKey, RegressionKey>> = {
  flatten: 'other',
  softmax: 'other',
  dwconv: 'conv',
  globalpool: 'pool',
  batchnorm: 'other',
  add: 'other',
  concat: 'other',
  activation: 'other',
  generic: 'other',
  block: 'other'
}

/**
 * What a campaign fits: the paper's variables, plus multiply-accumulates for conv and fc. A
 * convolution's cost is a product (output elements × kernel area × input channels) that a sum of
 * the paper's two variables cannot express; measured here, adding it (with relative-error weights,
 * `fitRegression`) took held-out conv errors from over 100 % to 11–23 % (README).
 */
export const FIT_FEATURES: Record<RegressionKey, readonly string[]> = {
  ...FEATURES,
  conv: [...FEATURES.conv, 'macs'],
  fc: [...FEATURES.fc, 'macs'],
  dwconv: [...FEATURES.dwconv, 'macs'],
  block: [...FEATURES.block, 'macs']
}

/** The value of one named variable for a layer (elements, or multiply-accumulates for `macs`). */
export function featureValue(layer: Layer, name: string): number {
  const inputElements = product(layer.inputShape)
  const outputElements = product(layer.outputShape)
  switch (name) {
    case 'inputElements':
      return inputElements
    case 'outputElements':
      return outputElements
    case 'kernelOverStrideSquaredTimesFilters': {
      if (layer.type !== 'conv') break
      // (filter size / stride)^2 x filters; with a rectangular kernel (kh/sh)(kw/sw) x filters.
      const [kh, kw] = layer.kernel as [number, number]
      const [sh, sw] = layer.stride as [number, number]
      return (kh / sh) * (kw / sw) * layer.filters
    }
    case 'macs': {
      if (layer.macs !== undefined) return layer.macs
      if (layer.type === 'conv') {
        const [kh, kw] = layer.kernel as [number, number]
        return (outputElements * kh * kw * (layer.inputShape[1] ?? 1)) / (layer.group ?? 1)
      }
      if (layer.type === 'fc') return inputElements * outputElements
      if (layer.type === 'block' && layer.nodes) return layer.nodes.reduce((a, n) => a + (n.macs ?? 0), 0)
      break
    }
  }
  throw new UserError(`layer ${layer.id} (${layer.type}) has no variable "${name}"`)
}

export function featureValues(layer: Layer, names: readonly string[]): number[] {
  return names.map((n) => featureValue(layer, n))
}

/** The paper's variables for one layer, in FEATURES order. */
export function layerFeatures(layer: Layer): number[] {
  return featureValues(layer, FEATURES[regressionKeyOf(layer)])
}

/** The variables a campaign measures and fits for one layer, in FIT_FEATURES order. */
export function fitFeatures(layer: Layer): number[] {
  return featureValues(layer, FIT_FEATURES[regressionKeyOf(layer)])
}

/** Ops of an imported `other` layer with a regression of their own. */
const OP_KEYS: Record<string, RegressionKey> = {
  BatchNormalization: 'batchnorm',
  Add: 'add',
  Sum: 'add',
  Mul: 'add',
  Sub: 'add',
  Div: 'add',
  Pow: 'add',
  Max: 'add',
  Min: 'add',
  Concat: 'concat',
  Clip: 'activation',
  HardSwish: 'activation',
  HardSigmoid: 'activation',
  Sigmoid: 'activation',
  Tanh: 'activation',
  LeakyRelu: 'activation',
  PRelu: 'activation',
  Relu6: 'activation',
  Sqrt: 'activation',
  Erf: 'activation',
  Exp: 'activation',
  Log: 'activation',
  Neg: 'activation',
  Abs: 'activation',
  Reciprocal: 'activation',
  Gelu: 'activation',
  Softplus: 'activation',
  Elu: 'activation',
  Selu: 'activation'
}

/** Ops typed `other` that stay under the `other` key (what profiles have always priced them with). */
const OTHER_OPS = new Set(['Reshape', 'Identity', 'Squeeze', 'Unsqueeze', 'Shape', 'Expand'])

/**
 * The regression a layer is predicted with: its type's; a grouped convolution is `dwconv`, a pool to
 * 1×1 over a larger input `globalpool`, an imported op with a key of its own that key (OP_KEYS); a
 * block (several ops) is `block` (see predictLayerMs for how a block is predicted).
 */
export function regressionKeyOf(layer: Layer): RegressionKey {
  switch (layer.type) {
    case 'block':
      return 'block'
    case 'conv':
      return (layer.group ?? 1) > 1 ? 'dwconv' : 'conv'
    case 'pool': {
      const out = layer.outputShape.slice(2)
      const inp = layer.inputShape.slice(2)
      return out.length && out.every((d) => d === 1) && inp.some((d) => d > 1) ? 'globalpool' : 'pool'
    }
    case 'other':
      if (!layer.op || OTHER_OPS.has(layer.op)) return 'other'
      return OP_KEYS[layer.op] ?? 'generic'
    default:
      return layer.type
  }
}

const RegressionSchema = z
  .object({
    /** Variable names (default: the paper's, FEATURES); as many as `coefficients`. */
    features: z.array(z.string()).optional(),
    coefficients: z.array(z.number().finite()),
    intercept: z.number().finite(),
    n: z.number().int().nonnegative().optional(),
    r2: z.number().nullable().optional(),
    mape: z.number().nullable().optional(),
    heldOut: z.record(z.string(), z.unknown()).optional(),
    note: z.string().optional(),
    /** `block` only: predict a block as the sum over its ops instead of this term (the held-out error favoured the sum). */
    preferSum: z.boolean().optional(),
    /** `block` only: the held-out figures of the sum over ops, beside `heldOut` (this term's). */
    sumHeldOut: z.record(z.string(), z.unknown()).optional(),
    /** A tree ensemble fitted on the same points (forest.ts), used when the profile's `regressor` is `forest`. */
    forest: ForestSchema.optional(),
    /**
     * The paper's variables alone, fitted on the same points (when the campaign's form has more), used
     * when the profile's `regressor` is `paper`.
     */
    paperForm: z
      .object({
        features: z.array(z.string()),
        coefficients: z.array(z.number().finite()),
        intercept: z.number().finite(),
        heldOut: z.object({ n: z.number().int(), mape: z.number().nullable() }).loose().optional()
      })
      .loose()
      .optional()
  })
  .loose()
export type Regression = z.infer<typeof RegressionSchema>

const SideSchema = z.partialRecord(z.enum(REGRESSION_KEYS), RegressionSchema)

/** The regressors a profile has (linear always; the others where some key carries them). */
export function regressorsOf(p: { device: Record<string, unknown>; edge: Record<string, unknown> }): Regressor[] {
  const has = (field: string) => SIDES.some((side) => Object.values(p[side]).some((reg) => !!reg && typeof reg === 'object' && field in reg))
  return REGRESSORS.filter((r) => r === 'linear' || has(r === 'paper' ? 'paperForm' : 'forest'))
}

/**
 * A side's segment as a plan runs it: fixedMs + scale × composed prediction, plus (when the link
 * stage's probes measured them) perInputElementMs × the elements the segment receives (an edge
 * segment's input arrives fresh from the network: 0.15–0.23 ms for a 25,088-element activation that
 * the composed layers did not predict), perOutputElementMs × the elements it hands on (a device
 * segment ending in that activation ran 2.5–2.9× its prediction) and perIdleMs × the idle before it (an edge segment waits the
 * device segment: its caches cool meanwhile and, with the emulated device on the same machine, the
 * device's run evicts them).
 */
export const SegmentTermsSchema = z
  .object({
    fixedMs: z.number().finite(),
    scale: z.number().positive(),
    perInputElementMs: z.number().nonnegative().optional(),
    perOutputElementMs: z.number().nonnegative().optional(),
    perIdleMs: z.number().nonnegative().optional(),
    /** A device segment's extra when its plan sends (its worker waited out the plan's remote part before it, cache-cold). */
    sendingMs: z.number().nonnegative().optional()
  })
  .loose()
export type SegmentTerms = z.infer<typeof SegmentTermsSchema>

/** A segment's time as a plan runs it under a side's terms (its composed prediction as is without them). */
export function segmentTermsMs(t: SegmentTerms | undefined, composedMs: number, ctx: SegmentContext): number {
  if (!t) return composedMs
  return Math.max(
    0,
    t.fixedMs +
      t.scale * composedMs +
      (t.perInputElementMs ?? 0) * ctx.inputElements +
      (t.perOutputElementMs ?? 0) * ctx.outputElements +
      (t.perIdleMs ?? 0) * ctx.idleMs +
      (ctx.sends ? (t.sendingMs ?? 0) : 0)
  )
}

/**
 * What a segment's terms read besides its composed prediction: the elements it receives and hands
 * on, the idle before it, and whether its plan sends something (a device segment of a split or
 * edge-only plan, not of a device-only one; absent: false).
 */
export interface SegmentContext {
  inputElements: number
  outputElements: number
  idleMs: number
  sends?: boolean
}

export const CalibrationProfileSchema = z
  .object({
    format: z.literal('edgent-calibration'),
    schema: z.literal(1),
    id: z.string().min(1),
    name: z.string().optional(),
    createdAt: z.string().optional(),
    units: z
      .object({ latency: z.literal('ms'), size: z.literal('elements'), modelSize: z.literal('bytes') })
      .default({ latency: 'ms', size: 'elements', modelSize: 'bytes' }),
    device: SideSchema,
    edge: SideSchema,
    /** Fixed per-inference costs outside the layers (messaging, serialisation), milliseconds. */
    overheadMs: z.number().nonnegative().default(0),
    /**
     * How layers add up into a segment. `sum` (the paper's, and profiles before it): a segment costs
     * the sum of its layers. `fused`: one session run per segment (see junctionMs) — what the
     * runtime executes.
     */
    composition: z.enum(['sum', 'fused']).default('sum'),
    /**
     * Which regressor predicts a layer (regressors.ts): `linear` (the campaign's variables), `paper`
     * (the paper's variables alone) or `forest` (the tree ensembles), each where a key has it, the
     * linear fit elsewhere.
     * `regressorChosenBy` says who chose: a plans campaign (by its error on the real plans) or the user.
     */
    regressor: z.enum(REGRESSORS).default('linear'),
    regressorChosenBy: z.string().optional(),
    /** Per side: the grid's held-out MAPE pooled over every held-out configuration, for each regressor (fit.ts). */
    gridHeldOut: z
      .partialRecord(
        z.enum(SIDES),
        z.object({ linear: z.number().nullable(), paper: z.number().nullable().optional(), forest: z.number().nullable(), n: z.number().int() }).loose()
      )
      .optional(),
    /**
     * `fused` composition: what each junction between two layers of one segment takes back, per side
     * (fitted on the grid's multi-op blocks: their measured time against the sum of their ops); when
     * absent, one run's fixed cost and the tensor's copies as a single-Dropout model times them.
     */
    junctions: z.partialRecord(z.enum(SIDES), z.object({ fixedMs: z.number().finite(), perElementMs: z.number().finite() }).loose()).optional(),
    /**
     * Messaging of a plan that sends something (fitted by a layers campaign's link stage): a fixed
     * cost plus a cost per byte sent on top of the link's serialisation time [plus a cost per ms of
     * the device segment before the send], milliseconds.
     */
    messaging: z.object({ fixedMs: z.number().nonnegative(), perByteMs: z.number().nonnegative(), perIdleMs: z.number().nonnegative().optional() }).optional(),
    /**
     * A segment as a plan runs it (once per inference, between messaging and the other side's work)
     * against the composed prediction, per side: fixedMs + scale × prediction (fitted by the link
     * stage's probe plans). Absent: the prediction as composed.
     */
    segments: z.partialRecord(z.enum(SIDES), SegmentTermsSchema).optional(),
    source: z.record(z.string(), z.unknown()).optional()
  })
  .loose()
  .superRefine((p, ctx) => {
    for (const side of SIDES) {
      for (const [key, reg] of Object.entries(p[side])) {
        if (!reg) continue
        const k = key as RegressionKey
        const names = reg.features ?? FEATURES[k]
        const unknown = names.filter((n) => !FIT_FEATURES[k].includes(n))
        if (unknown.length) {
          ctx.addIssue({
            code: 'custom',
            path: [side, key, 'features'],
            message: `${side} ${key}: unknown variable${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (known: ${FIT_FEATURES[k].join(', ')})`
          })
        } else if (reg.coefficients.length !== names.length) {
          ctx.addIssue({
            code: 'custom',
            path: [side, key, 'coefficients'],
            message: `${side} ${key} needs ${names.length} coefficient${names.length > 1 ? 's' : ''} (${names.join(', ')}), got ${reg.coefficients.length}`
          })
        }
      }
    }
  })
export type CalibrationProfile = z.infer<typeof CalibrationProfileSchema>

export function parseProfile(json: unknown, source = 'profile'): CalibrationProfile {
  const result = CalibrationProfileSchema.safeParse(json)
  if (!result.success) throw new UserError(describeIssues(source, result.error.issues))
  return result.data
}

const printedNote = 'as printed in Li, Zhou, Chen, MECOMM 2018, in the column the slide gives it'
const swappedNote = "Li, Zhou, Chen, MECOMM 2018: the slide's other column (see PAPER_2018)"
const freeNote = 'not in the paper: assumed free'

/** The paper's two columns of coefficients, as the slide prints them (device column first). */
const PRINTED = {
  left: {
    conv: { coefficients: [6.03e-5, 1.24e-4], intercept: 1.89e-1 },
    relu: { coefficients: [5.6e-6], intercept: 5.69e-2 },
    pool: { coefficients: [1.63e-5, 4.07e-6], intercept: 2.11e-1 },
    lrn: { coefficients: [6.59e-5], intercept: 7.8e-2 },
    dropout: { coefficients: [5.23e-6], intercept: 4.64e-3 },
    fc: { coefficients: [1.07e-4, -1.83e-4], intercept: 0.164 },
    modelLoad: { coefficients: [1.33e-6], intercept: 2.182 }
  },
  right: {
    conv: { coefficients: [6.13e-3, 2.67e-2], intercept: -9.909 },
    relu: { coefficients: [1.5e-5], intercept: 4.88e-1 },
    pool: { coefficients: [1.33e-4, 3.31e-5], intercept: 1.657 },
    lrn: { coefficients: [5.19e-4], intercept: 5.89e-1 },
    dropout: { coefficients: [2.34e-6], intercept: 0.0525 },
    fc: { coefficients: [9.18e-4, 3.99e-3], intercept: 1.169 },
    modelLoad: { coefficients: [4.49e-6], intercept: 842.136 }
  }
} as const

const side = (column: (typeof PRINTED)['left' | 'right'], note: string) => ({
  ...Object.fromEntries(Object.entries(column).map(([k, r]) => [k, { coefficients: [...r.coefficients], intercept: r.intercept, note }])),
  other: { coefficients: [0], intercept: 0, note: freeNote }
})

/** A built-in profile of the paper's coefficients, one printed column per side. */
const paperProfile = (id: string, name: string, device: keyof typeof PRINTED, edge: keyof typeof PRINTED, note: string): CalibrationProfile =>
  Object.freeze({
    format: 'edgent-calibration',
    schema: 1,
    id,
    name,
    units: { latency: 'ms', size: 'elements', modelSize: 'bytes' },
    overheadMs: 0,
    composition: 'sum',
    device: side(PRINTED[device], note),
    edge: side(PRINTED[edge], note)
  }) as CalibrationProfile

/**
 * The paper's coefficients in the physically consistent order, the default (`paper-2018`). Their y
 * is milliseconds. As printed, the slide's device column makes a Raspberry Pi run the shipped model's
 * final exit in 7.4 ms while the desktop takes 409.9 ms, and load a model in 2 ms against the
 * desktop's 842 ms (README, from `edgent plan`); swapped, the edge is the faster side for every layer.
 * Layer types the paper does not list are assumed free.
 */
export const PAPER_2018: CalibrationProfile = paperProfile(
  'paper-2018',
  "Edgent paper (MECOMM 2018) coefficients, the slide's device and edge columns swapped into the physically consistent order",
  'right',
  'left',
  swappedNote
)

/** The coefficients exactly as the slide prints them, its device column as the device (kept for comparison). */
export const PAPER_2018_AS_PRINTED: CalibrationProfile = paperProfile(
  'paper-2018-as-printed',
  'Edgent paper (MECOMM 2018) coefficients as printed (device and edge columns as the slide gives them)',
  'left',
  'right',
  printedNote
)

export const BUILTIN_PROFILES: Readonly<Record<string, CalibrationProfile>> = {
  'paper-2018': PAPER_2018,
  'paper-2018-as-printed': PAPER_2018_AS_PRINTED
}

/**
 * The key whose regression a profile uses for `key`: its own, else the first of its fallbacks
 * (FALLBACK, followed on) that the profile has, else undefined. A profile fitted before `other` was
 * timed (the grid's Reshape) prices `other` and `generic` as an element-wise pass (`add`).
 */
function keyIn(profile: CalibrationProfile, side: Side, key: RegressionKey): RegressionKey | undefined {
  const table = profile[side]
  const seen = new Set<RegressionKey>()
  for (let k: RegressionKey | undefined = key; k && !seen.has(k); k = k === 'other' ? 'add' : FALLBACK[k]) {
    if (table[k]) return k
    seen.add(k)
  }
  return undefined
}

/** The regression a profile uses for a key (or its fallback, FALLBACK). */
export function regressionFor(profile: CalibrationProfile, side: Side, key: RegressionKey): Regression {
  const k = keyIn(profile, side, key)
  if (!k) {
    const fallback = FALLBACK[key] ? ` (or "${FALLBACK[key]}")` : ''
    throw new UserError(`profile ${profile.id} has no ${side} regression for layer type "${key}"${fallback}`)
  }
  return profile[side][k]!
}

/**
 * y = intercept + sum(c_i x_i), in milliseconds, clamped at 0: a fitted line can go negative for
 * inputs smaller than any it was fitted on (the paper's edge conv line has intercept -9.909 ms).
 */
export function evaluateRegression(reg: Regression, x: readonly number[]): number {
  let y = reg.intercept
  for (let i = 0; i < reg.coefficients.length; i++) y += reg.coefficients[i]! * x[i]!
  return Math.max(y, 0)
}

/**
 * A layer's predicted time. A block whose ops are known is the sum over its ops unless the profile
 * has a block term that predicted held-out blocks better (`preferSum` false); a block term, else
 * `other`, otherwise.
 */
export function predictLayerMs(profile: CalibrationProfile, side: Side, layer: Layer): number {
  if (layer.type === 'block' && layer.nodes?.length) {
    const term = profile[side].block
    if (!term || term.preferSum) return predictSumOfOps(profile, side, layer.nodes)
  }
  const key = regressionKeyOf(layer)
  const reg = regressionFor(profile, side, key)
  if (profile.regressor === 'forest' && reg.forest) return forestPredict(reg.forest, featureValues(layer, reg.forest.features))
  if (profile.regressor === 'paper' && reg.paperForm) return evaluateRegression(reg.paperForm, featureValues(layer, reg.paperForm.features))
  // A fallback regression (`other` for flatten/softmax…, conv for dwconv) reads the variables of its own key.
  return evaluateRegression(reg, featureValues(layer, reg.features ?? FEATURES[keyIn(profile, side, key)!]))
}

/**
 * What one session run costs besides its kernels: a single-Dropout model, which ORT's optimiser
 * turns into an identity, times exactly that — the run's fixed cost (intercept) and the copies of
 * its input and output (per element of the input, which equals the output's). Null when the profile
 * has no dropout regression of its own.
 */
export function runCostOf(profile: CalibrationProfile, side: Side): { fixedMs: number; perElementMs: number } | null {
  const d = profile[side].dropout
  if (!d || (d.features && d.features.join() !== 'inputElements') || d.coefficients.length !== 1) return null
  return { fixedMs: Math.max(0, d.intercept), perElementMs: Math.max(0, d.coefficients[0]!) }
}

/**
 * The junction between two consecutive layers of one segment, under `fused` composition (0 under
 * `sum`): each layer was timed as a session of its own, paying a run's fixed cost and copying its
 * tensors in and out; inside one segment the run is paid once, the tensor between them is never
 * copied out, and ORT fuses some pairs (Conv+ReLU). The junction takes that back: the profile's
 * fitted junction terms (fit.ts, fitJunctions: the grid's multi-op blocks against the sum of their
 * ops), else one run's fixed cost and the tensor's copies (runCostOf).
 */
export function junctionMs(profile: CalibrationProfile, side: Side, before: Layer, _after: Layer): number {
  if (profile.composition !== 'fused') return 0
  const j = profile.junctions?.[side] ?? runCostOf(profile, side)
  return j ? -(j.fixedMs + j.perElementMs * product(before.outputShape)) : 0
}

/**
 * A block as the sum of its ops' predictions, and, under `fused` composition, the junctions between
 * consecutive ops: a block's ops run in one session as a segment's layers do (the junction terms are
 * fitted on the grid's blocks against exactly this sum). Without them the camera model's segments
 * were over-predicted ×1.7–2 once its blocks were predicted by their ops.
 */
export function predictSumOfOps(profile: CalibrationProfile, side: Side, nodes: readonly Layer[]): number {
  let ms = nodes.reduce((a, n) => a + predictLayerMs(profile, side, n), 0)
  for (let i = 0; i + 1 < nodes.length; i++) ms += junctionMs(profile, side, nodes[i]!, nodes[i + 1]!)
  return ms
}

export function predictModelLoadMs(profile: CalibrationProfile, side: Side, modelBytes: number): number {
  return evaluateRegression(regressionFor(profile, side, 'modelLoad'), [modelBytes])
}

export interface FitPoint {
  readonly x: readonly number[]
  /** Measured latency, milliseconds. */
  readonly y: number
}

export interface FitStats {
  n: number
  /** Coefficient of determination; null when the measurements do not vary. */
  r2: number | null
  /** Mean absolute percentage error, as a fraction (0.05 = 5 %); null when a measurement is 0. */
  mape: number | null
}

/** How well a regression explains a set of measurements. */
export function fitStats(reg: Regression, points: readonly FitPoint[]): FitStats {
  const n = points.length
  if (n === 0) return { n, r2: null, mape: null }
  const mean = points.reduce((s, p) => s + p.y, 0) / n
  let ssRes = 0
  let ssTot = 0
  let ape = 0
  let apeDefined = true
  for (const p of points) {
    let yHat = reg.intercept
    for (let i = 0; i < reg.coefficients.length; i++) yHat += reg.coefficients[i]! * p.x[i]!
    ssRes += (p.y - yHat) ** 2
    ssTot += (p.y - mean) ** 2
    if (p.y === 0) apeDefined = false
    else ape += Math.abs((p.y - yHat) / p.y)
  }
  return { n, r2: ssTot > 0 ? 1 - ssRes / ssTot : null, mape: apeDefined ? ape / n : null }
}

export interface FitOptions {
  /** Variable names of the points' x, in order (default: the paper's, FEATURES[key]). */
  features?: readonly string[]
  /**
   * `ols`: ordinary least squares. `relative`: weights 1/y, i.e. least squares on relative error —
   * the figure of merit (MAPE) is relative and configurations span three orders of magnitude, so
   * unweighted residuals are dominated by the largest layers.
   */
  weighting?: 'ols' | 'relative'
}

/**
 * Least squares with an intercept. Columns are scaled to unit maximum before a QR solve (feature
 * magnitudes span 1 to 1e9, which would make the normal equations ill-conditioned).
 */
export function fitRegression(key: RegressionKey, points: readonly FitPoint[], opts: FitOptions = {}): Regression & FitStats {
  const names = opts.features ?? FEATURES[key]
  const k = names.length
  if (points.length < k + 1) {
    throw new UserError(`cannot fit "${key}": ${points.length} measurement${points.length === 1 ? '' : 's'}, need at least ${k + 1}`)
  }
  for (const p of points) {
    if (p.x.length !== k) throw new UserError(`cannot fit "${key}": a point has ${p.x.length} variables, expected ${k}`)
    if (!Number.isFinite(p.y) || p.x.some((v) => !Number.isFinite(v))) throw new UserError(`cannot fit "${key}": a measurement is not a finite number`)
  }
  const relative = opts.weighting === 'relative' && points.every((p) => p.y > 0)
  const w = points.map((p) => (relative ? 1 / p.y : 1))
  const scale = Array.from({ length: k }, (_, j) => Math.max(...points.map((p) => Math.abs(p.x[j]!))) || 1)
  const X = new Matrix(points.map((p, i) => [...p.x.map((v, j) => (v / scale[j]!) * w[i]!), w[i]!]))
  const Y = Matrix.columnVector(points.map((p, i) => p.y * w[i]!))
  let beta: number[]
  try {
    beta = solve(X, Y).to1DArray()
  } catch {
    throw new UserError(`cannot fit "${key}": the measured configurations do not vary enough to separate ${k + 1} terms`)
  }
  if (beta.some((b) => !Number.isFinite(b)))
    throw new UserError(`cannot fit "${key}": the measured configurations do not vary enough to separate ${k + 1} terms`)
  const reg: Regression = {
    features: [...names],
    coefficients: beta.slice(0, k).map((b, j) => b / scale[j]!),
    intercept: beta[k]!
  }
  // Nearly collinear variables (a block's input and output sizes, equal in most blocks) fit huge
  // terms that cancel on the configurations measured and explode on any other (a SqueezeNet fire
  // block, whose concat doubles its channels, was predicted at 1e16 ms): a term worth more than
  // 1,000× the largest measured time anywhere in the measured range is refused.
  const yMax = Math.max(...points.map((p) => Math.abs(p.y)))
  const cancelling = reg.coefficients.some((c, j) => Math.abs(c) * scale[j]! > 1000 * Math.max(yMax, 1e-9))
  if (cancelling) throw new UserError(`cannot fit "${key}": its variables (${names.join(', ')}) are too nearly collinear on the measured configurations`)
  return { ...reg, ...fitStats(reg, points) }
}
