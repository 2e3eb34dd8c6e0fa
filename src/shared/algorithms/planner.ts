/**
 * The online optimisation stage of Edgent: choose the exit (right-sizing) and the partition point
 * (deviceLayers) for a latency requirement at the current bandwidth.
 *
 * For exit i with path L1..LN and deviceLayers = p (DESIGN.md, "Planner"):
 *
 *   T(i,p) = sum_{j<=p} device(Lj) + bytes(p)/B_up + sum_{j>p} edge(Lj) + result/B_down + overhead
 *
 * where bytes(0) is the input as sent, bytes(p) the output of Lp, and device-only (p = N) sends
 * nothing either way. With kbps = 1000 bit/s, bytes/B in ms is bytes * 8 / kbps.
 */
import { payloadBytes, type Codec, type LossyCodec } from './codecs.js'
import { UserError } from '../errors.js'
import { cutShape, exitPath, inputBytes, product, type Manifest } from '../contracts/manifest.js'
import { junctionMs, predictLayerMs, segmentTermsMs, type CalibrationProfile, type SegmentContext, type Side } from './latency.js'
import type { Layer } from '../contracts/manifest.js'
import {
  mixtureMs,
  policiesUnavailable,
  policyComponents,
  rankAccuracy,
  type CandidatePolicy,
  type MixtureComponent,
  type SegmentCost
} from './policy-plans.js'

export const PLANNER_MODES = ['edgent', 'paper'] as const
export type PlannerMode = (typeof PLANNER_MODES)[number]

/** The bandwidth-independent cost of one (exit, deviceLayers, codec). */
export interface Candidate {
  exit: number
  deviceLayers: number
  /** N: the layers of this exit's path. */
  layers: number
  /** How the activation (the input, at deviceLayers 0) crosses the link; f32 when nothing is sent. */
  codec: Codec
  /**
   * Measured top-1 accuracy of the configuration, in [0, 1]: the exit's, less the drop its codec
   * measured at this cut (`edgent model verify --codecs`; f32 and u8 are exact).
   */
  accuracy: number
  deviceMs: number
  edgeMs: number
  /** Encoding on the device and decoding on the edge beyond what f32 costs (measured per value on each side), ms. */
  codecMs: number
  uploadBytes: number
  downloadBytes: number
  overheadMs: number
  /** The wait predicted for a free worker at a shared edge (load-aware planning, edge-load.ts); absent: none. */
  queueMs?: number
  /**
   * False when what this plan sends exceeds the largest activation the console accepts (the
   * broker's packet limit less the frame's overhead): such a plan cannot run, and no search chooses it.
   */
  sendable: boolean
  /** A confidence-exit policy's configuration (policy-plans.ts): its latency is a mixture, `accuracy` the policy's measured one. */
  policy?: CandidatePolicy
  /** The accuracy level the planner ranks it at (a policy within the tolerance of a static exit ranks at that exit's); absent: `accuracy`. */
  rankAccuracy?: number
}

export interface Breakdown {
  deviceMs: number
  uploadMs: number
  edgeMs: number
  downloadMs: number
  overheadMs: number
  /** The predicted wait at a shared edge (load-aware planning); absent when none is predicted. */
  queueMs?: number
  /** A codec's encoding and decoding beyond f32's; absent for f32. */
  codecMs?: number
}

export interface Plan {
  model: string
  mode: PlannerMode
  exit: number
  deviceLayers: number
  layers: number
  codec: Codec
  feasible: boolean
  predictedMs: number
  accuracy: number
  uploadBytes: number
  downloadBytes: number
  breakdown: Breakdown
  /** A policy's plan: which policy, its thresholds, and the predicted mixture (where frames leave, each share's latency). */
  policy?: {
    index: number
    thresholds: (number | null)[]
    mixture: { exit: number; side: 'device' | 'edge'; share: number; ms: number; breakdown: Breakdown }[]
  }
}

/** Everything the planner needs about one model under one profile, precomputed once. */
export interface CostTable {
  model: string
  profile: string
  /**
   * Candidates grouped by exit (ascending exit number): each group holds the f32 candidates by
   * deviceLayers 0..N (group[p]), then those of the other codecs the table was built with.
   */
  exits: Candidate[][]
  /** Why a codec is not offered (not announced, accuracy not measured, drop over the bound…); absent: f32 only asked. */
  codecNotes?: string[]
  /**
   * Confidence-exit policies (mode `edgent` only): per policy of the manifest, its candidates by
   * deviceLayers 0..N of the final path (f32). Absent: the table was built without them.
   */
  policies?: Candidate[][]
  /** Why the model's policies are not offered, when they were asked for. */
  policyNote?: string
}

/** What a cost table offers of the model's confidence-exit policies. */
export interface PolicyOptions {
  /** A policy ranks at a static exit's accuracy when at most this many points below it (default 0.5). */
  tolerancePts?: number
  /** The share of frames audited (run to the final exit whatever their confidence), 0..1 (default 0). */
  auditShare?: number
  /**
   * Thresholds the audits tuned (audits.ts): policy `index` runs them, with the shares its audited
   * frames measured, at the final exit's accuracy less the disagreement they measured — and it is the
   * only policy offered (the others are untuned).
   */
  tuned?: { index: number; thresholds: (number | null)[]; leave: number[]; disagreement: number }
}

/** Default bound on the accuracy a lossy codec may cost, in percentage points. */
export const DEFAULT_MAX_CODEC_DROP_PTS = 0.5

/** Per-value costs of the codecs, ns: encoding where the device sends, decoding where the edge receives. */
export interface CodecCosts {
  device: Partial<Record<Codec, number>>
  edge: Partial<Record<Codec, number>>
}

/** What a cost table offers besides f32 at the cut. */
export interface CodecOptions {
  /** The codecs the device can send (f32 is always offered). */
  codecs: readonly Codec[]
  /** The largest accuracy drop a lossy codec may cost, percentage points (default 0.5). */
  maxDropPts?: number
  /** Measured per-value costs on each side; a codec without both is priced as f32 and says so. */
  cost?: CodecCosts
}

export interface Conditions {
  /** Uplink bandwidth B_up, kbit/s (1 kbit = 1000 bit). */
  uplinkKbps: number
  /** Downlink bandwidth B_down, kbit/s; defaults to the uplink's (a symmetric link). */
  downlinkKbps?: number
  /** The latency requirement, milliseconds. */
  latencyMs: number
}

/**
 * Where per-layer latencies come from: a calibration profile's regressions, or any other source
 * (per-layer measurements, for instance) that gives one layer's milliseconds on one side.
 */
export interface LayerLatencySource {
  id: string
  /** Fixed cost of every plan that sends something (messaging), ms. */
  overheadMs: number
  /** Cost per byte sent, on top of the link's serialisation time, ms (default 0). */
  overheadPerByteMs?: number
  /** Cost per ms of the device segment before the send (the edge's side of messaging wakes slower after a longer wait), ms (default 0). */
  overheadPerIdleMs?: number
  layerMs(side: Side, layer: Layer): number
  /**
   * What two consecutive layers of one segment cost besides their own times (usually ≤ 0: the
   * session run and tensor copies they no longer pay each, and fused kernels); 0 when absent.
   */
  junctionMs?(side: Side, before: Layer, after: Layer): number
  /**
   * A non-empty segment's time as a plan runs it, from its composed prediction, the elements it
   * receives and hands on, and the idle before it (the edge's: the device segment) — identity when absent.
   */
  segmentMs?(side: Side, composedMs: number, ctx: SegmentContext): number
  /**
   * A confidence-exit policy's session (`exit`'s layers [from, to): a trunk piece under the final
   * exit, or a head) measured as the agent runs it; undefined where not measured (then composed).
   */
  pieceMs?(side: Side, exit: number, from: number, to: number): number | undefined
}

export function profileSource(profile: CalibrationProfile): LayerLatencySource {
  return {
    id: profile.id,
    overheadMs: profile.messaging?.fixedMs ?? profile.overheadMs,
    ...(profile.messaging ? { overheadPerByteMs: profile.messaging.perByteMs } : {}),
    ...(profile.messaging?.perIdleMs !== undefined ? { overheadPerIdleMs: profile.messaging.perIdleMs } : {}),
    layerMs: (side, layer) => predictLayerMs(profile, side, layer),
    ...(profile.composition === 'fused' ? { junctionMs: (side: Side, a: Layer, b: Layer) => junctionMs(profile, side, a, b) } : {}),
    ...(profile.segments
      ? {
          segmentMs: (side: Side, ms: number, ctx: SegmentContext) => segmentTermsMs(profile.segments?.[side], ms, ctx)
        }
      : {})
  }
}

/**
 * Predicts every (exit, deviceLayers, codec) of a model (prefix/suffix sums per exit);
 * `maxUploadBytes`: the largest activation the console accepts; `codecOptions`: the codecs besides
 * f32 the device may send (lossy ones only where `model verify --codecs` measured their accuracy
 * and the drop is within the bound; u8, the raw image, only edge-only and only with preprocessing).
 */
export function buildCostTable(
  manifest: Manifest,
  source: CalibrationProfile | LayerLatencySource,
  maxUploadBytes = Infinity,
  codecOptions?: CodecOptions,
  policyOptions?: PolicyOptions
): CostTable {
  const profile = typeof (source as LayerLatencySource).layerMs === 'function' ? (source as LayerLatencySource) : profileSource(source as CalibrationProfile)
  const notes: CodecNotes = { text: new Set(), unmeasured: new Map() }
  const inBytes = inputBytes(manifest)
  const inElements = product(manifest.input.shape)
  const exits = manifest.exits.map((exit) => {
    const path = exitPath(manifest, exit.exit)
    const n = path.length
    const device = path.map((l) => profile.layerMs('device', l))
    const edge = path.map((l) => profile.layerMs('edge', l))
    // junction[j]: between layers j and j+1 of one segment (fused composition; 0 otherwise).
    const junction = (side: Side) => path.slice(0, -1).map((l, j) => profile.junctionMs?.(side, l, path[j + 1]!) ?? 0)
    const dj = junction('device')
    const ej = junction('edge')
    const result = path[n - 1]!.outputBytes
    const outElements = product(path[n - 1]!.outputShape)
    const group: Candidate[] = []
    for (let p = 0; p <= n; p++) {
      let deviceMs = 0
      for (let j = 0; j < p; j++) deviceMs += device[j]! + (j + 1 < p ? dj[j]! : 0)
      let edgeMs = 0
      for (let j = p; j < n; j++) edgeMs += edge[j]! + (j + 1 < n ? ej[j]! : 0)
      const uploadBytes = p === n ? 0 : p === 0 ? inBytes : path[p - 1]!.outputBytes
      const edgeIn = p === 0 ? inElements : product(path[p - 1]!.outputShape)
      const devMs =
        p === 0
          ? 0
          : (profile.segmentMs?.('device', Math.max(0, deviceMs), { inputElements: inElements, outputElements: edgeIn, idleMs: 0, sends: p < n }) ??
            Math.max(0, deviceMs))
      group.push({
        exit: exit.exit,
        deviceLayers: p,
        layers: n,
        codec: 'f32',
        accuracy: exit.accuracy,
        deviceMs: devMs,
        codecMs: 0,
        edgeMs:
          p === n
            ? 0
            : (profile.segmentMs?.('edge', Math.max(0, edgeMs), { inputElements: edgeIn, outputElements: outElements, idleMs: devMs, sends: true }) ??
              Math.max(0, edgeMs)),
        uploadBytes,
        downloadBytes: p === n ? 0 : result,
        overheadMs: messagingMs(profile, p, n, uploadBytes, devMs),
        sendable: uploadBytes <= maxUploadBytes
      })
    }
    if (codecOptions) group.push(...codedCandidates(manifest, path, group, codecOptions, maxUploadBytes, profile, notes))
    return group
  })
  const table: CostTable = { model: manifest.id, profile: profile.id, exits, ...(codecOptions ? { codecNotes: noteLines(notes) } : {}) }
  if (!policyOptions) return table
  const why = policiesUnavailable(manifest)
  if (why) return { ...table, policyNote: why }
  return { ...table, policies: policyCandidates(manifest, profile, exits[exits.length - 1]!, policyOptions) }
}

/** A segment of an exit's path, layers [from, to), as one session on one side: its layers, their junctions, the segment terms. */
function segmentCostOf(m: Manifest, profile: LayerLatencySource) {
  const paths = new Map(m.exits.map((e) => [e.exit, exitPath(m, e.exit)]))
  const inElements = product(m.input.shape)
  // each layer's and junction's time, per exit and side, computed once (a profile's regressions are not free)
  const times = new Map<string, { layer: number[]; junction: number[] }>()
  const timesOf = (side: Side, exit: number) => {
    const key = `${side}/${exit}`
    let t = times.get(key)
    if (!t) {
      const path = paths.get(exit)!
      t = {
        layer: path.map((l) => profile.layerMs(side, l)),
        junction: path.slice(0, -1).map((l, j) => profile.junctionMs?.(side, l, path[j + 1]!) ?? 0)
      }
      times.set(key, t)
    }
    return t
  }
  return (side: Side, exit: number, from: number, to: number, idleMs: number, sends: boolean): number => {
    const path = paths.get(exit)!
    const t = timesOf(side, exit)
    let ms = 0
    for (let j = from; j < to; j++) ms += t.layer[j]! + (j + 1 < to ? t.junction[j]! : 0)
    const ctx = {
      inputElements: from === 0 ? inElements : product(path[from - 1]!.outputShape),
      outputElements: product(path[to - 1]!.outputShape),
      idleMs,
      sends
    }
    return profile.segmentMs?.(side, Math.max(0, ms), ctx) ?? Math.max(0, ms)
  }
}

/**
 * The policies a table offers: of the manifest's Pareto set (dozens), per accuracy level they rank
 * at, the POLICIES_PER_LEVEL that need the least compute — the planner takes the fastest of a level,
 * and every policy it offers costs every map and replan a candidate per cut and codec (51 policies:
 * 5,000 candidates, 0.3 s a map, which blocked the console's loop under load-aware replanning).
 */
function offeredPolicies(m: Manifest, o: PolicyOptions) {
  const all = m.confidence!.policies.map((p, index) => ({ ...p, index, rank: rankAccuracy(m, p.accuracy, o.tolerancePts) }))
  const levels = new Map<number, typeof all>()
  for (const p of all) levels.set(p.rank, [...(levels.get(p.rank) ?? []), p])
  return [...levels.values()].flatMap((g) => g.sort((a, b) => a.macs - b.macs).slice(0, POLICIES_PER_LEVEL)).sort((a, b) => a.index - b.index)
}

/** Policies a table offers per accuracy level (offeredPolicies). */
export const POLICIES_PER_LEVEL = 2

/** Every offered policy at every cut of the final path (f32, and the final exit's codecs), each a mixture (policy-plans.ts). */
function policyCandidates(m: Manifest, profile: LayerLatencySource, finalGroup: readonly Candidate[], o: PolicyOptions): Candidate[][] {
  const composed = segmentCostOf(m, profile)
  // a policy's sessions: as measured where the source measured them, else composed
  const seg: SegmentCost = (side, exit, from, to, idleMs, sends) => profile.pieceMs?.(side, exit, from, to) ?? composed(side, exit, from, to, idleMs, sends)
  const conf = m.confidence!
  const n = finalGroup[0]!.layers
  const t = o.tuned
  const finalAccuracy = conf.exitAccuracy?.[m.exits.length - 1] ?? m.exits[m.exits.length - 1]!.accuracy
  const policies = t
    ? [{ index: t.index, thresholds: t.thresholds, leave: t.leave, accuracy: Math.max(0, finalAccuracy - t.disagreement) }]
    : offeredPolicies(m, o)
  const f32 = finalGroup.filter((c) => c.codec === 'f32')
  return policies.map(({ index, ...p }) =>
    finalGroup
      // f32 at every cut, then the codecs the final exit is offered with at its cuts: the policy's
      // accuracy less the drop the codec measured on the final exit there
      .filter((c) => c.codec === 'f32' || c.deviceLayers < n)
      .map((c) => {
        const components = policyComponents(
          m,
          p,
          c.deviceLayers,
          n,
          c.uploadBytes,
          seg,
          (cut, layers, bytes, idle) => messagingMs(profile, cut, layers, bytes, idle),
          o.auditShare ?? 0
        )
        const drop = Math.max(0, f32[c.deviceLayers]!.accuracy - c.accuracy)
        for (const x of components) if (x.side === 'edge' && c.codecMs) x.codecMs = c.codecMs
        return {
          ...c,
          accuracy: p.accuracy - drop,
          rankAccuracy: rankAccuracy(m, p.accuracy - drop, o.tolerancePts),
          policy: { index, thresholds: [...p.thresholds], components }
        }
      })
  )
}

/**
 * The candidates of one exit under the codecs besides f32: each cut's f32 candidate with the codec's
 * bytes on the link, its measured accuracy, and its encoding and decoding. A lossy codec is offered
 * at a cut only where its accuracy was measured and its drop from f32 (on the same samples) is within
 * the bound; a drop is never a gain (a codec measured above f32 is taken at f32's accuracy).
 */
function codedCandidates(
  m: Manifest,
  path: readonly Layer[],
  f32: readonly Candidate[],
  o: CodecOptions,
  maxUploadBytes: number,
  source: LayerLatencySource,
  notes: CodecNotes
): Candidate[] {
  const n = path.length
  const exit = f32[0]!.exit
  const bound = o.maxDropPts ?? DEFAULT_MAX_CODEC_DROP_PTS
  const out: Candidate[] = []
  const measured = m.codecAccuracy?.exits.find((e) => e.exit === exit)
  const priced = (codec: Codec): boolean => o.cost?.device[codec] !== undefined && o.cost?.edge[codec] !== undefined
  const costMs = (codec: Codec, values: number): number => {
    if (!priced(codec) || !priced('f32')) return 0
    const ns = o.cost!.device[codec]! - o.cost!.device.f32! + o.cost!.edge[codec]! - o.cost!.edge.f32!
    return Math.max(0, (ns * values) / 1e6)
  }
  for (const codec of o.codecs) {
    if (codec === 'f32') continue
    if (!priced(codec)) notes.text.add(`${codec}: its encoding and decoding were not measured on both sides (priced as f32's)`)
    // the f32 candidate at cut p, sent under this codec
    const coded = (p: number, accuracy: number): Candidate => {
      const c = f32[p]!
      const dims = cutShape(m, path, p)
      const uploadBytes = payloadBytes(codec, dims)
      return {
        ...c,
        codec,
        accuracy,
        codecMs: costMs(codec, product(dims)),
        uploadBytes,
        overheadMs: messagingMs(source, p, n, uploadBytes, c.deviceMs),
        sendable: uploadBytes <= maxUploadBytes
      }
    }
    if (codec === 'u8') {
      if (m.preprocessing) out.push(coded(0, f32[0]!.accuracy))
      else notes.text.add(`u8: model ${m.id} declares no preprocessing for the edge to do`)
      continue
    }
    const acc = measured?.byCodec[codec as LossyCodec]
    if (!acc || measured?.f32 === undefined) {
      notes.unmeasured.set(codec, [...(notes.unmeasured.get(codec) ?? []), exit])
      continue
    }
    for (let p = 0; p < n; p++) {
      const dropPts = 100 * (measured.f32 - acc[p]!)
      if (!(acc[p]! >= 0)) continue
      if (dropPts > bound) notes.text.add(`${codec}: some cuts cost more than ${bound} points of accuracy (not offered there)`)
      else out.push(coded(p, f32[p]!.accuracy - Math.max(0, dropPts) / 100))
    }
  }
  return out
}

/** Why codecs are not offered somewhere: reasons, and per codec the exits whose accuracy under it was not measured. */
interface CodecNotes {
  text: Set<string>
  unmeasured: Map<Codec, number[]>
}

function noteLines(notes: CodecNotes): string[] {
  const unmeasured = [...notes.unmeasured].map(
    ([codec, exits]) => `${codec}: accuracy not measured for exit${exits.length > 1 ? 's' : ''} ${exits.join(', ')} (edgent model verify --codecs)`
  )
  return [...notes.text, ...unmeasured]
}

/**
 * A plan's messaging: the source's fixed overhead, plus its cost per byte sent and per ms of the
 * device segment before the send (`idleMs`) under a messaging model; a profile with a messaging
 * model charges nothing to device-only plans (they send nothing before their result exists).
 * Sources without one keep a flat overhead on every plan.
 */
function messagingMs(source: LayerLatencySource, p: number, n: number, uploadBytes: number, idleMs: number): number {
  if (source.overheadPerByteMs === undefined) return source.overheadMs
  return p === n ? 0 : source.overheadMs + source.overheadPerByteMs * uploadBytes + (source.overheadPerIdleMs ?? 0) * idleMs
}

/** The candidate of one (exit, deviceLayers, codec) in a cost table (undefined: the table has no such plan). */
export function candidateAt(table: CostTable, exit: number, deviceLayers: number, codec: Codec = 'f32', policy?: number): Candidate | undefined {
  if (policy !== undefined) {
    const c = table.policies
      ?.find((g) => g[0]?.policy?.index === policy)
      ?.find((x) => x.deviceLayers === deviceLayers && (x.codec === codec || deviceLayers === x.layers))
    return c && c.exit === exit ? c : undefined
  }
  const g = table.exits.find((x) => x[0]!.exit === exit)
  if (!g) return undefined
  // f32 at the cut, or nothing sent (device-only plans carry no codec)
  if (codec === 'f32' || deviceLayers === g[0]!.layers) return deviceLayers <= g[0]!.layers ? g[deviceLayers] : undefined
  return g.find((c) => c.deviceLayers === deviceLayers && c.codec === codec)
}

export function checkConditions(c: Conditions): void {
  if (!(c.uplinkKbps > 0) || !Number.isFinite(c.uplinkKbps)) throw new UserError(`uplink bandwidth must be a positive number of kbps, got ${c.uplinkKbps}`)
  if (c.downlinkKbps !== undefined && (!(c.downlinkKbps > 0) || !Number.isFinite(c.downlinkKbps))) {
    throw new UserError(`downlink bandwidth must be a positive number of kbps, got ${c.downlinkKbps}`)
  }
  if (!(c.latencyMs > 0) || !Number.isFinite(c.latencyMs)) throw new UserError(`latency requirement must be a positive number of ms, got ${c.latencyMs}`)
}

export function breakdownOf(c: Candidate, cond: Conditions): Breakdown {
  if (c.policy) return policyBreakdown(c, cond)
  const down = cond.downlinkKbps ?? cond.uplinkKbps
  return {
    deviceMs: c.deviceMs,
    uploadMs: c.uploadBytes === 0 ? 0 : (c.uploadBytes * 8) / cond.uplinkKbps,
    edgeMs: c.edgeMs,
    downloadMs: c.downloadBytes === 0 ? 0 : (c.downloadBytes * 8) / down,
    overheadMs: c.overheadMs,
    ...(c.queueMs ? { queueMs: c.queueMs } : {}),
    ...(c.codecMs ? { codecMs: c.codecMs } : {})
  }
}

/** A component's latency under the conditions: the sum `latencyOf` takes of its breakdown. */
function componentMs(x: MixtureComponent, cond: Conditions): number {
  const down = cond.downlinkKbps ?? cond.uplinkKbps
  return (
    x.deviceMs +
    x.edgeMs +
    x.overheadMs +
    (x.codecMs ?? 0) +
    (x.uploadBytes ? (x.uploadBytes * 8) / cond.uplinkKbps : 0) +
    (x.downloadBytes ? (x.downloadBytes * 8) / down : 0)
  )
}

/**
 * A policy candidate's breakdown: the share-weighted mean of its components' (its typical latency), or
 * on a percentile's table the breakdown of the component at the mixture's quantile.
 */
function policyBreakdown(c: Candidate, cond: Conditions): Breakdown {
  const p = c.policy!
  const down = cond.downlinkKbps ?? cond.uplinkKbps
  const total = p.components.reduce((a, x) => a + x.share, 0) || 1
  const mean = p.components.map((x) => ({ x, w: x.share / total }))
  // at a percentile: the component at the mixture's quantile — unless the mean is higher (a rare
  // but very slow tail, a few frames uploading for seconds, escapes any quantile, not the mean)
  const atQ = p.quantile === undefined ? null : mixtureMs(p.components, (y) => componentMs(y, cond), p.quantile)
  const pick = atQ === null ? null : p.components.find((x) => componentMs(x, cond) === atQ)
  const meanMs = mean.reduce((a, { x, w }) => a + w * componentMs(x, cond), 0)
  const parts = pick && atQ! > meanMs ? [{ x: pick, w: 1 }] : mean
  const sum = (f: (x: MixtureComponent) => number) => parts.reduce((a, { x, w }) => a + w * f(x), 0)
  return {
    deviceMs: sum((x) => x.deviceMs),
    uploadMs: sum((x) => (x.uploadBytes ? (x.uploadBytes * 8) / cond.uplinkKbps : 0)),
    edgeMs: sum((x) => x.edgeMs),
    downloadMs: sum((x) => (x.downloadBytes ? (x.downloadBytes * 8) / down : 0)),
    overheadMs: sum((x) => x.overheadMs),
    ...(c.queueMs ? { queueMs: c.queueMs * sum((x) => (x.side === 'edge' ? 1 : 0)) } : {}),
    ...(p.components.some((x) => x.codecMs) ? { codecMs: sum((x) => x.codecMs ?? 0) } : {})
  }
}

/** T(i,p): the one function every search here uses, so all of them compare identical numbers. */
export function latencyOf(c: Candidate, cond: Conditions): number {
  const b = breakdownOf(c, cond)
  return b.deviceMs + b.uploadMs + b.edgeMs + b.downloadMs + b.overheadMs + (b.queueMs ?? 0) + (b.codecMs ?? 0)
}

export function toPlan(table: CostTable, mode: PlannerMode, c: Candidate, cond: Conditions): Plan {
  const predictedMs = latencyOf(c, cond)
  return {
    model: table.model,
    mode,
    exit: c.exit,
    deviceLayers: c.deviceLayers,
    layers: c.layers,
    codec: c.codec,
    feasible: predictedMs <= cond.latencyMs,
    predictedMs,
    accuracy: c.accuracy,
    uploadBytes: c.uploadBytes,
    downloadBytes: c.downloadBytes,
    breakdown: breakdownOf(c, cond),
    ...(c.policy
      ? {
          policy: {
            index: c.policy.index,
            thresholds: c.policy.thresholds,
            mixture: c.policy.components.map((x) => ({
              exit: x.exit,
              side: x.side,
              share: x.share,
              ms: componentMs(x, cond),
              breakdown: breakdownOf({ ...c, ...x, policy: undefined, codecMs: 0, ...(x.side === 'device' ? { queueMs: 0 } : {}) }, cond)
            }))
          }
        }
      : {})
  }
}

/**
 * Latencies within a relative 1e-9 of each other are a tie. Candidates that are equal on paper
 * (a zero-cost layer between two cuts with the same tensor size) differ by rounding in floating
 * point, by one ulp one way or the other depending on the bandwidth; the tie-breaking rules, not
 * rounding, must decide between them.
 */
export const TIE_EPSILON = 1e-9

/** a < b, beyond a tie. */
export function lessThan(a: number, b: number): boolean {
  return a < b - TIE_EPSILON * Math.max(Math.abs(a), Math.abs(b))
}

interface Timed {
  c: Candidate
  /** Its latency as the requirement is judged (a percentile's table: at the percentile). */
  t: number
  /** Its latency as the fastest is chosen: `t`, but a policy's mean on a percentile's table (its quantile ignores its tail). */
  m: number
}

/**
 * The first of `xs` (in their order) whose latency ties the least one. Ties are measured against the
 * minimum, not against a running best: "within TIE_EPSILON of" is not transitive, and a running best
 * lets a chain of near-equal latencies decide by the order the candidates were visited.
 */
function firstOfFastest(xs: readonly Timed[], by: 't' | 'm' = 'm'): Timed {
  let minT = Infinity
  for (const x of xs) if (x[by] < minT) minT = x[by]
  return xs.find((x) => !lessThan(minT, x[by]))!
}

/** The plans that can run (sendable), with their latencies. */
const timed = (group: readonly Candidate[], cond: Conditions): Timed[] =>
  group
    .filter((c) => c.sendable)
    .map((c) => {
      const t = latencyOf(c, cond)
      return { c, t, m: c.policy?.quantile !== undefined ? latencyOf({ ...c, policy: { ...c.policy, quantile: undefined } }, cond) : t }
    })

/** The partition of one exit with the least T; ties go to fewer device layers. */
function bestPartition(group: readonly Candidate[], cond: Conditions): Timed {
  return firstOfFastest(timed(group, cond), 't')
}

/**
 * Mode `paper`: Algorithm 1 of the paper — exits from the last to the first, the best partition of
 * each, the first whose latency meets the requirement; else none. Deliberate readings of the printed
 * pseudo-code: the device runs the front layers (our documented reading, as in the paper's partitioning
 * figure; the seed's framework text has the edge run the layers before the partition point, and the
 * printed line 8 sums edge times over the first p-1 layers), only the partition's own tensor is uploaded (line 8
 * also charges Input/B on every partition), and line 9 compares the partition's latency, not the
 * argmin itself, with the requirement.
 */
function planPaper(table: CostTable, cond: Conditions): Candidate | null {
  for (let i = table.exits.length - 1; i >= 0; i--) {
    const { c, t } = bestPartition(table.exits[i]!, cond)
    if (t <= cond.latencyMs) return c
  }
  return null
}

/**
 * Mode `edgent`: among plans meeting the requirement, the most accurate (by measured accuracy, not
 * depth; a policy at its rank), ties to lower latency (a policy's mean, even where the requirement is
 * judged at a percentile), then the earlier exit, then fewer device layers; if none meets it,
 * the minimum-latency plans, of them the most accurate, then the earlier exit and fewer device layers,
 * which the caller reports as infeasible. Latencies tie within TIE_EPSILON of the least one. This is
 * an exhaustive search over every (exit, deviceLayers) (tested against one written independently), in
 * O(candidates).
 */
function planEdgent(table: CostTable, cond: Conditions): Candidate {
  const all = [...table.exits, ...(table.policies ?? [])].flatMap((g) => timed(g, cond))
  const maxAccuracy = (xs: readonly Timed[]): number => xs.reduce((m, x) => Math.max(m, rankOf(x.c)), -Infinity)
  const ok = all.filter((x) => x.t <= cond.latencyMs)
  if (ok.length) {
    const acc = maxAccuracy(ok)
    return firstOfFastest(ok.filter((x) => rankOf(x.c) === acc)).c
  }
  // Ties against the least latency itself: the first candidate tied with it may be up to TIE_EPSILON
  // above it, and measuring from there widened the tie to plans the minimum does not tie (a property
  // run found a more accurate plan just outside the minimum's tie taken as tied).
  const minT = all.reduce((m, x) => Math.min(m, x.t), Infinity)
  const fastest = all.filter((x) => !lessThan(minT, x.t))
  const acc = maxAccuracy(fastest)
  return firstOfFastest(
    fastest.filter((x) => rankOf(x.c) === acc),
    't'
  ).c
}

/** The accuracy a candidate is ranked at (a policy's may be a static exit's level: policy-plans.ts). */
const rankOf = (c: Candidate): number => c.rankAccuracy ?? c.accuracy

/** The chosen candidate, or null (mode `paper` only) when no plan meets the requirement. */
export function chooseCandidate(table: CostTable, cond: Conditions, mode: PlannerMode = 'edgent'): Candidate | null {
  return mode === 'paper' ? planPaper(table, cond) : planEdgent(table, cond)
}

export function plan(table: CostTable, cond: Conditions, mode: PlannerMode = 'edgent'): Plan | null {
  checkConditions(cond)
  const c = chooseCandidate(table, cond, mode)
  return c ? toPlan(table, mode, c, cond) : null
}

/** Every (exit, deviceLayers) with its breakdown, by exit then deviceLayers. */
export function allCandidates(table: CostTable, cond: Conditions, mode: PlannerMode = 'edgent'): Plan[] {
  checkConditions(cond)
  return [...table.exits, ...(mode === 'edgent' ? (table.policies ?? []) : [])].flatMap((g) => g.map((c) => toPlan(table, mode, c, cond)))
}

export interface MapInterval {
  /** The interval is [fromKbps, toKbps); the last one includes toKbps. */
  fromKbps: number
  toKbps: number
  exit: number | null
  deviceLayers: number | null
  codec: Codec | null
  feasible: boolean
  accuracy: number | null
  /** The confidence-exit policy (its index in the manifest), null: a static exit. */
  policy: number | null
}

export interface MapOptions {
  latencyMs: number
  fromKbps: number
  toKbps: number
  /** A fixed downlink; by default the downlink equals the uplink (symmetric link). */
  downlinkKbps?: number
  mode?: PlannerMode
}

/**
 * The configuration map: for one latency requirement, the bandwidth intervals over [from, to] in which
 * each plan is optimal, with exact breakpoints.
 *
 * As a function of x = 1/B every candidate's latency is a line, T = C + K·x with K >= 0. The choice
 * is a lower envelope question: mode `edgent` takes the most accurate level of candidates whose
 * envelope (its fastest candidate's latency) meets the requirement, and that envelope's candidate (or,
 * where no level does, the envelope of all); mode `paper` the last exit whose envelope meets it. So the
 * choice can change only at a breakpoint of one of those envelopes (one per accuracy level, per exit,
 * and of all candidates) or where an envelope line meets the requirement. Each envelope is a convex-hull
 * sweep, O(n log n); we collect those points inside the range, plan once inside each gap (the same
 * search as `plan`, so the map and the planner cannot disagree) and merge equal neighbours. The
 * all-pairs crossings this replaced are kept as `configurationMapPairwise` for the bench and the tests.
 */
export function configurationMap(table: CostTable, opts: MapOptions): MapInterval[] {
  const lines = mapLines(table, opts)
  const points: number[] = []
  const groups = new Map<string, Line[]>()
  const into = (key: string, l: Line): void => {
    const g = groups.get(key)
    if (g) g.push(l)
    else groups.set(key, [l])
  }
  for (const l of lines) {
    into('all', l)
    into(`a${rankOf(l.c)}`, l)
    into(`e${l.c.exit}`, l)
  }
  for (const g of groups.values()) {
    const hull = lowerEnvelope(g)
    for (let i = 0; i + 1 < hull.length; i++) points.push(1 / crossing(hull[i]!, hull[i + 1]!))
    for (const l of hull) if (l.K > 0 && opts.latencyMs > l.C) points.push(l.K / (opts.latencyMs - l.C))
  }
  points.push(...quantileProbes(table, opts))
  return probeGaps(table, opts, points)
}

/** The configuration map from every pair's crossing and every line's threshold (O(n²) points): the reference the envelope sweep is checked against. */
export function configurationMapPairwise(table: CostTable, opts: MapOptions): MapInterval[] {
  const lines = mapLines(table, opts)
  const points: number[] = []
  for (const { C, K } of lines) if (K > 0 && opts.latencyMs > C) points.push(K / (opts.latencyMs - C))
  for (let a = 0; a < lines.length; a++) {
    for (let b = a + 1; b < lines.length; b++) {
      const la = lines[a]!
      const lb = lines[b]!
      if (la.K !== lb.K && la.C !== lb.C) points.push((la.K - lb.K) / (lb.C - la.C))
    }
  }
  points.push(...quantileProbes(table, opts))
  return probeGaps(table, opts, points)
}

/**
 * A policy's quantile is not one line in 1/B (which component it is changes with the bandwidth): on a
 * percentile's table with policies the map also probes every 5 % of bandwidth over the range, and
 * its breakpoints are exact to that.
 */
function quantileProbes(table: CostTable, opts: MapOptions): number[] {
  if (!table.policies?.some((g) => g.some((c) => c.policy?.quantile !== undefined))) return []
  const out: number[] = []
  for (let b = opts.fromKbps * 1.05; b < opts.toKbps; b *= 1.05) out.push(b)
  return out
}

interface Line {
  c: Candidate
  /** ms */
  C: number
  /** ms·kbps (bits) */
  K: number
}

/** The conditions a map plans at, for an uplink of `uplinkKbps`. */
const mapConditions = (opts: MapOptions, uplinkKbps: number): Conditions => ({
  uplinkKbps,
  latencyMs: opts.latencyMs,
  ...(opts.downlinkKbps !== undefined ? { downlinkKbps: opts.downlinkKbps } : {})
})

/** Every sendable candidate as a line in x = 1/B: C its latency on an infinitely fast uplink, K its bits that depend on B. */
function mapLines(table: CostTable, opts: MapOptions): Line[] {
  const { fromKbps, toKbps } = opts
  if (!(fromKbps > 0) || !(toKbps > fromKbps) || !Number.isFinite(toKbps)) {
    throw new UserError(`bandwidth range must satisfy 0 < from < to, got ${fromKbps}..${toKbps} kbps`)
  }
  checkConditions(mapConditions(opts, fromKbps))
  const fixedDown = opts.downlinkKbps !== undefined
  // latencyOf at B = ∞ (a fixed downlink still charged): the same sum every search uses
  const atInfinity: Conditions = { uplinkKbps: Infinity, latencyMs: opts.latencyMs, downlinkKbps: fixedDown ? opts.downlinkKbps! : Infinity }
  const bits = (c: Candidate): number => {
    if (!c.policy) return c.uploadBytes * 8 + (fixedDown ? 0 : c.downloadBytes * 8)
    // a policy's mean: the share-weighted bits of its components (its quantile is probed: quantileProbes)
    const total = c.policy.components.reduce((a, x) => a + x.share, 0) || 1
    return c.policy.components.reduce((a, x) => a + (x.share / total) * (x.uploadBytes * 8 + (fixedDown ? 0 : x.downloadBytes * 8)), 0)
  }
  return [...table.exits, ...(table.policies ?? [])]
    .flat()
    .filter((c) => c.sendable)
    .map((c) => ({ c, K: bits(c), C: latencyOf(c, atInfinity) }))
}

/** x where two lines of different slopes meet. */
const crossing = (a: Line, b: Line): number => (b.C - a.C) / (a.K - b.K)

/**
 * The lower envelope of lines T = C + K·x over all x (the lines that are the least somewhere), in
 * order of increasing x: steepest first. Equal slopes keep the lowest line.
 */
export function lowerEnvelope<L extends { C: number; K: number }>(lines: readonly L[]): L[] {
  const sorted = [...lines].sort((a, b) => b.K - a.K || a.C - b.C)
  const hull: L[] = []
  for (const l of sorted) {
    const top = hull[hull.length - 1]
    if (top && top.K === l.K) continue // same slope, not lower
    while (hull.length >= 2) {
      const a = hull[hull.length - 2]!
      const b = hull[hull.length - 1]!
      // b is never the least if l overtakes a no later than b does
      if ((l.C - a.C) * (a.K - b.K) <= (b.C - a.C) * (a.K - l.K)) hull.pop()
      else break
    }
    hull.push(l)
  }
  return hull
}

/** One plan inside each gap between the candidate breakpoints `points` (bandwidths; those outside the range are dropped), equal neighbours merged. */
function probeGaps(table: CostTable, opts: MapOptions, points: number[]): MapInterval[] {
  const mode = opts.mode ?? 'edgent'
  const { fromKbps, toKbps, latencyMs } = opts
  const inside = points.filter((b) => Number.isFinite(b) && b > fromKbps && b < toKbps).sort((x, y) => x - y)
  const edges = [fromKbps, ...inside.filter((p, i) => i === 0 || p !== inside[i - 1]), toKbps]
  const out: MapInterval[] = []
  for (let i = 0; i + 1 < edges.length; i++) {
    const lo = edges[i]!
    const hi = edges[i + 1]!
    const cond = mapConditions(opts, Math.sqrt(lo * hi))
    const c = chooseCandidate(table, cond, mode)
    const interval: MapInterval = {
      fromKbps: lo,
      toKbps: hi,
      exit: c ? c.exit : null,
      deviceLayers: c ? c.deviceLayers : null,
      codec: c ? c.codec : null,
      feasible: c ? latencyOf(c, cond) <= latencyMs : false,
      accuracy: c ? c.accuracy : null,
      policy: c?.policy ? c.policy.index : null
    }
    const last = out[out.length - 1]
    if (last && sameConfiguration(last, interval) && last.feasible === interval.feasible) last.toKbps = hi
    else out.push(interval)
  }
  return out
}

/** What names a configuration: a policy is an index (a map's interval, a candidate's policy) or an object with one (a plan). */
interface Configured {
  exit: number | null
  deviceLayers: number | null
  codec?: Codec | null
  policy?: number | { index: number } | null
}

const policyIndex = (x: Configured): number | null =>
  x.policy === undefined || x.policy === null ? null : typeof x.policy === 'number' ? x.policy : x.policy.index

/** Two plans, intervals or candidates name the same configuration (policy, exit, deviceLayers, codec; a plan message without a codec sends f32). */
export function sameConfiguration(a: Configured, b: Configured): boolean {
  return a.exit === b.exit && a.deviceLayers === b.deviceLayers && (a.codec ?? 'f32') === (b.codec ?? 'f32') && policyIndex(a) === policyIndex(b)
}

/** The interval of a map containing `kbps` ([from, to), the last one closed), or undefined. */
export function lookupMap(map: readonly MapInterval[], kbps: number): MapInterval | undefined {
  let lo = 0
  let hi = map.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const m = map[mid]!
    if (kbps < m.fromKbps) hi = mid - 1
    else if (kbps >= m.toKbps && !(mid === map.length - 1 && kbps === m.toKbps)) lo = mid + 1
    else return m
  }
  return undefined
}
