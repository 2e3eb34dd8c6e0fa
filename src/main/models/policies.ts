/**
 * Exit policies, measured (`edgent model policies`, issue 31 item 2): every exit of a model runs on
 * a labelled set; on the first half a temperature per exit is fitted and the Pareto policies of a
 * threshold grid are chosen (expected compute against accuracy); each is then measured on the second
 * half, never on the frames it was chosen on, and the set is stored in the manifest (`confidence`).
 */
import { FieldError } from '../../shared/errors.js'
import { exitPath, layerMacs } from '../../shared/contracts/manifest.js'
import { endsInSoftmax } from '../../shared/algorithms/exit-paths.js'
import { preprocess } from '../../shared/algorithms/preprocess.js'
import {
  asLogits,
  type ConfidenceMeasure,
  evaluatePolicy,
  expectedCalibrationError,
  fitTemperature,
  outcomes,
  paretoPolicies,
  THRESHOLD_GRID
} from '../../shared/algorithms/confidence.js'
import type { OrtExecutor } from '../runtime/executor.js'
import { loadManifest, readSampleSet, readShippedSamples } from '../runtime/files.js'
import { storeInManifest, type Progress } from './verify.js'

/** The thresholds policies are made of (each exit but the last takes one, or never). */

export interface PoliciesOptions {
  model: string
  images?: string
  labels?: string
  samples?: number
  /** Frames left out at the start of the set (default 0). */
  skip?: number
  measure?: ConfidenceMeasure
}

export interface PoliciesReport {
  model: string
  source: string
  measure: ConfidenceMeasure
  fitSamples: number
  heldOutSamples: number
  exits: { exit: number; macs: number; temperature: number; eceBefore: number; eceAfter: number; accuracy: number }[]
  policies: { thresholds: (number | null)[]; leave: number[]; accuracy: number; fitAccuracy: number; macs: number }[]
  stored: string
}

export async function measurePolicies(o: PoliciesOptions, ex: OrtExecutor, progress: Progress = () => undefined): Promise<PoliciesReport> {
  const loaded = loadManifest(o.model)
  const { manifest: m, dir } = loaded
  if (m.exits.length < 2) throw new FieldError(`policies: model ${m.id} has one exit: add exits first (edgent model exits add)`)
  if ((o.images === undefined) !== (o.labels === undefined)) throw new FieldError('policies: {images} and {labels} go together')
  const set = o.images ? readSampleSet(o.images, o.labels!) : readShippedSamples(loaded)
  const skip = o.skip ?? 0
  if (skip >= set.count) throw new FieldError(`policies: --skip ${skip} leaves none of the ${set.count} frames`)
  const n = Math.min(o.samples ?? set.count - skip, set.count - skip)
  if (n < 100) throw new FieldError(`policies: ${n} labelled frames are too few (at least 100: half to choose, half to measure)`)
  const measure = o.measure ?? 'max-softmax'
  // Each exit's scores for every frame (log-probabilities where the exit ends in a Softmax).
  const softmaxEnded = m.exits.map((_, j) => endsInSoftmax(m, j))
  const frames: Float32Array[][] = []
  const labels: number[] = []
  await ex.openModel(dir)
  try {
    for (let k = 0; k < n; k++) {
      const x = preprocess(m, set.images.subarray((skip + k) * set.imageElements, (skip + k + 1) * set.imageElements))
      const f: Float32Array[] = []
      for (const [j, e] of m.exits.entries())
        f.push(asLogits((await ex.runSegment(m.id, { exit: e.exit, from: 0, to: e.layers.length }, x)).output, softmaxEnded[j]!))
      frames.push(f)
      labels.push(set.labels[skip + k]!)
      if ((k + 1) % 250 === 0 || k + 1 === n) progress(k + 1, n, 'every exit on the labelled frames')
    }
  } finally {
    await ex.closeModel(m.id)
  }
  const half = Math.floor(n / 2)
  const [fitF, heldF] = [frames.slice(0, half), frames.slice(half)]
  const [fitL, heldL] = [labels.slice(0, half), labels.slice(half)]
  const cost = m.exits.map((e) => exitPath(m, e.exit).reduce((a, l) => a + layerMacs(l), 0))
  const temperatures = m.exits.map((_, j) =>
    fitTemperature(
      fitF.map((f) => f[j]!),
      fitL
    )
  )
  const fitO = outcomes(fitF, fitL, temperatures, measure)
  const heldO = outcomes(heldF, heldL, temperatures, measure)
  const front = paretoPolicies(fitO, cost, THRESHOLD_GRID)
  const policies = front.map((p) => {
    const held = evaluatePolicy(heldO, p.thresholds, cost)
    return {
      thresholds: p.thresholds.map((t, j) => (j === cost.length - 1 ? 0 : Number.isFinite(t) ? t : null)),
      leave: held.leave,
      accuracy: held.accuracy,
      fitAccuracy: p.accuracy,
      macs: held.cost
    }
  })
  const exits = m.exits.map((e, j) => {
    const hz = heldF.map((f) => f[j]!)
    return {
      exit: e.exit,
      macs: cost[j]!,
      temperature: temperatures[j]!,
      eceBefore: expectedCalibrationError(hz, heldL, 1),
      eceAfter: expectedCalibrationError(hz, heldL, temperatures[j]!),
      accuracy: heldO.correct.reduce((a, c) => a + c[j]!, 0) / heldO.correct.length
    }
  })
  const source = `${o.images ? set.source : `shipped samples (${m.samples?.images})`}${skip ? `, frames ${skip}..${skip + n - 1}` : ''}`
  const stored = storeInManifest(dir, 'confidence', {
    measure,
    temperatures,
    source,
    fitSamples: half,
    heldOutSamples: n - half,
    exitAccuracy: exits.map((e) => e.accuracy),
    policies
  })
  return { model: m.id, source, measure, fitSamples: half, heldOutSamples: n - half, exits, policies, stored }
}
