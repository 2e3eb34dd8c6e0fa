/**
 * Decision tables (`edgent model decisions`): every layer timed on this machine (the edge) and a
 * device so many times slower, and the planner's choice over a bandwidth × requirement grid.
 */
import { FieldError } from '../../shared/errors.js'
import { exitPath, inputBytes, layerMacs } from '../../shared/contracts/manifest.js'
import { measureLayers } from '../runtime/layer-timer.js'
import { buildCostTable, plan, type LayerLatencySource, type Plan } from '../../shared/algorithms/planner.js'
import { loadManifest, readModelSamples } from '../runtime/files.js'
import type { OrtExecutor } from '../runtime/executor.js'
import type { Codec } from '../../shared/algorithms/codecs.js'
import { offlineCodecOptions } from '../../shared/algorithms/codec-cost.js'
import { noProgress, withExecutor, type Progress } from './verify.js'

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
  /** Also offer the model's confidence-exit policies. */
  policies?: boolean
  json?: boolean
}

export type DecisionCell = Pick<Plan, 'exit' | 'deviceLayers' | 'layers' | 'codec' | 'feasible' | 'predictedMs' | 'accuracy'> & {
  latencyMs: number
  uplinkKbps: number
  /** The confidence-exit policy chosen (its index), when one is. */
  policy?: number
}
export interface DecisionSummary {
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
  if (!(opts.deviceFactor > 0)) throw new FieldError(`{deviceFactor} must be a positive number, got ${opts.deviceFactor}`)
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
      const costs = buildCostTable(
        manifest,
        source,
        Infinity,
        offered && set.length > 1 ? { ...offered, codecs: set } : undefined,
        opts.policies ? {} : undefined
      )
      if (costs.policyNote) notes.add(`policies: ${costs.policyNote}`)
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
            accuracy: p.accuracy,
            ...(p.policy ? { policy: p.policy.index } : {})
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
