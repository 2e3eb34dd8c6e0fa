/**
 * Issue 31 groundwork, a measurement (not a test): every exit of a model on a labelled set, a temperature
 * per exit fitted on the first half, and the Pareto confidence policies chosen there measured on the
 * second half. `npx tsx scripts/measure/confidence-policies.mts <model dir> <images idx> <labels idx> [n]`
 */
import { OrtExecutor } from '../../src/main/runtime/executor.ts'
import { loadManifest, readSampleSet } from '../../src/main/runtime/files.ts'
import { preprocess } from '../../src/shared/algorithms/preprocess.ts'
import { exitPath, layerMacs } from '../../src/shared/contracts/manifest.ts'
import {
  asLogits,
  expectedCalibrationError,
  fitTemperature,
  outcomes,
  paretoPolicies,
  evaluatePolicy,
  staticPolicy
} from '../../src/shared/algorithms/confidence.ts'
const [dir, images, labels, nArg] = process.argv.slice(2)
const { manifest: m } = loadManifest(dir!)
const set = readSampleSet(images!, labels!)
const n = Math.min(Number(nArg ?? 4000), set.count)
const ex = new OrtExecutor()
await ex.start()
await ex.openModel(dir!)
const frames: Float32Array[][] = []
const lab: number[] = []
for (let k = 0; k < n; k++) {
  const x = preprocess(m, set.images.subarray(k * set.imageElements, (k + 1) * set.imageElements))
  const f: Float32Array[] = []
  for (const e of m.exits) f.push(asLogits((await ex.runSegment(m.id, { exit: e.exit, from: 0, to: e.layers.length }, x)).output, true))
  frames.push(f)
  lab.push(set.labels[k]!)
}
await ex.stop()
const half = Math.floor(n / 2)
const cost = m.exits.map((e) => exitPath(m, e.exit).reduce((a, l) => a + layerMacs(l), 0) / 1e6)
const E = m.exits.length
const temps = m.exits.map((_, e) =>
  fitTemperature(
    frames.slice(0, half).map((f) => f[e]!),
    lab.slice(0, half)
  )
)
console.log('exits MMAC', cost.map((c) => c.toFixed(1)).join(' '), 'T', temps.map((t) => t.toFixed(2)).join(' '))
for (let e = 0; e < E; e++) {
  const hz = frames.slice(half).map((f) => f[e]!)
  console.log(
    `exit ${e + 1} ECE held-out: T=1 ${(100 * expectedCalibrationError(hz, lab.slice(half), 1)).toFixed(2)} %, fitted ${(100 * expectedCalibrationError(hz, lab.slice(half), temps[e]!)).toFixed(2)} %`
  )
}
const grid = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995]
for (const measure of ['max-softmax', 'entropy'] as const) {
  const fitO = outcomes(frames.slice(0, half), lab.slice(0, half), temps, measure)
  const heldO = outcomes(frames.slice(half), lab.slice(half), temps, measure)
  const front = paretoPolicies(fitO, cost, grid)
  const final = evaluatePolicy(heldO, staticPolicy(E - 1, E), cost)
  console.log(`${measure}: ${front.length} Pareto policies; final exit static: ${(100 * final.accuracy).toFixed(2)} % at ${final.cost.toFixed(1)} MMAC`)
  // the cheapest policy within 0.5 points of the final exit (chosen on the fit half, measured on the held-out half)
  const ok = front.filter((p) => p.accuracy >= evaluatePolicy(fitO, staticPolicy(E - 1, E), cost).accuracy - 0.005)
  const pick = ok[0]!
  const held = evaluatePolicy(heldO, pick.thresholds, cost)
  console.log(
    `  cheapest within 0.5 pt (fit half): thresholds ${pick.thresholds.map((t) => (Number.isFinite(t) ? t : '∞')).join('/')} → held-out ${(100 * held.accuracy).toFixed(2)} % at ${held.cost.toFixed(1)} MMAC (${(final.cost / held.cost).toFixed(2)}× less compute), leave ${held.leave.map((v) => (100 * v).toFixed(0)).join('/')} %`
  )
}
