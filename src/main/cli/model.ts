/** `edgent model info | verify | decisions`: the shipped model, checked and explained. */
import { UserError } from '../../shared/errors.js'
import { exitPath, inputBytes, layerMacs, product, type Manifest } from '../../shared/contracts/manifest.js'
import { argmax, preprocess } from '../../shared/algorithms/preprocess.js'
import { measureLayers } from '../runtime/layer-timer.js'
import { buildCostTable, plan, type LayerLatencySource, type Plan } from '../../shared/algorithms/planner.js'
import { loadManifest, randomSamples, readModelSamples, readSampleSet, readShippedSamples, type SampleSet } from '../runtime/files.js'
import { OrtExecutor } from '../runtime/executor.js'
import { importModel, type ImportModelOptions, type ImportReport, type LibraryEntry } from '../models/library.js'
import { callConsole, runningConsole } from './client.js'
import { pct, table } from './format.js'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { LOSSY_CODECS, payloadBytes, roundTrip, type Codec, type LossyCodec } from '../../shared/algorithms/codecs.js'
import { offlineCodecOptions } from '../../shared/algorithms/codec-cost.js'

export type Progress = (done: number, total: number, label: string) => void

const noProgress: Progress = () => undefined

function shape(dims: readonly number[]): string {
  return dims.join('×')
}

// ---------------------------------------------------------------- info

export function runModelInfo(opts: { model: string; json?: boolean }): string {
  const { manifest, dir } = loadManifest(opts.model)
  const usedBy = new Map<string, number[]>()
  for (const e of manifest.exits) for (const id of e.layers) usedBy.set(id, [...(usedBy.get(id) ?? []), e.exit])
  if (opts.json) {
    return JSON.stringify(
      {
        ...manifest,
        dir,
        inputBytes: inputBytes(manifest),
        layers: manifest.layers.map((l) => ({ ...l, exits: usedBy.get(l.id) ?? [] }))
      },
      null,
      2
    )
  }
  const lines = [
    `${manifest.id}${manifest.name ? ` — ${manifest.name}` : ''}`,
    `onnx ${manifest.onnx}${manifest.onnxBytes ? ` (${manifest.onnxBytes} B)` : ''} · input ${manifest.input.name} ${manifest.input.dtype} ${shape(manifest.input.shape)} = ${inputBytes(manifest)} B · ${manifest.classes.length} classes`,
    '',
    table(
      ['exit', 'layers', 'accuracy', 'test samples', 'output'],
      manifest.exits.map((e) => [
        String(e.exit),
        String(e.layers.length),
        pct(e.accuracy),
        e.accuracySource === 'supplied' ? 'supplied' : String(e.testSamples ?? '—'),
        e.output
      ]),
      [true, true, true, true, false]
    ),
    '',
    table(
      ['layer', 'type', 'input', 'output', 'output B', 'vs input', 'exits'],
      manifest.layers.map((l) => [
        l.id,
        l.type,
        shape(l.inputShape),
        shape(l.outputShape),
        String(l.outputBytes),
        `${(l.outputBytes / inputBytes(manifest)).toFixed(2)}×`,
        (usedBy.get(l.id) ?? []).join(',')
      ]),
      [false, false, true, true, true, true, false]
    )
  ]
  if (manifest.training) lines.push('', `trained: ${JSON.stringify(Object.fromEntries(Object.entries(manifest.training).filter(([k]) => k !== 'history')))}`)
  return lines.join('\n')
}

/** Runs `fn` on the caller's executor, or on a private one started and stopped around it. */
async function withExecutor<T>(executor: OrtExecutor | undefined, fn: (ex: OrtExecutor) => Promise<T>, maxSessions?: number): Promise<T> {
  if (executor) return fn(executor)
  const ex = new OrtExecutor(maxSessions ? { maxSessions } : {})
  await ex.start()
  try {
    return await fn(ex)
  } finally {
    await ex.stop()
  }
}

// ---------------------------------------------------------------- verify

export interface VerifyOptions {
  model: string
  samples?: number
  images?: string
  labels?: string
  /** Samples per (exit, deviceLayers) split compared with the unsplit run. */
  splitSamples?: number
  /** Also measure every exit × cut × lossy codec's top-1 accuracy, and store it in the manifest. */
  codecs?: boolean
  json?: boolean
}

export interface ExitVerdict {
  exit: number
  layers: number
  correct: number
  samples: number
  /** null when the inputs are random (no labelled set is stored or given). */
  accuracy: number | null
  manifestAccuracy: number
  /** Percentage points, measured minus manifest (null with random inputs). */
  deltaPoints: number | null
  splitsChecked: number
  maxSplitAbsDiff: number
}

export interface VerifyReport {
  model: string
  source: string
  samples: number
  exits: ExitVerdict[]
  /** With --codecs: every exit × cut × lossy codec's accuracy, and where it was stored. */
  codecAccuracy?: NonNullable<Manifest['codecAccuracy']>
  codecAccuracyStored?: string
  /** Every split reproduces the unsplit output within 1e-4 and every exit's accuracy is within ±2 points. */
  ok: boolean
}

export const SPLIT_TOLERANCE = 1e-4
export const ACCURACY_TOLERANCE_POINTS = 2

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

function verdictOk(v: ExitVerdict): boolean {
  return v.maxSplitAbsDiff <= SPLIT_TOLERANCE && (v.deltaPoints === null || Math.abs(v.deltaPoints) <= ACCURACY_TOLERANCE_POINTS)
}

export async function verifyModel(opts: VerifyOptions, progress: Progress = noProgress, executor?: OrtExecutor): Promise<VerifyReport> {
  const loaded = loadManifest(opts.model)
  const { manifest } = loaded
  if ((opts.images === undefined) !== (opts.labels === undefined)) throw new UserError('--images and --labels go together')
  // No labelled set stored or given: the split check runs on random inputs, and accuracy is not checked.
  const random = !opts.images && !manifest.samples
  const set: SampleSet = opts.images
    ? readSampleSet(opts.images, opts.labels!)
    : random
      ? randomSamples(manifest, opts.samples ?? 8)
      : readShippedSamples(loaded)
  const want = opts.samples ?? set.count
  if (!Number.isInteger(want) || want < 1) throw new UserError(`--samples must be a positive integer, got ${opts.samples}`)
  const n = Math.min(want, set.count)
  return withExecutor(
    executor,
    async (ex) => {
      await ex.openModel(loaded.dir)
      const inputs = (k: number): Float32Array => preprocess(manifest, set.images.subarray(k * set.imageElements, (k + 1) * set.imageElements))
      const total = n * manifest.exits.length
      let done = 0
      const verdicts: ExitVerdict[] = []
      // Shapes first: one chained per-layer pass per exit checks every layer's output against the manifest.
      for (const e of manifest.exits) await ex.runChain(manifest.id, { exit: e.exit, from: 0, to: e.layers.length }, inputs(0))
      for (const e of manifest.exits) {
        const N = e.layers.length
        let correct = 0
        for (let k = 0; k < n; k++) {
          const r = await ex.runSegment(manifest.id, { exit: e.exit, from: 0, to: N }, inputs(k))
          if (argmax(r.output) === set.labels[k]) correct++
          if (++done % 250 === 0 || done === total) progress(done, total, `accuracy, exit ${e.exit}`)
        }
        let maxDiff = 0
        let checked = 0
        const splitSamples = Math.min(opts.splitSamples ?? 4, n)
        for (let k = 0; k < splitSamples; k++) {
          const x = inputs(k)
          const whole = await ex.runSegment(manifest.id, { exit: e.exit, from: 0, to: N }, x)
          for (let p = 0; p <= N; p++) {
            const split = await ex.runSplit(manifest.id, e.exit, p, x)
            maxDiff = Math.max(maxDiff, maxAbsDiff(split.output, whole.output))
            checked++
          }
        }
        const accuracy = random ? null : correct / n
        verdicts.push({
          exit: e.exit,
          layers: N,
          correct,
          samples: n,
          accuracy,
          manifestAccuracy: e.accuracy,
          deltaPoints: accuracy === null ? null : (accuracy - e.accuracy) * 100,
          splitsChecked: checked,
          maxSplitAbsDiff: maxDiff
        })
      }
      const ok = verdicts.every((v) => verdictOk(v))
      let codecAccuracy: VerifyReport['codecAccuracy']
      let stored: string | undefined
      if (opts.codecs) {
        if (random) throw new UserError(`--codecs measures accuracy: model ${manifest.id} has no labelled samples stored (give --images and --labels)`)
        // each drop's baseline: the exit's own accuracy on the same samples
        codecAccuracy = await measureCodecAccuracy(ex, manifest, set, n, inputs, (exit) => verdicts.find((v) => v.exit === exit)!.correct / n, progress)
        codecAccuracy.source = opts.images ? set.source : `shipped samples (${manifest.samples?.images})`
        stored = join(loaded.dir, 'manifest.json')
        const raw = JSON.parse(readFileSync(stored, 'utf8')) as Record<string, unknown>
        raw['codecAccuracy'] = codecAccuracy
        const tmp = `${stored}.tmp-${process.pid}`
        writeFileSync(tmp, `${JSON.stringify(raw, null, 2)}\n`)
        renameSync(tmp, stored)
      }
      return {
        ...(codecAccuracy ? { codecAccuracy, codecAccuracyStored: stored } : {}),
        model: manifest.id,
        source: opts.images
          ? set.source
          : random
            ? 'random inputs (no labelled set stored: accuracy not checked)'
            : `shipped samples (${manifest.samples?.images})`,
        samples: n,
        exits: verdicts,
        ok
      }
    },
    opts.codecs ? 512 : undefined
  )
}

/**
 * Every exit × deviceLayers × lossy codec's top-1 accuracy over the first n samples: the activation at
 * each cut (stepping through the exit one single-layer segment at a time) is encoded and decoded as
 * the link would carry it, and the rest of the exit runs on it.
 */
async function measureCodecAccuracy(
  ex: OrtExecutor,
  manifest: Manifest,
  set: SampleSet,
  n: number,
  inputs: (k: number) => Float32Array,
  /** An exit's accuracy on the same samples with nothing lossy: the baseline stored with its codecs'. */
  f32Accuracy: (exit: number) => number,
  progress: Progress
): Promise<NonNullable<Manifest['codecAccuracy']>> {
  const exits: NonNullable<Manifest['codecAccuracy']>['exits'] = []
  const total = n * manifest.exits.length
  let done = 0
  for (const e of manifest.exits) {
    const N = e.layers.length
    const correct = Object.fromEntries(LOSSY_CODECS.map((c) => [c, new Array<number>(N).fill(0)])) as Record<LossyCodec, number[]>
    for (let k = 0; k < n; k++) {
      let a = inputs(k)
      let dims: number[] = [...manifest.input.shape]
      for (let p = 0; p < N; p++) {
        for (const codec of LOSSY_CODECS) {
          const y = await ex.runSegment(manifest.id, { exit: e.exit, from: p, to: N }, roundTrip(codec, dims, a), dims)
          if (argmax(y.output) === set.labels[k]) correct[codec][p]!++
        }
        const step = await ex.runSegment(manifest.id, { exit: e.exit, from: p, to: p + 1 }, a, dims)
        a = step.output
        dims = step.dims
      }
      if (++done % 50 === 0 || done === total) progress(done, total, `codec accuracy, exit ${e.exit}`)
    }
    exits.push({ exit: e.exit, f32: f32Accuracy(e.exit), byCodec: Object.fromEntries(LOSSY_CODECS.map((c) => [c, correct[c].map((x) => x / n)])) })
  }
  return { samples: n, source: '', exits }
}

export function formatVerify(r: VerifyReport): string {
  return [
    `model ${r.model} · ${r.samples} samples from ${r.source}`,
    '',
    table(
      ['exit', 'layers', 'accuracy', 'manifest', 'Δ points', 'splits checked', 'max |split − unsplit|', 'verdict'],
      r.exits.map((v) => [
        String(v.exit),
        String(v.layers),
        v.accuracy === null ? '—' : pct(v.accuracy),
        pct(v.manifestAccuracy),
        v.deltaPoints === null ? '—' : `${v.deltaPoints >= 0 ? '+' : ''}${v.deltaPoints.toFixed(2)}`,
        String(v.splitsChecked),
        v.maxSplitAbsDiff.toExponential(2),
        verdictOk(v) ? 'ok' : 'FAIL'
      ]),
      [true, true, true, true, true, true, true, false]
    ),
    '',
    r.ok
      ? r.exits.every((v) => v.accuracy === null)
        ? `ok: every split reproduces the unsplit output within ${SPLIT_TOLERANCE} (random inputs: accuracy not checked)`
        : `ok: every split reproduces the unsplit output within ${SPLIT_TOLERANCE} and every exit is within ±${ACCURACY_TOLERANCE_POINTS} points of the manifest`
      : `FAILED: a split differs by more than ${SPLIT_TOLERANCE} or an exit's accuracy is more than ${ACCURACY_TOLERANCE_POINTS} points from the manifest`,
    ...(r.codecAccuracy ? ['', ...formatCodecAccuracy(r)] : [])
  ].join('\n')
}

/** Per exit and codec: the accuracy over the cuts (lowest, median), and the largest drop from the exit's own. */
function formatCodecAccuracy(r: VerifyReport): string[] {
  const c = r.codecAccuracy!
  const rows: string[][] = []
  for (const e of c.exits) {
    const own = r.exits.find((v) => v.exit === e.exit)?.accuracy ?? null
    for (const codec of LOSSY_CODECS) {
      const xs = e.byCodec[codec]
      if (!xs) continue
      const sorted = [...xs].sort((a, b) => a - b)
      rows.push([
        String(e.exit),
        codec,
        String(xs.length),
        pct(sorted[0]!),
        pct(sorted[Math.floor(sorted.length / 2)]!),
        own === null ? '—' : (100 * (own - sorted[0]!)).toFixed(2)
      ])
    }
  }
  return [
    `accuracy with the activation sent lossy, at every cut (deviceLayers 0..N−1), ${c.samples} samples:`,
    table(['exit', 'codec', 'cuts', 'lowest', 'median', 'largest drop, points'], rows, [true, false, true, true, true, true]),
    `stored in ${r.codecAccuracyStored} (codecAccuracy)`
  ]
}

// ---------------------------------------------------------------- decisions

export interface DecisionOptions {
  model: string
  /** How many times slower than this machine the device is. */
  deviceFactor: number
  bandwidthsKbps: number[]
  latenciesMs: number[]
  reps: number
  /** What the device may send besides f32 (default f32 only); with more, one table per codec and one with all. */
  codecs?: Codec[]
  /** The largest accuracy drop a lossy codec may cost, points (default 0.5). */
  maxCodecDropPts?: number
  json?: boolean
}

type DecisionCell = Pick<Plan, 'exit' | 'deviceLayers' | 'layers' | 'codec' | 'feasible' | 'predictedMs' | 'accuracy'> & {
  latencyMs: number
  uplinkKbps: number
}
interface DecisionSummary {
  edgeOnly: number
  deviceOnly: number
  middle: number
  exits: number[]
  /** How many cells send each codec (plans that send something). */
  codecs: Partial<Record<Codec, number>>
}

export interface LayerTiming {
  id: string
  type: string
  outputBytes: number
  /** outputBytes / input bytes: a partition after this layer uploads this much relative to edge-only. */
  vsInput: number
  edgeMs: number
  deviceMs: number
}

export interface DecisionReport {
  model: string
  deviceFactor: number
  inputBytes: number
  reps: number
  layers: LayerTiming[]
  /** Fused single-session latency of each exit on this machine (the edge), median ms. */
  exitEdgeMs: { exit: number; fusedMs: number; sumOfLayersMs: number; macs: number; gflopsHere: number }[]
  /** The codecs the device may send (f32 first). */
  codecs: Codec[]
  /** Why a codec was not offered somewhere (accuracy not measured, drop over the bound…). */
  codecNotes: string[]
  /** The planner's choice at each (requirement, uplink) of the grid, with every codec given. */
  grid: DecisionCell[]
  summary: DecisionSummary
  /** With codecs: the same grid with f32 only, and with f32 and each codec alone. */
  variants?: { codecs: Codec[]; grid: DecisionCell[]; summary: DecisionSummary }[]
}

/**
 * Measures every layer on this machine (single-layer slices, median of `reps`), takes this machine as
 * the edge and a device `deviceFactor` times slower, and plans over a bandwidth × requirement grid.
 */
export async function decisionTable(opts: DecisionOptions, progress: Progress = noProgress, executor?: OrtExecutor): Promise<DecisionReport> {
  const loaded = loadManifest(opts.model)
  const { manifest } = loaded
  if (!(opts.deviceFactor > 0)) throw new UserError(`--device-factor must be a positive number, got ${opts.deviceFactor}`)
  return withExecutor(executor, async (ex) => {
    await ex.openModel(loaded.dir)
    const samples = readModelSamples(loaded)
    const totalSteps = manifest.exits.length * opts.reps
    let step = 0
    const measured = await measureLayers(ex, manifest, samples.images.subarray(0, samples.imageElements), opts.reps, (exit) =>
      progress(++step, totalSteps, `timing exit ${exit}`)
    )
    const edgeMs = new Map(Object.entries(measured.layerMs))
    const exitFused: DecisionReport['exitEdgeMs'] = manifest.exits.map((e) => {
      const macs = exitPath(manifest, e.exit).reduce((a, l) => a + layerMacs(l), 0)
      const fusedMs = measured.exitFusedMs[String(e.exit)]!
      const sumOfLayersMs = e.layers.reduce((a, id) => a + (edgeMs.get(id) ?? 0), 0)
      return { exit: e.exit, fusedMs, sumOfLayersMs, macs, gflopsHere: (2 * macs) / (fusedMs * 1e6) }
    })
    const source: LayerLatencySource = {
      id: `measured-here×${opts.deviceFactor}`,
      overheadMs: 0,
      layerMs: (side, layer) => edgeMs.get(layer.id)! * (side === 'device' ? opts.deviceFactor : 1)
    }
    const codecs = [...new Set<Codec>(['f32', ...(opts.codecs ?? [])])]
    const notes = new Set<string>()
    // codec costs measured once, for every table below
    const offered = offlineCodecOptions(codecs, opts.maxCodecDropPts, opts.deviceFactor)
    const decide = (set: Codec[]): { grid: DecisionCell[]; summary: DecisionSummary } => {
      const costs = buildCostTable(manifest, source, Infinity, offered && set.length > 1 ? { ...offered, codecs: set } : undefined)
      for (const n of costs.codecNotes ?? []) notes.add(n)
      const grid: DecisionCell[] = []
      for (const latencyMs of opts.latenciesMs) {
        for (const uplinkKbps of opts.bandwidthsKbps) {
          const p = plan(costs, { uplinkKbps, latencyMs })!
          grid.push({
            latencyMs,
            uplinkKbps,
            exit: p.exit,
            deviceLayers: p.deviceLayers,
            layers: p.layers,
            codec: p.codec,
            feasible: p.feasible,
            predictedMs: p.predictedMs,
            accuracy: p.accuracy
          })
        }
      }
      const sent: Partial<Record<Codec, number>> = {}
      for (const g of grid) if (g.deviceLayers < g.layers) sent[g.codec] = (sent[g.codec] ?? 0) + 1
      return {
        grid,
        summary: {
          edgeOnly: grid.filter((g) => g.deviceLayers === 0).length,
          deviceOnly: grid.filter((g) => g.deviceLayers === g.layers).length,
          middle: grid.filter((g) => g.deviceLayers > 0 && g.deviceLayers < g.layers).length,
          exits: [...new Set(grid.map((g) => g.exit))].sort((a, b) => a - b),
          codecs: sent
        }
      }
    }
    const main = decide(codecs)
    const variants =
      codecs.length > 1 ? [['f32'] as Codec[], ...codecs.slice(1).map((c) => ['f32', c] as Codec[])].map((set) => ({ codecs: set, ...decide(set) })) : undefined
    const inBytes = inputBytes(manifest)
    return {
      model: manifest.id,
      deviceFactor: opts.deviceFactor,
      inputBytes: inBytes,
      reps: opts.reps,
      layers: manifest.layers.map((l) => ({
        id: l.id,
        type: l.type,
        outputBytes: l.outputBytes,
        vsInput: l.outputBytes / inBytes,
        edgeMs: edgeMs.get(l.id) ?? NaN,
        deviceMs: (edgeMs.get(l.id) ?? NaN) * opts.deviceFactor
      })),
      exitEdgeMs: exitFused,
      codecs,
      codecNotes: [...notes],
      grid: main.grid,
      summary: main.summary,
      ...(variants ? { variants } : {})
    }
  })
}

export function formatDecisions(r: DecisionReport, manifest?: Manifest): string {
  const cell = (g: DecisionCell): string => {
    const where = g.deviceLayers === 0 ? 'edge' : g.deviceLayers === g.layers ? 'device' : `split ${g.deviceLayers}/${g.layers}`
    const codec = g.deviceLayers < g.layers && g.codec !== 'f32' ? ` ${g.codec}` : ''
    return `e${g.exit} ${where}${codec}${g.feasible ? '' : ' (miss)'}`
  }
  const withCodecs = r.codecs.length > 1
  const lossy = r.codecs.filter((c) => c !== 'f32' && c !== 'u8')
  const decisionTable = (grid: DecisionCell[]): string => {
    const bws = [...new Set(grid.map((g) => g.uplinkKbps))]
    const lats = [...new Set(grid.map((g) => g.latencyMs))]
    return table(
      ['requirement', ...bws.map((b) => `${b} kbps`)],
      lats.map((l) => [`${l} ms`, ...bws.map((b) => cell(grid.find((g) => g.latencyMs === l && g.uplinkKbps === b)!))])
    )
  }
  const summaryLine = (s: DecisionSummary, n: number): string => {
    const sent = Object.entries(s.codecs)
      .map(([c, k]) => `${c} ${k}`)
      .join(', ')
    return `edge-only in ${s.edgeOnly}, device-only in ${s.deviceOnly}, a middle partition in ${s.middle} of ${n} cells; exits used: ${s.exits.join(', ')}${withCodecs && sent ? `; sent as ${sent}` : ''}`
  }
  const inputU8 = manifest?.preprocessing ? product(manifest.input.shape) : null
  const lines = [
    `model ${r.model} · edge = this machine (measured, median of ${r.reps}) · device = ${r.deviceFactor}× slower · input ${r.inputBytes} B${inputU8 !== null && withCodecs ? ` (${inputU8} B as raw u8 pixels)` : ''}`,
    '',
    `per layer (single-layer slices; a partition after a layer uploads its output${withCodecs ? ', under each codec' : ''}):`,
    table(
      ['layer', 'type', 'output B', ...lossy.map((c) => `${c} B`), 'vs input', 'edge ms', 'device ms'],
      r.layers.map((l) => {
        const dims = manifest?.layers.find((x) => x.id === l.id)?.outputShape
        return [
          l.id,
          l.type,
          String(l.outputBytes),
          ...lossy.map((c) => (dims ? String(payloadBytes(c, dims)) : '—')),
          `${l.vsInput.toFixed(2)}×`,
          l.edgeMs.toFixed(3),
          l.deviceMs.toFixed(3)
        ]
      }),
      [false, false, true, ...lossy.map(() => true), true, true, true]
    ),
    '',
    'each exit here: fused single session vs the sum of its single-layer slices (median ms), and the throughput that implies:',
    table(
      ['exit', 'MMAC', 'fused ms', 'sum of layers ms', 'GFLOP/s here', `GFLOP/s device (÷${r.deviceFactor})`],
      r.exitEdgeMs.map((e) => [
        String(e.exit),
        (e.macs / 1e6).toFixed(1),
        e.fusedMs.toFixed(3),
        e.sumOfLayersMs.toFixed(3),
        e.gflopsHere.toFixed(1),
        (e.gflopsHere / r.deviceFactor).toFixed(2)
      ]),
      [true, true, true, true, true, true]
    )
  ]
  for (const v of r.variants ?? []) {
    lines.push('', `decision table (mode edgent), the device sends ${v.codecs.join(' or ')}:`, decisionTable(v.grid), summaryLine(v.summary, v.grid.length))
  }
  lines.push(
    '',
    `decision table (mode edgent): exit and partition per latency requirement (rows) and uplink bandwidth (columns)${withCodecs ? `, the device sends any of ${r.codecs.join(', ')}` : ''}:`,
    decisionTable(r.grid),
    '',
    summaryLine(r.summary, r.grid.length)
  )
  if (r.codecNotes.length) lines.push(`codecs not offered everywhere: ${r.codecNotes.join('; ')}`)
  if (manifest) lines.push(`exit accuracies: ${manifest.exits.map((e) => `e${e.exit} ${pct(e.accuracy)}`).join(', ')}`)
  return lines.join('\n')
}

// ---------------------------------------------------------------- import and list

export type ImportCommandOptions = Omit<ImportModelOptions, 'maxBytes' | 'classes'> & { classes?: string; maxMb: number; json?: boolean }

/** `edgent model import`: the import on a private executor. */
export async function importCommand(o: ImportCommandOptions, progress: Progress = noProgress, executor?: OrtExecutor): Promise<ImportReport> {
  const { maxMb, json: _json, ...rest } = o
  return withExecutor(executor, (ex) => importModel({ ...rest, maxBytes: Math.round(maxMb * 2 ** 20) }, ex, progress))
}

export function formatImport(r: ImportReport): string {
  const m = r.manifest
  const byId = new Map(m.layers.map((l) => [l.id, l]))
  const inBytes = inputBytes(m)
  const last = m.exits[m.exits.length - 1]!
  return [
    `imported ${m.id} into ${r.dir}: ${m.layers.length} layers, ${m.exits.length} exit(s), input ${m.input.shape.join('×')}`,
    '',
    table(
      ['exit', 'layers', 'accuracy', 'output'],
      m.exits.map((e) => [
        String(e.exit),
        String(e.layers.length),
        `${pct(e.accuracy)}${e.accuracySource === 'supplied' ? ' (supplied)' : ` (measured on ${e.testSamples})`}`,
        e.output
      ]),
      [true, true, true, false]
    ),
    '',
    `cut points of exit ${last.exit} (deviceLayers = the number of layers before the cut):`,
    table(
      ['deviceLayers', 'cut tensor', 'layer', 'type', 'ops', 'bytes', 'vs input'],
      [
        ['0', m.input.name, '—', 'input', '', String(inBytes), '1.00×'],
        ...last.layers.map((id, i) => {
          const l = byId.get(id)!
          return [
            String(i + 1),
            l.output,
            l.id,
            l.type,
            l.type === 'block'
              ? Object.entries(l.ops)
                  .map(([op, n]) => `${op}×${n}`)
                  .join(' ')
              : '',
            String(l.outputBytes),
            `${(l.outputBytes / inBytes).toFixed(2)}×`
          ]
        })
      ],
      [true, false, false, false, false, true, true]
    ),
    ...(r.notes.length ? ['', ...r.notes] : [])
  ].join('\n')
}

export function formatModelList(list: readonly LibraryEntry[]): string {
  return table(
    ['model', 'source', 'input', 'exits (accuracy)', 'ONNX bytes', 'sha256'],
    list.map((e) => [
      e.id,
      e.source,
      e.inputShape.join('×'),
      e.exits.map((x) => `${x.exit}: ${pct(x.accuracy)}${x.accuracySource === 'supplied' ? ' supplied' : ''}`).join(', '),
      e.onnxBytes === null ? '—' : String(e.onnxBytes),
      e.sha256 ? e.sha256.slice(0, 12) : '—'
    ])
  )
}

/**
 * `edgent model use <id|default> [--agent <id>]`: the model a device (or every device without its
 * own choice) is planned and served with, on the running console. Agents that lack it fetch it.
 */
export async function modelUse(id: string, agent: string | undefined, dataDir: string): Promise<string> {
  const r = await callConsole(runningConsole(dataDir), 'modelUse', { model: id === 'default' ? null : id, ...(agent ? { agent } : {}) })
  const who = r.agent ? `${r.agent} is` : 'devices without their own model are'
  const using = r.devices.length ? ` (planned with it now: ${r.devices.join(', ')}; an agent that does not hold it fetches it from the console)` : ''
  return `${who} now planned and served with ${r.model}${using}`
}
