/**
 * Planner speed: one plan, and a configuration map over 50 kbps–100 Mbps, for a 5-exit model with a
 * 30-layer trunk, each against brute force measured in the same run.
 *
 *   brute-force plan: every (exit, deviceLayers), each latency re-predicted layer by layer;
 *   brute-force map:  that search at every 1 kbps step of the range (and still only approximate).
 *
 * Then the enlarged candidate set of issue 18: a 6-exit model with a 100-layer trunk whose every cut
 * may be sent as f32, f16, int8 or int8c (measured accuracies synthesised, some cuts over the drop
 * bound) and its input as u8 — over 1,000 candidates: the envelope-sweep map (configurationMap)
 * against the all-pairs map it replaced (configurationMapPairwise) and a brute-force grid, in one run,
 * with every grid point checked against the map.
 */
import { parseManifest, exitPath, inputBytes, type Manifest } from '../src/shared/contracts/manifest.js'
import { PAPER_2018, predictLayerMs, type CalibrationProfile } from '../src/shared/algorithms/latency.js'
import {
  buildCostTable,
  chooseCandidate,
  configurationMap,
  configurationMapPairwise,
  latencyOf,
  lookupMap,
  plan,
  type Candidate,
  type CodecOptions,
  type Conditions
} from '../src/shared/algorithms/planner.js'
import { LOSSY_CODECS } from '../src/shared/algorithms/codecs.js'
import { time } from './lib.js'

/** An AlexNet-like 30-layer trunk with side branches after layers 4, 8, 14 and 20 (by default). */
export function benchModel(o: { convs?: number; fcs?: number; trunk?: number; branches?: number[] } = {}): Manifest {
  const convs = o.convs ?? 16
  const fcs = o.fcs ?? 5
  const minTrunk = o.trunk ?? 30
  const branches = o.branches ?? [4, 8, 14, 20]
  const lastExit = branches.length + 1
  const pattern = ['conv', 'relu', 'pool', 'lrn'] as const
  const layers: Record<string, unknown>[] = []
  let shape = [1, 3, 32, 32]
  let tensor = 'input'
  const trunk: string[] = []
  const mk = (id: string, type: string, out: number[], extra: Record<string, unknown> = {}) => {
    const rec = { id, type, inputShape: shape, outputShape: out, outputBytes: out.reduce((a, b) => a * b, 1) * 4, input: tensor, output: id, ...extra }
    layers.push(rec)
    shape = out
    tensor = id
    return id
  }
  for (let i = 0; i < convs; i++) {
    const t = pattern[i % 4]!
    const [, c, h] = shape as [number, number, number, number]
    if (t === 'conv') trunk.push(mk(`conv${i}`, 'conv', [1, Math.min(c * 2, 256), h, h], { kernel: [3, 3], stride: [1, 1], filters: Math.min(c * 2, 256) }))
    else if (t === 'pool') trunk.push(mk(`pool${i}`, 'pool', [1, c, Math.max(1, h >> 1), Math.max(1, h >> 1)], { kernel: [2, 2], stride: [2, 2] }))
    else trunk.push(mk(`${t}${i}`, t, shape))
  }
  trunk.push(mk('flatten', 'flatten', [1, shape.reduce((a, b) => a * b, 1)]))
  for (let i = 0; i < fcs; i++) {
    trunk.push(mk(`fc${i}`, 'fc', [1, 512], { units: 512 }))
    trunk.push(mk(`frelu${i}`, 'relu', shape))
    if (i % 3 === 2) trunk.push(mk(`drop${i}`, 'dropout', shape))
  }
  trunk.push(mk('fcout', 'fc', [1, 10], { units: 10 }))
  while (trunk.length < minTrunk) trunk.push(mk(`tail${trunk.length}`, 'other', shape))
  const last = layers[layers.length - 1]!
  last['output'] = `exit${lastExit}`
  const exits: Record<string, unknown>[] = []
  const byId = new Map(layers.map((l) => [l['id'] as string, l]))
  branches.forEach((after, e) => {
    const at = byId.get(trunk[after - 1]!)!
    shape = at['outputShape'] as number[]
    tensor = at['output'] as string
    const ids = trunk.slice(0, after)
    ids.push(mk(`b${e + 1}_flatten`, 'flatten', [1, shape.reduce((a, b) => a * b, 1)]))
    ids.push(mk(`b${e + 1}_fc`, 'fc', [1, 10], { units: 10 }))
    const sm = mk(`b${e + 1}_softmax`, 'softmax', [1, 10])
    layers[layers.length - 1]!['output'] = `exit${e + 1}`
    ids.push(sm)
    exits.push({ exit: e + 1, layers: ids, accuracy: 0.6 + 0.05 * e, testSamples: 10000, output: `exit${e + 1}` })
  })
  exits.push({ exit: lastExit, layers: trunk, accuracy: 0.85, testSamples: 10000, output: `exit${lastExit}` })
  return parseManifest(
    { schema: 1, id: 'bench', onnx: 'model.onnx', input: { name: 'input', shape: [1, 3, 32, 32], dtype: 'float32' }, classes: ['a', 'b'], layers, exits },
    'bench'
  )
}

function bruteForcePlan(m: Manifest, profile: CalibrationProfile, cond: Conditions): { exit: number; p: number } {
  let best: { exit: number; p: number; t: number; acc: number } | null = null
  let fastest: { exit: number; p: number; t: number; acc: number } | null = null
  for (const exit of m.exits) {
    const path = exitPath(m, exit.exit)
    const n = path.length
    for (let p = 0; p <= n; p++) {
      let t = 0
      for (let j = 0; j < p; j++) t += predictLayerMs(profile, 'device', path[j]!)
      for (let j = p; j < n; j++) t += predictLayerMs(profile, 'edge', path[j]!)
      const up = p === n ? 0 : p === 0 ? inputBytes(m) : path[p - 1]!.outputBytes
      t += (up * 8) / cond.uplinkKbps + (p === n ? 0 : (path[n - 1]!.outputBytes * 8) / cond.uplinkKbps)
      const c = { exit: exit.exit, p, t, acc: exit.accuracy }
      if (t <= cond.latencyMs && (!best || c.acc > best.acc || (c.acc === best.acc && t < best.t))) best = c
      if (!fastest || t < fastest.t) fastest = c
    }
  }
  const r = (best ?? fastest)!
  return { exit: r.exit, p: r.p }
}

function bruteForceMap(cands: Candidate[], latencyMs: number, fromKbps: number, toKbps: number, stepKbps: number): number {
  let changes = 0
  let prev = ''
  for (let b = fromKbps; b <= toKbps; b += stepKbps) {
    const cond = { uplinkKbps: b, latencyMs }
    let best: Candidate | null = null
    let bestT = Infinity
    let fastest: Candidate | null = null
    let fastestT = Infinity
    for (const c of cands) {
      const t = latencyOf(c, cond)
      if (t <= latencyMs && (!best || c.accuracy > best.accuracy || (c.accuracy === best.accuracy && t < bestT))) {
        best = c
        bestT = t
      }
      if (t < fastestT) {
        fastest = c
        fastestT = t
      }
    }
    const key = `${(best ?? fastest)!.exit}/${(best ?? fastest)!.deviceLayers}/${(best ?? fastest)!.codec}`
    if (key !== prev) changes++
    prev = key
  }
  return changes
}

const LATENCY_MS = 60

export function runPlannerBench(): Record<string, unknown> {
  const m = buildModelStats()
  return m
}

/**
 * A profile where partitioning matters: the edge runs at the paper's printed Raspberry Pi speed
 * (the printed device lines are the faster ones) and the device 15 times slower.
 */
export function benchProfile(): CalibrationProfile {
  const scale = (side: CalibrationProfile['device'], k: number) =>
    Object.fromEntries(Object.entries(side).map(([key, r]) => [key, { ...r!, coefficients: r!.coefficients.map((c) => c * k), intercept: r!.intercept * k }]))
  return { ...PAPER_2018, id: 'bench', device: scale(PAPER_2018.device, 15), edge: scale(PAPER_2018.device, 1) }
}

/**
 * The enlarged set: 6 exits, a 100-layer trunk, measured codec accuracies synthesised (drops of 0–0.8
 * points by cut, so some cuts are over the 0.5-point bound), u8 input with preprocessing.
 */
function enlarged(): { m: Manifest; codecs: CodecOptions } {
  const base = benchModel({ convs: 40, fcs: 8, trunk: 100, branches: [10, 25, 40, 55, 70] })
  let k = 0
  const drops = [0, 0.1, 0.3, 0.8, 0.2, 0]
  const m = parseManifest(
    {
      ...base,
      preprocessing: { from: 'uint8', layout: 'NCHW', scale: 1 / 255, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] },
      codecAccuracy: {
        samples: 2000,
        source: 'synthetic',
        exits: base.exits.map((e) => ({
          exit: e.exit,
          f32: e.accuracy,
          byCodec: Object.fromEntries(LOSSY_CODECS.map((c) => [c, e.layers.map(() => e.accuracy - drops[k++ % drops.length]! / 100)]))
        }))
      }
    },
    'bench-enlarged'
  )
  const codecs: CodecOptions = {
    codecs: ['f32', 'f16', 'int8', 'int8c', 'u8'],
    cost: { device: { f32: 2, f16: 6, int8: 8, int8c: 9, u8: 0 }, edge: { f32: 0.5, f16: 2, int8: 2, int8c: 3, u8: 3 } }
  }
  return { m, codecs }
}

function enlargedStats(): Record<string, unknown> {
  const { m, codecs } = enlarged()
  const profile = benchProfile()
  const costs = buildCostTable(m, profile, Infinity, codecs)
  const cands = costs.exits.flat()
  if (cands.length < 1000) throw new Error(`the enlarged set has ${cands.length} candidates, fewer than 1,000`)
  const opts = { latencyMs: LATENCY_MS, fromKbps: 50, toKbps: 100_000 }
  const map = configurationMap(costs, opts)
  const pairwise = configurationMapPairwise(costs, opts)
  // every grid point (10 kbps steps) checked against the map, away from breakpoints (ties)
  const edges = map.slice(1).map((iv) => iv.fromKbps)
  let checked = 0
  for (let b = 50; b <= 100_000; b += 10) {
    if (edges.some((e) => Math.abs(b - e) <= 1e-6 * e)) continue
    const iv = lookupMap(map, b)!
    const c = chooseCandidate(costs, { uplinkKbps: b, latencyMs: LATENCY_MS })!
    if (iv.exit !== c.exit || iv.deviceLayers !== c.deviceLayers || iv.codec !== c.codec)
      throw new Error(`map and planner disagree at ${b} kbps: ${iv.exit}/${iv.deviceLayers}/${iv.codec} vs ${c.exit}/${c.deviceLayers}/${c.codec}`)
    checked++
  }
  const same =
    JSON.stringify(map.map((iv) => [iv.exit, iv.deviceLayers, iv.codec, iv.feasible])) ===
    JSON.stringify(pairwise.map((iv) => [iv.exit, iv.deviceLayers, iv.codec, iv.feasible]))
  const ours = time('configuration map, enlarged set (envelope sweep)', () => configurationMap(costs, opts), 5, 7)
  const pairs = time('configuration map, enlarged set (all pairs)', () => configurationMapPairwise(costs, opts), 1, 3)
  const grid = time('brute-force map, enlarged set, 10 kbps grid', () => bruteForceMap(cands, LATENCY_MS, 50, 100_000, 10), 1, 3)
  const codecsUsed = [...new Set(map.map((iv) => iv.codec))]
  return {
    candidates: cands.length,
    exits: m.exits.length,
    trunkLayers: m.exits[m.exits.length - 1]!.layers.length,
    intervals: map.length,
    codecsInMap: codecsUsed,
    sameIntervalsAsPairwise: same,
    gridPointsChecked: checked,
    envelopeMs: ours.medianUs / 1000,
    pairwiseMs: pairs.medianUs / 1000,
    bruteForceGridMs: grid.medianUs / 1000,
    envelopeUnder10Ms: ours.medianUs < 10_000,
    speedupVsPairwise: pairs.medianUs / ours.medianUs,
    speedupVsGrid: grid.medianUs / ours.medianUs
  }
}

function buildModelStats(): Record<string, unknown> {
  const m = benchModel()
  const profile = benchProfile()
  const cond = { uplinkKbps: 500, latencyMs: LATENCY_MS }
  const costs = buildCostTable(m, profile)
  const cands = costs.exits.flat()
  const ours = plan(costs, cond)!
  const brute = bruteForcePlan(m, profile, cond)
  if (ours.exit !== brute.exit || ours.deviceLayers !== brute.p) throw new Error('planner and brute force disagree')

  const planCached = time('plan (cost table cached)', () => plan(costs, cond), 20000)
  const planCold = time('plan (cost table built each time)', () => plan(buildCostTable(m, profile), cond), 2000)
  const planBrute = time('brute-force plan', () => bruteForcePlan(m, profile, cond), 200)
  const map = configurationMap(costs, { latencyMs: LATENCY_MS, fromKbps: 50, toKbps: 100_000 })
  const mapOurs = time(
    'configuration map 50 kbps–100 Mbps (exact)',
    () => configurationMap(costs, { latencyMs: LATENCY_MS, fromKbps: 50, toKbps: 100_000 }),
    5,
    5
  )
  let gridChanges = 0
  const mapBrute = time('brute-force map, 1 kbps grid', () => (gridChanges = bruteForceMap(cands, LATENCY_MS, 50, 100_000, 1)), 1, 3)
  const result = {
    latencyMs: LATENCY_MS,
    model: { exits: m.exits.length, trunkLayers: m.exits[m.exits.length - 1]!.layers.length, candidates: cands.length },
    plan: {
      cachedUs: planCached.medianUs,
      coldUs: planCold.medianUs,
      bruteForceUs: planBrute.medianUs,
      speedupCached: planBrute.medianUs / planCached.medianUs,
      speedupCold: planBrute.medianUs / planCold.medianUs
    },
    map: {
      intervals: map.length,
      exactUs: mapOurs.medianUs,
      bruteForceGridUs: mapBrute.medianUs,
      gridPoints: 100_000 - 50 + 1,
      gridPlanChanges: gridChanges,
      speedup: mapBrute.medianUs / mapOurs.medianUs
    },
    enlarged: enlargedStats()
  }
  return result
}
