/**
 * Campaigns (Edgent's offline stage as a product feature). Kind `layers`: the synthetic single-layer
 * grid timed on the edge (this console's executor) and on a device (the agent's `time-layers`
 * command); kind `model`: every layer of the device's model on each side (`profile-layers`). Chunk by chunk so that progress shows, a cancel takes effect between chunks, and an agent
 * dropping out leaves the measurements so far stored and the campaign marked failed. When complete,
 * the measurements are fitted into a calibration profile (n, R², MAPE, held-out check) that becomes
 * the device's current profile.
 */
import { readHealth } from '../runtime/health.js'
import { healthWarnings } from './health-warnings.js'
import type { Health } from '../../shared/messages.js'
import { describeMachine, type Machine } from '../runtime/machine.js'
import type { CampaignStatus, InferRow, InferSummary, LatencySource, LinkStage, PlansSummary, SweepPoint, SweepSummary } from '../../shared/console-api.js'
import { buildCostTable, type CostTable } from '../../shared/planner.js'
import { type CampaignInfer, LINK_PASSES, LinkStageRun } from './messaging.js'
import {
  PLANS_DEFAULT_KBPS,
  PLANS_PASSES,
  PLANS_WARMUP,
  planErrors,
  planPoint,
  plansSummary,
  scorePredictor,
  speedDrift,
  type PredictorTable
} from './plans.js'
import { createHash, randomUUID } from 'node:crypto'
import { median } from 'simple-statistics'
import type { CommandReply, LayerTable, TimingRegime } from '../../shared/agent-api.js'
import { UserError, errorMessage } from '../../shared/errors.js'
import { fitFeatures, regressionKeyOf, type CalibrationProfile, type Regressor, type Side } from '../../shared/latency.js'
import type { Layer, Manifest } from '../../shared/manifest.js'
import { SyntheticSpecSchema, buildSynthetic, specKey, type SyntheticSpec } from '../../shared/onnx-builder.js'
import type { OrtExecutor } from '../runtime/executor.js'
import { measureLayers } from '../runtime/layer-timer.js'
import { timeSynthetic } from '../runtime/synthetic.js'
import type { CampaignSummary, MeasurementInput } from '../store/campaigns.js'
import type { Store } from '../store/store.js'
import { fitProfile, type FitReport, type MeasurementRow } from './fit.js'
import { layerGrid } from './layers.js'

export const CHUNK = 12

/**
 * Passes a layers campaign makes over its grid. This shared machine runs at two speeds in stretches
 * of tenths of seconds to seconds (the same 5×5 conv: 31 µs, then 62 µs for several sessions in a
 * row, then 31 µs again); three passes, spread over the campaign, and the fastest of them make a
 * configuration's figure — the layer's cost on an uncontended CPU, as `timeit` advises. Held-out
 * conv MAPE went from 8.4–22.9 % over 8 campaigns (one pass, three back-to-back sessions per
 * configuration) to 7.1–11.4 % over 4 (README).
 */
export const LAYER_PASSES = 3

export type { CampaignStatus } from '../../shared/console-api.js'

export interface CampaignDeps {
  store: Store
  executor: OrtExecutor
  /** The model a device is planned with, for the `model` kind, and one sample's raw pixels (the input it times). */
  modelFor(deviceId: string): { readonly manifest: Manifest; readonly samplePixels: Uint8Array }
  /** Times every layer of the device's model on the device (the agent's `profile-layers` command). */
  profileDevice(deviceId: string, reps: number, model: string): Promise<LayerTable>
  /** Times specs on the device (the agent's `time-layers` command). */
  timeOnDevice(deviceId: string, specs: SyntheticSpec[], reps: number, regime: TimingRegime): Promise<CommandReply<'time-layers'>>
  /** Sets a device's emulated uplink (the agent's `set-uplink` command); answers the previous value. */
  setUplink(deviceId: string, kbps: number): Promise<CommandReply<'set-uplink'>>
  /** Co-inference through the console (kinds `sweep` and `plans`). */
  infer(opts: CampaignInfer): Promise<{ summary: InferSummary; rows: InferRow[] }>
  /** The device's cost table from its latency source without online correction, and which source that is (kind `plans`). */
  rawCosts(deviceId: string): Promise<{ table: CostTable; source: LatencySource }>
  /** The largest activation the console accepts, bytes (plans sending more cannot run). */
  maxUploadBytes: number
  /** Every latency source that could plan the device, as raw cost tables (kind `plans` scores each). */
  predictorTables(deviceId: string): PredictorTable[]
  /** After a plans campaign: the source profile predicts with its regressor of least end-to-end error (planning.ts). */
  chooseRegressor(
    deviceId: string,
    profileId: string,
    scored: readonly { profileId?: string; regressor?: Regressor; e2eMedian: number | null }[],
    campaignId: string
  ): { regressor: Regressor; changed: boolean; why: string }
  onProgress(status: CampaignStatus): void
  /** The device's hardware and OS as its hello announced them (null: an agent that does not say). */
  deviceMachine(deviceId: string): Machine | null
  /** The device's latest health report (null: none yet). */
  deviceHealth(deviceId: string): Health | null
  /** Within one campaign's work: `p`, given up (a CancelledError) when the console stops. */
  until?<T>(p: Promise<T>): Promise<T>
}

/**
 * The paper's bandwidth range (50 kbps–1.5 Mbps) plus two fast links where the edge wins with this
 * model's 3 kB input, and requirements around the shipped model's latencies (2–20 ms here; the
 * paper's Pi took hundreds of ms for its AlexNet, hence its 100–1000 ms requirements).
 */
export const SWEEP_DEFAULTS = { bandwidthsKbps: [50, 100, 250, 500, 1000, 1500, 10_000, 100_000], latenciesMs: [5, 10, 20, 50, 100] } as const

export interface SweepOptions {
  bandwidthsKbps?: readonly number[]
  latenciesMs?: readonly number[]
  /** Kind `plans`: the fixed uplink every plan co-infers at, kbit/s (default PLANS_DEFAULT_KBPS). */
  uplinkKbps?: number
  /** Kind `layers`: how each configuration's runs are timed (default LAYERS_TIMING). */
  timing?: TimingRegime
}

/**
 * How a layers campaign times its grid by default: `cold`, as plans run (see TIMING_REGIMES). Measured
 * with plans campaigns (README, "Predictions against real plans"): warm timing under-predicted the
 * served model's segments in co-inference.
 */
export const LAYERS_TIMING: TimingRegime = 'cold'

/** A campaign that runs: its work, and the signal that abandons whatever it awaits (the console stopping). */
interface Running {
  done: Promise<void>
  abort: AbortController
}

/** How long the console's stop waits for a device's uplink to be set back (an agent that no longer answers must not hold the stop). */
const RESTORE_ON_STOP_MS = 5_000

export class Campaigns {
  private readonly cancelled = new Set<string>()
  /** Campaigns ended by the console's stop: stored as interrupted, not as cancelled or failed. */
  private readonly interrupted = new Set<string>()
  private readonly running = new Map<string, Running>()
  private readonly fits = new Map<string, FitReport[]>()
  /** The pass under way of each running multi-pass campaign. */
  private readonly passes = new Map<string, { current: number; of: number }>()

  constructor(private readonly deps: CampaignDeps) {}

  /** Starts a campaign; resolves with its id at once, the work goes on in the background. */
  begin(deviceId: string, kind: string, reps: number, sweep: SweepOptions = {}): string {
    if (kind !== 'layers' && kind !== 'model' && kind !== 'sweep' && kind !== 'plans')
      throw new UserError(`unknown campaign kind "${kind}" (kinds: layers, model, sweep, plans)`)
    if (!Number.isInteger(reps) || reps < 1 || reps > 200) throw new UserError(`reps must be 1..200, got ${reps}`)
    const grid = {
      bandwidthsKbps: [...(sweep.bandwidthsKbps ?? SWEEP_DEFAULTS.bandwidthsKbps)],
      latenciesMs: [...(sweep.latenciesMs ?? SWEEP_DEFAULTS.latenciesMs)]
    }
    if (kind === 'sweep') {
      for (const [name, list, lo, hi] of [
        ['bandwidths', grid.bandwidthsKbps, 1, 1e7],
        ['latency requirements', grid.latenciesMs, 1, 3.6e6]
      ] as const) {
        if (list.length < 1 || list.length > 50) throw new UserError(`a sweep needs 1..50 ${name}, got ${list.length}`)
        if (list.some((v) => !Number.isFinite(v) || v < lo || v > hi))
          throw new UserError(`sweep ${name} must be numbers in ${lo}..${hi}, got ${list.join(', ')}`)
      }
    }
    const uplinkKbps = sweep.uplinkKbps ?? PLANS_DEFAULT_KBPS
    if (sweep.uplinkKbps !== undefined && kind !== 'plans') throw new UserError('a fixed uplink is for plans campaigns')
    const timing = sweep.timing ?? LAYERS_TIMING
    if (sweep.timing !== undefined && kind !== 'layers') throw new UserError('a timing regime is for layers campaigns')
    if (timing !== 'warm' && timing !== 'cold') throw new UserError(`timing must be warm or cold, got ${String(timing)}`)
    if (!Number.isFinite(uplinkKbps) || uplinkKbps < 1 || uplinkKbps > 1e7)
      throw new UserError(`a plans campaign's uplink must be 1..10000000 kbps, got ${uplinkKbps}`)
    const id = randomUUID()
    // Both sides' hardware and OS as they were when it ran: exported with the measurements.
    const machines = { edge: describeMachine(), device: this.deps.deviceMachine(deviceId) }
    const params =
      kind === 'layers'
        ? { reps, grid: 'layers-v4', timing, machines }
        : kind === 'model'
          ? { reps, model: this.deps.modelFor(deviceId).manifest.id, machines }
          : kind === 'plans'
            ? { inferencesPerPlan: reps, uplinkKbps, model: this.deps.modelFor(deviceId).manifest.id, machines }
            : { inferencesPerPoint: reps, ...grid, machines }
    this.deps.store.campaigns.create(id, deviceId, kind, params)
    const abort = new AbortController()
    const deps = this.guarded(abort.signal)
    const done =
      kind === 'sweep'
        ? this.runSweep(id, deps, deviceId, reps, grid)
        : kind === 'plans'
          ? this.runPlans(id, deps, deviceId, reps, uplinkKbps)
          : this.run(id, deps, deviceId, reps, kind === 'layers' ? this.layersWork(deps, deviceId, reps, timing) : this.modelWork(deps, deviceId, reps))
    this.running.set(id, { done, abort })
    void done.finally(() => this.running.delete(id))
    return id
  }

  /** Nothing to start: campaigns begin on request. */
  start(): void {}

  /** The ids of the campaigns running now. */
  get active(): string[] {
    return [...this.running.keys()]
  }

  /**
   * The console stops: every running campaign is abandoned where it waits (an agent's command, a
   * batch of co-inferences, a timing on the edge), stored as interrupted with what it measured so
   * far, its device's uplink set back; resolves when none is left running.
   */
  async stop(): Promise<void> {
    const now = [...this.running.entries()]
    for (const [id, r] of now) {
      this.interrupted.add(id)
      this.cancelled.add(id)
      r.abort.abort()
    }
    await Promise.allSettled(now.map(([, r]) => r.done))
  }

  /**
   * The dependencies one campaign works through: every call that waits on a device or the edge is
   * given up when `signal` fires (a call made after it is refused at once), except setting the uplink
   * back, which is still tried, for at most RESTORE_ON_STOP_MS.
   */
  private guarded(signal: AbortSignal): CampaignDeps {
    const d = this.deps
    const until = <T>(p: Promise<T>): Promise<T> => {
      if (signal.aborted) {
        p.catch(() => undefined)
        return Promise.reject(new CancelledError())
      }
      return new Promise<T>((resolve, reject) => {
        const onAbort = () => reject(new CancelledError())
        signal.addEventListener('abort', onAbort, { once: true })
        p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
      })
    }
    const guard =
      <A extends unknown[], T>(f: (...a: A) => Promise<T>) =>
      (...a: A): Promise<T> =>
        signal.aborted ? Promise.reject(new CancelledError()) : until(f(...a))
    return {
      ...d,
      profileDevice: guard(d.profileDevice),
      timeOnDevice: guard(d.timeOnDevice),
      infer: guard(d.infer),
      rawCosts: guard(d.rawCosts),
      setUplink: (id, kbps) => (signal.aborted ? withTimeout(d.setUplink(id, kbps), RESTORE_ON_STOP_MS) : until(d.setUplink(id, kbps))),
      until
    }
  }

  /**
   * Kind `sweep`: for every bandwidth, the device's emulated uplink is set to it, and for every
   * requirement a batch of co-inferences is planned at that bandwidth; each point records the plan,
   * its prediction and the measured end-to-end latencies (stored as the point's run). The uplink
   * goes back to what it was, whatever happens. Progress after each point; a cancel or a failure
   * keeps the points so far.
   */
  private async runSweep(
    id: string,
    deps: CampaignDeps,
    deviceId: string,
    count: number,
    grid: { bandwidthsKbps: number[]; latenciesMs: number[] }
  ): Promise<void> {
    const campaigns = this.deps.store.campaigns
    const summary: SweepSummary = { ...grid, inferencesPerPoint: count, points: [], medianRelError: null }
    const errors: number[] = []
    const total = grid.bandwidthsKbps.length * grid.latenciesMs.length
    const save = (progress: number) => campaigns.saveProgress(id, progress, summary)
    let restore: number | null = null
    try {
      for (const kbps of grid.bandwidthsKbps) {
        if (this.cancelled.has(id)) throw new CancelledError()
        const set = await deps.setUplink(deviceId, kbps)
        if (restore === null) restore = set.previousKbps
        for (const latencyMs of grid.latenciesMs) {
          if (this.cancelled.has(id)) throw new CancelledError()
          const { summary: s, rows } = await deps.infer({ agent: deviceId, count, latencyMs, uplinkKbps: kbps, campaignId: id })
          if (!rows.length) throw new Error(`no co-inference completed at ${kbps} kbps, ${latencyMs} ms (${s.lost} lost)`)
          const rel = rows.map((r) => Math.abs(r.predictedMs - r.e2eMs) / r.e2eMs)
          errors.push(...rel)
          const point: SweepPoint = {
            uplinkKbps: kbps,
            latencyMs,
            runId: s.runId,
            exit: s.plan.exit,
            deviceLayers: s.plan.deviceLayers,
            layers: s.plan.layers,
            feasible: s.plan.feasible,
            predictedMs: median(rows.map((r) => r.predictedMs)),
            measuredMs: median(rows.map((r) => r.e2eMs)),
            relError: median(rel),
            metShare: s.metShare,
            accuracy: s.accuracy,
            completed: rows.length
          }
          summary.points.push(point)
          summary.medianRelError = median(errors)
          this.deps.store.campaigns.addHealth(id, summary.points.length - 1, { device: this.deps.deviceHealth(deviceId), edge: await readHealth() })
          save(summary.points.length / total)
          this.deps.onProgress(this.status(id)!)
        }
      }
      campaigns.finish(id, 'done', null, summary)
    } catch (err) {
      this.stopped(id, err, summary)
    } finally {
      await this.release(id, deps, deviceId, restore)
    }
  }

  /**
   * Kind `plans` (plans.ts): every (exit, deviceLayers) of the served model co-infers `count` times,
   * pinned, at the fixed uplink, without teaching the online correction; each point compares the
   * raw prediction with the measured medians. The uplink goes back to what it was, whatever happens.
   */
  private async runPlans(id: string, deps: CampaignDeps, deviceId: string, count: number, uplinkKbps: number): Promise<void> {
    const campaigns = this.deps.store.campaigns
    let summary: PlansSummary | undefined
    let restore: number | null = null
    try {
      const { table, source } = await deps.rawCosts(deviceId)
      const s = plansSummary(uplinkKbps, count, source, table)
      summary = s
      // Every (exit, deviceLayers), sent as f32 (the segments' predictions are what a plans campaign
      // checks; a codec changes only the bytes on the link). Plans that send more than the console
      // accepts cannot run: listed, not measured.
      const plans = table.exits.flat().filter((c) => c.codec === 'f32')
      const candidates = plans.filter((c) => c.sendable)
      s.unsendable = plans.filter((c) => !c.sendable).map((c) => ({ exit: c.exit, deviceLayers: c.deviceLayers, bytes: c.uploadBytes }))
      const probes = source.kind === 'profile' && source.profileId ? this.linkProbes(source.profileId) : []
      restore = (await deps.setUplink(deviceId, uplinkKbps)).previousKbps
      const got = new Map<string, { runIds: string[]; rows: InferRow[] }>()
      const keyOf = (c: { exit: number; deviceLayers: number }) => `${c.exit}/${c.deviceLayers}`
      for (let pass = 0; pass < PLANS_PASSES; pass++) {
        this.passes.set(id, { current: pass + 1, of: PLANS_PASSES })
        for (const [i, c] of candidates.entries()) {
          if (this.cancelled.has(id)) throw new CancelledError()
          const { summary: r, rows } = await deps.infer({
            agent: deviceId,
            count: count + PLANS_WARMUP,
            latencyMs: 3_600_000,
            uplinkKbps,
            plan: { exit: c.exit, deviceLayers: c.deviceLayers },
            campaignId: id,
            learn: false
          })
          // The first inferences of a plan run colder (a fresh session, caches left by the other plans): stored with the run, left out of its medians.
          const measured = rows.slice(PLANS_WARMUP)
          if (!measured.length) throw new Error(`no co-inference completed for exit ${c.exit} with ${c.deviceLayers} device layers (${r.lost} lost)`)
          const g = got.get(keyOf(c)) ?? { runIds: [], rows: [] }
          g.runIds.push(r.runId)
          g.rows.push(...measured)
          got.set(keyOf(c), g)
          campaigns.saveProgress(id, (pass * candidates.length + i + 1) / (PLANS_PASSES * candidates.length))
          if (i % 8 === 7) this.deps.onProgress(this.status(id)!)
        }
        // After each pass, every plan's medians over the passes so far.
        s.points = candidates.map((c) => planPoint(table, c.exit, c.deviceLayers, uplinkKbps, got.get(keyOf(c))!.runIds, got.get(keyOf(c))!.rows))
        s.errors = planErrors(s.points)
        if (probes.length) {
          const own = s.points.filter((x) => !probes.some((q) => q.exit === x.exit && q.deviceLayers === x.deviceLayers))
          s.errorsWithoutProbes = { ...planErrors(own), probes: probes.map((q) => ({ exit: q.exit, deviceLayers: q.deviceLayers })) }
          s.drift = speedDrift(s.points, probes)
        }
        campaigns.addHealth(id, pass, { device: this.deps.deviceHealth(deviceId), edge: await readHealth() })
        campaigns.saveProgress(id, (pass + 1) / PLANS_PASSES, s)
        this.deps.onProgress(this.status(id)!)
      }
      const scored = this.deps.predictorTables(deviceId).map((p) => ({ ...p, errors: scorePredictor(p.table, s.points, uplinkKbps) }))
      if (source.kind === 'profile' && source.profileId) {
        // The measurements stand whatever happens to the choice (a profile removed meanwhile, say).
        try {
          s.choice = this.deps.chooseRegressor(
            deviceId,
            source.profileId,
            scored.map((x) => ({ profileId: x.profileId, regressor: x.regressor, e2eMedian: x.errors.e2e.median })),
            id
          )
        } catch (err) {
          s.choice = { regressor: 'linear', changed: false, why: `no choice made: ${errorMessage(err)}` }
        }
      }
      // What the device plans with now (after the choice): that profile, with its regressor.
      const nowRow = this.deps.store.profiles.current(deviceId)
      const nowRegressor = nowRow ? nowRow.profile.regressor : null
      s.predictors = scored.map((x) => ({
        name: x.name,
        errors: x.errors,
        ...(x.gridHeldOut ? { gridHeldOut: x.gridHeldOut } : {}),
        ...(nowRow && x.profileId === nowRow.id && x.regressor === nowRegressor ? { current: true } : {})
      }))
      campaigns.finish(id, 'done', null, s)
    } catch (err) {
      this.stopped(id, err, summary)
    } finally {
      await this.release(id, deps, deviceId, restore)
    }
  }

  /** Ends a campaign that threw: cancelled (no error), or failed saying why; what it measured is kept. */
  private stopped(id: string, err: unknown, summary?: CampaignSummary): void {
    if (this.interrupted.has(id)) {
      this.deps.store.campaigns.finish(id, 'interrupted', 'the console stopped while it ran (its measurements are kept)', summary)
      return
    }
    const cancelled = err instanceof CancelledError
    this.deps.store.campaigns.finish(id, cancelled ? 'cancelled' : 'failed', cancelled ? null : errorMessage(err), summary)
  }

  /** Whatever happened: the device's uplink back to what it was (when the campaign set it), the campaign's state forgotten, its end announced. */
  private async release(id: string, deps: CampaignDeps, deviceId: string, restoreKbps: number | null): Promise<void> {
    if (restoreKbps !== null) await deps.setUplink(deviceId, restoreKbps).catch(() => undefined)
    this.cancelled.delete(id)
    this.interrupted.delete(id)
    this.passes.delete(id)
    this.deps.onProgress(this.status(id)!)
  }

  /** The probe plans of a profile's link stage, with what it measured (none when it had none). */
  private linkProbes(profileId: string): LinkStage['probes'] {
    const row = this.deps.store.profiles.get(profileId)
    return row ? (linkOf(row.profile)?.probes ?? []) : []
  }

  cancel(id: string): void {
    if (!this.status(id)) throw new UserError(`unknown campaign "${id}"`)
    this.cancelled.add(id)
  }

  /**
   * The synthetic grid in LAYER_PASSES passes, each chunk by chunk on the edge then on the device;
   * the fit takes each configuration's fastest pass (see fit.ts, aggregatePasses).
   */
  private layersWork(deps: CampaignDeps, deviceId: string, reps: number, timing: TimingRegime): Work {
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
            measure: () =>
              side === 'edge' ? deps.until!(timeSynthetic(deps.executor, specs, reps, 1, timing)) : deps.timeOnDevice(deviceId, specs, reps, timing)
          })
        }
      }
    }
    return { chunks, keys: grid.map(specKey), groups: grid.map((g) => g.type), timing }
  }

  /** Every layer of the device's model (single-layer slices), on the edge then on the device. */
  private modelWork(deps: CampaignDeps, deviceId: string, reps: number): Work {
    const served = this.deps.modelFor(deviceId)
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
        { side: 'edge', keys, measure: async () => toRows(await deps.until!(measureLayers(deps.executor, m, served.samplePixels, reps))) },
        { side: 'device', keys, measure: async () => toRows(await deps.profileDevice(deviceId, reps, m.id)) }
      ]
    }
  }

  /** The layer record a measurement's configuration stands for (a synthetic block, or a layer of the device's model), for the block comparison. */
  private layerOf(deviceId: string, config: string): Layer | null {
    let j: unknown
    try {
      j = JSON.parse(config)
    } catch {
      return null
    }
    const spec = SyntheticSpecSchema.safeParse(j)
    if (spec.success) return spec.data.type === 'block' ? buildSynthetic(spec.data).layer : null
    const ref = j as { model?: unknown; layer?: unknown }
    const m = this.deps.modelFor(deviceId).manifest
    return ref && ref.model === m.id ? (m.layers.find((l) => l.id === ref.layer) ?? null) : null
  }

  private async run(id: string, deps: CampaignDeps, deviceId: string, reps: number, work: Work): Promise<void> {
    const campaigns = this.deps.store.campaigns
    const total = work.chunks.reduce((a, c) => a + c.keys.length, 0)
    let done = 0
    const heldOut = heldOutKeys(work.keys, work.groups)
    const passes = new Set(work.chunks.map((c) => c.pass ?? 0)).size
    // The link stage (messaging.ts) in LINK_PASSES passes: one after each pass over the grid (then the rest at the end).
    const manifest = this.deps.modelFor(deviceId).manifest
    const link = new LinkStageRun(deps, manifest, deviceId, id, this.deps.maxUploadBytes)
    let linkPasses = 0
    try {
      for (const [i, chunk] of work.chunks.entries()) {
        if (this.cancelled.has(id)) throw new CancelledError()
        if (passes > 1) this.passes.set(id, { current: (chunk.pass ?? 0) + 1, of: passes })
        const ms = await deps.until!(chunk.measure())
        if (ms.length !== chunk.keys.length || ms.some((m, j) => m.key !== chunk.keys[j] || !Number.isFinite(m.runMs)))
          throw new Error(`${chunk.side} answered with measurements for other configurations`)
        done += ms.length
        // Both sides' health with every chunk: a throttling device spoils a calibration silently.
        campaigns.addHealth(id, i, { device: this.deps.deviceHealth(deviceId), edge: await readHealth() })
        campaigns.addMeasurements(
          id,
          chunk.side,
          chunk.pass ?? 0,
          ms.map((m) => ({ ...m, heldOut: heldOut.get(m.key) ?? false })),
          done / total
        )
        this.deps.onProgress(this.status(id)!)
        const next = work.chunks[i + 1]
        if (next && (next.pass ?? 0) !== (chunk.pass ?? 0) && linkPasses < LINK_PASSES) {
          await deps.until!(link.pass())
          linkPasses++
        }
      }
      while (linkPasses < LINK_PASSES) {
        if (this.cancelled.has(id)) throw new CancelledError()
        await deps.until!(link.pass())
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
      const profileId = `${deviceId}-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}`
      const source = { campaign: id, device: deviceId, reps, ...(work.timing ? { timing: work.timing } : {}) }
      const { profile, report } = fitProfile(profileId, `layers campaign on ${deviceId}`, rows, source, (config) => this.layerOf(deviceId, config))
      // The link stage's fits (messaging.ts): messaging and segments as plans run them, against this profile's predictions.
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
      this.fits.set(id, report)
      campaigns.completeWithProfile(id, { id: profileId, deviceId, createdAt: profile.createdAt!, profile })
    } catch (err) {
      this.stopped(id, err)
    } finally {
      await this.release(id, deps, deviceId, null)
    }
  }

  status(id: string): CampaignStatus | undefined {
    const { campaigns, profiles } = this.deps.store
    const c = campaigns.get(id)
    if (!c) return undefined
    const p = profiles.byCampaign(id)
    let fits = this.fits.get(id) ?? null
    if (!fits && p) fits = reportFromProfile(p.profile)
    return {
      id: c.id,
      deviceId: c.deviceId,
      kind: c.kind,
      status: c.status,
      progress: c.progress,
      startedAt: c.startedAt,
      finishedAt: c.finishedAt,
      error: c.error,
      profileId: p?.id ?? null,
      fits,
      measurements: campaigns.measurementCount(id),
      sweep: c.kind === 'sweep' ? (c.summary as SweepSummary | null) : null,
      plans: c.kind === 'plans' ? (c.summary as PlansSummary | null) : null,
      pass: c.status === 'running' ? (this.passes.get(id) ?? null) : null,
      warnings: healthWarnings(campaigns.health(id)),
      link: p ? linkOf(p.profile) : null
    }
  }

  list(): CampaignStatus[] {
    return this.deps.store.campaigns.ids().map((id) => this.status(id)!)
  }
}

class CancelledError extends Error {}

/** `p`, or a rejection naming the wait after `ms`. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}

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

interface Work {
  chunks: Chunk[]
  /** Every configuration, in the order that decides which are held out. */
  keys: string[]
  /** The regression key (layer type) of each configuration: every fourth of each type is held out. */
  groups: string[]
  /** How the synthetic grid was timed (kind `layers`), recorded with the profile. */
  timing?: TimingRegime
}

/**
 * Held-out configurations: a quarter of each group (rounded down), chosen by the SHA-256 of each
 * configuration's key — fixed for a grid, spread over it. (Every fourth in grid order would hold
 * out one corner of the grid, e.g. all the widest fc layers, and test extrapolation instead.)
 * A group of fewer than four configurations (two LRN layers in the served model) is all fitted.
 */
export function heldOutKeys(keys: readonly string[], groups: readonly string[]): Map<string, boolean> {
  const byGroup = new Map<string, string[]>()
  for (const [i, k] of keys.entries()) byGroup.set(groups[i]!, [...(byGroup.get(groups[i]!) ?? []), k])
  const out = new Map<string, boolean>(keys.map((k) => [k, false]))
  const rank = (k: string) => createHash('sha256').update(k).digest('hex')
  for (const list of byGroup.values()) {
    const sorted = [...list].sort((a, b) => (rank(a) < rank(b) ? -1 : 1))
    for (const k of sorted.slice(0, Math.floor(list.length / 4))) out.set(k, true)
  }
  return out
}

/** The link stage a profile's campaign ran (its `source.link`), if any. */
function linkOf(profile: CalibrationProfile): LinkStage | null {
  const m = profile.source?.['link'] as LinkStage | undefined
  return m && typeof m === 'object' && 'probes' in m ? m : null
}

/** A stored profile's fit report (the figures each regression keeps beside its coefficients). */
function reportFromProfile(profile: CalibrationProfile): FitReport[] {
  const p = profile as unknown as Record<
    'device' | 'edge',
    Record<string, { n?: number; r2?: number | null; mape?: number | null; heldOut?: { n: number; mape: number | null; r2: number | null } }>
  >
  const out: FitReport[] = []
  for (const side of ['device', 'edge'] as const) {
    for (const [key, r] of Object.entries(p[side] ?? {})) {
      out.push({
        side,
        key: key as FitReport['key'],
        n: r.n ?? 0,
        r2: r.r2 ?? null,
        mape: r.mape ?? null,
        heldOutN: r.heldOut?.n ?? 0,
        heldOutMape: r.heldOut?.mape ?? null,
        heldOutR2: r.heldOut?.r2 ?? null
      })
    }
  }
  return out
}
