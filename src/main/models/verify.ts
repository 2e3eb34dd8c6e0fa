/**
 * Verifying a model (`edgent model verify`): every exit's split runs equal the
 * unsplit model, each exit's accuracy on a labelled set against the manifest's, and with codecs, every
 * exit × cut × lossy codec's accuracy — stored in the manifest (written to a private file and renamed).
 */
import { FieldError } from '../../shared/errors.js'
import type { Manifest } from '../../shared/contracts/manifest.js'
import { argmax, preprocess } from '../../shared/algorithms/preprocess.js'
import { loadManifest, randomSamples, readSampleSet, readShippedSamples, type SampleSet } from '../runtime/files.js'
import { OrtExecutor } from '../runtime/executor.js'
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { LOSSY_CODECS, roundTrip, type LossyCodec } from '../../shared/algorithms/codecs.js'

/** Progress of long work (done of total, and what is under way). */
export type Progress = (done: number, total: number, label: string) => void

export const noProgress: Progress = () => undefined

/** Runs `fn` on the caller's executor, or on a private one started and stopped around it. */
export async function withExecutor<T>(executor: OrtExecutor | undefined, fn: (ex: OrtExecutor) => Promise<T>, maxSessions?: number): Promise<T> {
  if (executor) return fn(executor)
  const ex = new OrtExecutor(maxSessions ? { maxSessions } : {})
  await ex.start()
  try {
    return await fn(ex)
  } finally {
    await ex.stop()
  }
}

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

/**
 * Sets one field of a model's manifest.json, the rest of the file as it is (written to a private file
 * and renamed, so a reader never sees half of it); returns the file's path.
 */
export function storeInManifest(dir: string, key: string, value: unknown): string {
  const file = join(dir, 'manifest.json')
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>
  raw[key] = value
  const tmp = `${file}.tmp-${process.pid}`
  writeFileSync(tmp, `${JSON.stringify(raw, null, 2)}\n`)
  renameSync(tmp, file)
  return file
}

export const SPLIT_TOLERANCE = 1e-4
export const ACCURACY_TOLERANCE_POINTS = 2

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!))
  return m
}

export function verdictOk(v: ExitVerdict): boolean {
  return v.maxSplitAbsDiff <= SPLIT_TOLERANCE && (v.deltaPoints === null || Math.abs(v.deltaPoints) <= ACCURACY_TOLERANCE_POINTS)
}

export async function verifyModel(opts: VerifyOptions, progress: Progress = noProgress, executor?: OrtExecutor): Promise<VerifyReport> {
  const loaded = loadManifest(opts.model)
  const { manifest } = loaded
  if ((opts.images === undefined) !== (opts.labels === undefined)) throw new FieldError('{images} and {labels} go together')
  // No labelled set stored or given: the split check runs on random inputs, and accuracy is not checked.
  const random = !opts.images && !manifest.samples
  const set: SampleSet = opts.images
    ? readSampleSet(opts.images, opts.labels!)
    : random
      ? randomSamples(manifest, opts.samples ?? 8)
      : readShippedSamples(loaded)
  const want = opts.samples ?? set.count
  if (!Number.isInteger(want) || want < 1) throw new FieldError(`{samples} must be a positive integer, got ${opts.samples}`)
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
        if (random) throw new FieldError(`{codecs} measures accuracy: model ${manifest.id} has no labelled samples stored (give {images} and {labels})`)
        // each drop's baseline: the exit's own accuracy on the same samples
        codecAccuracy = await measureCodecAccuracy(ex, manifest, set, n, inputs, (exit) => verdicts.find((v) => v.exit === exit)!.correct / n, progress)
        codecAccuracy.source = opts.images ? set.source : `shipped samples (${manifest.samples?.images})`
        stored = storeInManifest(loaded.dir, 'codecAccuracy', codecAccuracy)
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
