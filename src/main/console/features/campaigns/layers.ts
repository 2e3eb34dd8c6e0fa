/**
 * Campaign kinds `layers` and `model` (Edgent's offline stage). `layers`: the synthetic single-layer
 * grid timed on the edge (this console's executor) and on a device (the agent's `time-layers`
 * command); `model`: every layer of the device's model on each side (`profile-layers`). Chunk by
 * chunk, so that progress shows, a cancel takes effect between chunks, and an agent dropping out
 * leaves the measurements so far stored and the campaign marked failed. The link stage runs between
 * the grid's passes (link-stage.ts). When complete, the measurements are fitted into a calibration
 * profile (calibration/fit.ts: n, R², MAPE, held-out check) that becomes the device's current one.
 */
import type { LayerTable, TimingRegime } from '../../../../shared/contracts/agent-api.js'
import type { LinkStage } from '../../../../shared/contracts/console-api.js'
import { fitFeatures, regressionKeyOf, type Side } from '../../../../shared/algorithms/latency.js'
import type { Layer } from '../../../../shared/contracts/manifest.js'
import { SyntheticSpecSchema, buildSynthetic, specKey } from '../../../../shared/onnx/onnx-builder.js'
import { buildCostTable, type CostTable } from '../../../../shared/algorithms/planner.js'
import { fitProfile, type MeasurementRow } from '../../../calibration/fit.js'
import { heldOutKeys, layerGrid } from '../../../calibration/layers.js'
import { LINK_PASSES } from '../../../calibration/link-fit.js'
import { readHealth } from '../../../runtime/health.js'
import { measureLayers } from '../../../runtime/layer-timer.js'
import { timeSynthetic } from '../../../runtime/synthetic.js'
import type { MeasurementInput } from '../../../store/campaigns.js'
import { LinkStageRun } from './link-stage.js'
import type { CampaignRun } from './run.js'

/** Configurations per chunk: a chunk is one `time-layers` command, stored in one transaction. */
export const CHUNK = 12

/**
 * Passes a layers campaign makes over its grid. This shared machine runs at two speeds in stretches
 * of tenths of seconds to seconds; three passes, spread over the campaign, and the fastest of them
 * make a configuration's figure — the layer's cost on an uncontended CPU, as `timeit` advises
 * (held-out conv MAPE over campaigns: README, "Predictions against real plans").
 */
export const LAYER_PASSES = 3

/**
 * How a layers campaign times its grid by default: `cold`, as plans run (see TIMING_REGIMES). Measured
 * with plans campaigns (README, "Predictions against real plans"): warm timing under-predicted the
 * served model's segments in co-inference.
 */
export const LAYERS_TIMING: TimingRegime = 'cold'

/** A measurement with the configuration key it answers (synthetic specs, or a model's layers). */
type KeyedMeasurement = MeasurementInput & { key: string }

interface Chunk {
  side: Side
  /** Which pass over the grid (0 for kinds measured once). */
  pass?: number
  /** The configurations this chunk must return, in order. */
  keys: string[]
  measure(): Promise<KeyedMeasurement[]>
}

export interface LayersWork {
  chunks: Chunk[]
  /** Every configuration, in the order that decides which are held out. */
  keys: string[]
  /** The regression key (layer type) of each configuration: every fourth of each type is held out. */
  groups: string[]
  /** How the synthetic grid was timed (kind `layers`), recorded with the profile. */
  timing?: TimingRegime
}

/**
 * The synthetic grid in LAYER_PASSES passes, each chunk by chunk on the edge then on the device;
 * the fit takes each configuration's fastest pass (calibration/fit.ts, aggregatePasses).
 */
export function layersWork(run: CampaignRun, reps: number, timing: TimingRegime): LayersWork {
  const grid = layerGrid()
  const chunks: Chunk[] = []
  for (let pass = 0; pass < LAYER_PASSES; pass++) {
    for (const side of ['edge', 'device'] as const) {
      for (let i = 0; i < grid.length; i += CHUNK) {
        const specs = grid.slice(i, i + CHUNK)
        chunks.push({
          side,
          pass,
          keys: specs.map(specKey),
          measure: () => (side === 'edge' ? run.until(timeSynthetic(run.ctx.executor, specs, reps, 1, timing)) : run.timeOnDevice(specs, reps, timing))
        })
      }
    }
  }
  return { chunks, keys: grid.map(specKey), groups: grid.map((g) => g.type), timing }
}

/** Every layer of the device's model (single-layer slices), on the edge then on the device. */
export function modelWork(run: CampaignRun, reps: number): LayersWork {
  const served = run.ctx.models.forDevice(run.agentId)
  const m = served.manifest
  const layers = m.layers
  const toRows = (t: LayerTable): KeyedMeasurement[] =>
    layers.map((l) => ({
      key: JSON.stringify({ model: m.id, layer: l.id }),
      spec: { model: m.id, layer: l.id },
      regressionKey: regressionKeyOf(l),
      features: fitFeatures(l),
      runMs: t.layerMs[l.id] ?? NaN,
      ...(t.layerRepsMs?.[l.id] ? { repsMs: t.layerRepsMs[l.id] } : {}),
      loadMs: 0,
      modelBytes: 0,
      reps
    }))
  const keys = layers.map((l) => JSON.stringify({ model: m.id, layer: l.id }))
  return {
    keys,
    groups: layers.map((l) => regressionKeyOf(l)),
    chunks: [
      { side: 'edge', keys, measure: async () => toRows(await run.until(measureLayers(run.ctx.executor, m, served.samplePixels, reps))) },
      { side: 'device', keys, measure: async () => toRows(await run.profileDevice(reps, m.id)) }
    ]
  }
}

/** The layer record a measurement's configuration stands for (a synthetic block, or a layer of the device's model), for the block comparison. */
function layerOf(run: CampaignRun, config: string): Layer | null {
  let j: unknown
  try {
    j = JSON.parse(config)
  } catch {
    return null
  }
  const spec = SyntheticSpecSchema.safeParse(j)
  if (spec.success) return spec.data.type === 'block' ? buildSynthetic(spec.data).layer : null
  const ref = j as { model?: unknown; layer?: unknown }
  const m = run.ctx.models.forDevice(run.agentId).manifest
  return ref && ref.model === m.id ? (m.layers.find((l) => l.id === ref.layer) ?? null) : null
}

/** Runs the chunks and the link stage's passes, then fits and stores the profile (its fit report kept with the run). */
export async function runLayers(run: CampaignRun, reps: number, work: LayersWork): Promise<void> {
  const { store, log } = run.ctx
  const campaigns = store.campaigns
  const { id, agentId } = run
  const total = work.chunks.reduce((a, c) => a + c.keys.length, 0)
  let done = 0
  const heldOut = heldOutKeys(work.keys, work.groups)
  const passes = new Set(work.chunks.map((c) => c.pass ?? 0)).size
  // The link stage in LINK_PASSES passes: one after each pass over the grid (then the rest at the end).
  const manifest = run.ctx.models.forDevice(agentId).manifest
  const link = new LinkStageRun(run, manifest, run.ctx.maxUploadBytes)
  let linkPasses = 0
  try {
    for (const [i, chunk] of work.chunks.entries()) {
      run.check()
      if (passes > 1) run.pass = { current: (chunk.pass ?? 0) + 1, of: passes }
      const ms = await run.until(chunk.measure())
      if (ms.length !== chunk.keys.length || ms.some((m, j) => m.key !== chunk.keys[j] || !Number.isFinite(m.runMs)))
        throw new Error(`${chunk.side} answered with measurements for other configurations`)
      done += ms.length
      // Both sides' health with every chunk: a throttling device spoils a calibration silently.
      campaigns.addHealth(id, i, { device: run.ctx.fleet.health(agentId), edge: await readHealth() })
      campaigns.addMeasurements(
        id,
        chunk.side,
        chunk.pass ?? 0,
        ms.map((m) => ({ ...m, heldOut: heldOut.get(m.key) ?? false })),
        done / total
      )
      run.progress()
      const next = work.chunks[i + 1]
      if (next && (next.pass ?? 0) !== (chunk.pass ?? 0) && linkPasses < LINK_PASSES) {
        await run.until(link.pass())
        linkPasses++
      }
    }
    while (linkPasses < LINK_PASSES) {
      run.check()
      await run.until(link.pass())
      linkPasses++
    }
    const rows = campaigns.measurements(id).map<MeasurementRow>((r) => ({
      side: r.side,
      config: r.config,
      regressionKey: r.regressionKey,
      features: r.features,
      runMs: r.runMs,
      loadMs: r.loadMs,
      modelBytes: r.modelBytes,
      heldOut: r.heldOut
    }))
    const profileId = `${agentId}-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}`
    const source = { campaign: id, device: agentId, reps, ...(work.timing ? { timing: work.timing } : {}) }
    const { profile, report } = fitProfile(profileId, `layers campaign on ${agentId}`, rows, source, (config) => layerOf(run, config))
    // The link stage's fits (calibration/link-fit.ts): messaging and segments as plans run them, against this profile's predictions.
    let table: CostTable | null = null
    try {
      table = buildCostTable(manifest, profile)
    } catch {
      // the profile cannot predict the served model: no link-stage terms (the planner will not use it either)
    }
    const stage: LinkStage = table
      ? link.fit(table)
      : { messaging: null, segments: null, probes: [], why: `link stage not fitted: profile ${profileId} cannot predict model ${manifest.id}` }
    if (stage.messaging) {
      const { fixedMs, perByteMs, perIdleMs } = stage.messaging
      profile.messaging = { fixedMs, perByteMs, ...(perIdleMs !== undefined ? { perIdleMs } : {}) }
    }
    if (stage.segments) profile.segments = stage.segments
    profile.source = { ...profile.source, link: stage }
    run.fits = report
    campaigns.completeWithProfile(id, { id: profileId, agentId, createdAt: profile.createdAt!, profile })
    log.info({ campaign: id, agentId, profile: profileId }, 'campaign fitted its profile')
  } catch (err) {
    run.stopped(err)
  } finally {
    await run.release(null)
  }
}
