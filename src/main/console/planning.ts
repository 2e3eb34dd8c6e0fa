/**
 * Planning: for each device, the latency source (its current fitted profile, or the measured
 * per-layer tables), the online correction learned from co-inference, the configuration maps, and
 * the plans pushed to it (retained, so a restarted agent resumes its plan). A move of the uplink
 * estimate into another interval of the configuration map pushes the map's plan for it.
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { median } from 'simple-statistics'
import type { AgentRequest, LayerTable } from '../../shared/agent-api.js'
import type { InferRow, InferSummary, LatencySource } from '../../shared/console-api.js'
import { OnlineCorrection } from '../../shared/correction.js'
import { UserError, errorMessage } from '../../shared/errors.js'
import { PAPER_2018, REGRESSOR_TEXT, parseProfile, regressorsOf, type CalibrationProfile, type Regressor } from '../../shared/latency.js'
import { cutShape, exitPath } from '../../shared/manifest.js'
import { measuredSource } from '../../shared/measured-source.js'
import { FRAME_OVERHEAD_MAX } from '../../shared/frame.js'
import { PlanSchema, SCHEMA, encodeJson, type Hello, type PlanMessage } from '../../shared/messages.js'
import {
  buildCostTable,
  candidateAt,
  configurationMap,
  latencyOf,
  lookupMap,
  plan as planAt,
  profileSource,
  sameConfiguration,
  toPlan,
  type Breakdown,
  type Candidate,
  type CostTable,
  type MapInterval,
  type CodecOptions,
  DEFAULT_MAX_CODEC_DROP_PTS
} from '../../shared/planner.js'
import { topics } from '../../shared/topics.js'
import type { PredictorTable } from '../campaign/plans.js'
import { TAIL_WINDOW, measureTail, tailTable, type TailModel } from '../../shared/tail.js'
import type { OrtExecutor } from '../runtime/executor.js'
import { measureLayers } from '../runtime/layer-timer.js'
import type { Store } from '../store/store.js'
import type { Emit } from './events.js'
import type { Models, ServedModel } from './models.js'
import type { EdgeLoad } from './edge-load.js'
import { isCodec, payloadBytes, type Codec } from '../../shared/codecs.js'
import { measureCodecCosts } from '../../shared/codec-cost.js'

export interface StoredPlan extends PlanMessage {
  deviceId: string
  breakdown: Breakdown
}

/** What a device is planned for: the requirement, and whether the user fixed the bandwidth or pinned the plan. */
export interface PlanIntent {
  latencyMs: number
  /** A bandwidth fixed by the user (no replanning on estimates). */
  fixedKbps: number | null
  /** A plan pinned by the user (no replanning). */
  pinned: boolean
  /** The requirement holds at this percentile of inferences (tail-aware planning); absent: at the typical one. */
  percentile?: number
}

interface DevicePlanning {
  /** The model the tables, maps and plans below are for (a new assignment resets them). */
  model: string
  deviceTable: LayerTable | null
  /** The device's current fitted profile (undefined: not read yet; null: none, plan with measured tables). */
  profile?: { id: string; profile: CalibrationProfile; problem: string | null } | null
  correction: OnlineCorrection
  /** Configuration maps by requirement and percentile. */
  maps: Map<string, MapInterval[]>
  /** Tail models by percentile, from the device's latest inferences (cleared as the maps are). */
  tails: Map<number, TailModel>
  intent: PlanIntent | null
  plan: StoredPlan | null
}

export interface PlanningDeps {
  store: Store
  executor: OrtExecutor
  models: Models
  /** Makes the agent hold a model (fetched from this console when it does not). */
  ensureOnAgent(agentId: string, m: ServedModel): Promise<void>
  emit: Emit
  log: Logger
  request: AgentRequest
  publishRetained(topic: string, payload: Uint8Array): Promise<void>
  /** Repetitions when timing layers (the edge at start, a device on first contact). */
  profileReps: number
  /** The largest activation the console accepts (its packet limit less a frame's overhead): plans sending more are never chosen. */
  maxUploadBytes: number
  /** The edge's measured load (absent: plans as if each device had the edge to itself). */
  edgeLoad?: EdgeLoad
  /** Plan with the edge's load (default true). */
  loadAware?: boolean
  /** An agent's hello (the codecs it sends and what encoding costs it); absent: f32 only. */
  hello?(agentId: string): Hello | null | undefined
  /** The largest accuracy drop a lossy codec may cost, percentage points (default 0.5). */
  maxCodecDropPts?: number
}

/** Load-aware replanning: at most one device's plan changes per this many ms (devices move one at a time, not as a herd). */
export const LOAD_REPLAN_MS = 250
/** A plan of equal accuracy replaces the current one for load only when it is predicted this much faster. */
const LOAD_HYSTERESIS = 0.1

export class Planning {
  private readonly devices = new Map<string, DevicePlanning>()
  private readonly plans = new Map<string, StoredPlan>()
  /** This machine's (the edge's) per-layer timings, per model. */
  private readonly edge = new Map<string, LayerTable>()
  private readonly timingEdge = new Map<string, Promise<LayerTable>>()

  /** Plans use the edge's measured load (setLoadAware: the load test compares both ways). */
  loadAware: boolean
  private lastLoadTick = 0

  /** The largest accuracy drop a lossy codec may cost a plan, percentage points. */
  maxCodecDropPts: number
  private edgeDecodeNs: Record<Codec, number> | null = null

  constructor(private readonly deps: PlanningDeps) {
    this.loadAware = deps.loadAware ?? true
    this.maxCodecDropPts = deps.maxCodecDropPts ?? DEFAULT_MAX_CODEC_DROP_PTS
  }

  /**
   * The codecs an agent's plans may use: those its hello announces (an agent from before codecs:
   * f32 only), priced with its measured encoding and this machine's measured decoding.
   */
  codecOptions(agentId: string): CodecOptions | undefined {
    const hello = this.deps.hello?.(agentId)
    const codecs = (hello?.codecs ?? []).filter(isCodec)
    if (!codecs.length) return undefined
    this.edgeDecodeNs ??= measureCodecCosts().decodeNs
    const device: Partial<Record<Codec, number>> = {}
    for (const [k, v] of Object.entries(hello?.codecEncodeNs ?? {})) if (isCodec(k)) device[k] = v
    return { codecs, maxDropPts: this.maxCodecDropPts, cost: { device, edge: this.edgeDecodeNs } }
  }

  /** Times every layer of the default model on this machine (the edge); others are timed when first planned. */
  async start(): Promise<void> {
    await this.ensureEdge(this.deps.models.default)
  }

  stop(): void {
    this.devices.clear()
  }

  private async ensureEdge(m: ServedModel): Promise<LayerTable> {
    const hit = this.edge.get(m.id)
    if (hit) return hit
    let p = this.timingEdge.get(m.id)
    if (!p) {
      p = measureLayers(this.deps.executor, m.manifest, m.samplePixels, this.deps.profileReps).then((t) => {
        this.edge.set(m.id, t)
        this.deps.log.info({ model: m.id, exitFusedMs: t.exitFusedMs }, 'edge layers timed')
        return t
      })
      this.timingEdge.set(m.id, p)
      p.finally(() => this.timingEdge.delete(m.id)).catch(() => undefined)
    }
    return p
  }

  /** This machine's (the edge's) per-layer timings of a model (the default one unless named), measured once. */
  edgeTable(modelId: string = this.deps.models.default.id): LayerTable {
    const t = this.edge.get(modelId)
    if (!t) throw new UserError(`the edge has not timed model ${modelId} yet`)
    return t
  }

  private fresh(model: string): DevicePlanning {
    return { model, deviceTable: null, correction: new OnlineCorrection(), maps: new Map(), tails: new Map(), intent: null, plan: null }
  }

  private device(id: string): DevicePlanning {
    const d = this.devices.get(id) ?? this.fresh(this.deps.models.forDevice(id).id)
    this.devices.set(id, d)
    return d
  }

  /** The model a device's tables and plans are for. */
  modelOf(agentId: string): ServedModel {
    return this.deps.models.get(this.device(agentId).model)
  }

  /** After a device's model assignment changed: its tables, corrections and maps start over for the new model. */
  modelChanged(agentId: string): void {
    const d = this.devices.get(agentId)
    const model = this.deps.models.forDevice(agentId).id
    if (d && d.model === model) return
    this.devices.set(agentId, { ...this.fresh(model), intent: d?.intent ?? null, plan: d?.plan ?? null })
  }

  plan(planId: string): StoredPlan | undefined {
    return this.plans.get(planId)
  }

  currentPlan(agentId: string): StoredPlan | null {
    return this.devices.get(agentId)?.plan ?? null
  }

  /** Ids of every plan pushed to an agent so far (a batch counts its plan changes with it). */
  planIds(agentId: string): string[] {
    return [...this.plans.values()].filter((p) => p.deviceId === agentId).map((p) => p.planId)
  }

  setIntent(agentId: string, intent: PlanIntent): void {
    this.device(agentId).intent = intent
  }

  /**
   * Measures the device's layers (once per agent and model) through the agent's profile-layers
   * command, after making sure the agent holds the model (it fetches it from this console if not) and
   * the edge has timed it.
   */
  async deviceTable(agentId: string): Promise<LayerTable> {
    this.modelChanged(agentId)
    const d = this.device(agentId)
    if (d.deviceTable) return d.deviceTable
    const m = this.deps.models.get(d.model)
    await this.ensureEdge(m)
    await this.deps.ensureOnAgent(agentId, m)
    const r = await this.deps.request(agentId, 'profile-layers', { reps: this.deps.profileReps, model: m.id }, 300_000)
    if (r.model !== m.id) throw new UserError(`agent ${agentId} profiled model ${r.model}, the console serves it ${m.id}`)
    if (this.device(agentId) !== d) throw new UserError(`agent ${agentId}'s model changed while its layers were being timed`)
    d.deviceTable = r
    this.deps.log.info({ agentId, exitFusedMs: r.exitFusedMs }, 'device layers timed')
    return r
  }

  /**
   * The latency source the planner uses for a device: its current fitted profile (a campaign's
   * regressions for both sides) when it has one that predicts every layer of the served model,
   * else the measured per-layer tables. `edgent profile use` / `useProfile` selects.
   */
  latencySource(agentId: string): LatencySource {
    const p = this.loadProfile(agentId)
    if (p && !p.problem) return { kind: 'profile', profileId: p.id, problem: null }
    return { kind: 'measured', profileId: p?.id ?? null, problem: p?.problem ?? null }
  }

  private loadProfile(agentId: string): { id: string; profile: CalibrationProfile; problem: string | null } | null {
    const d = this.device(agentId)
    if (d.profile !== undefined) return d.profile
    const row = this.deps.store.profiles.current(agentId)
    if (!row) {
      d.profile = null
      return null
    }
    const profile = parseProfile(JSON.parse(row.json), `profile ${row.id}`)
    let problem: string | null = null
    try {
      const src = profileSource(profile)
      for (const l of this.modelOf(agentId).manifest.layers) for (const side of ['device', 'edge'] as const) src.layerMs(side, l)
    } catch (err) {
      problem = `${errorMessage(err)}: planning with the measured tables instead`
      this.deps.log.warn({ agentId, profile: row.id, problem }, 'current profile cannot predict the served model')
    }
    d.profile = { id: row.id, profile, problem }
    return d.profile
  }

  /** After a device's profile changes: forget the cached profile, corrections and maps. */
  sourceChanged(agentId: string): void {
    const d = this.device(agentId)
    d.profile = undefined
    d.correction = new OnlineCorrection()
    d.maps.clear()
    d.tails.clear()
  }

  /**
   * Selects a device's current profile (one of its own), or none (`null`: the measured tables); with
   * `regressor`, also which of the profile's regressors predicts (the user's choice, which plans
   * campaigns then leave alone).
   */
  useProfile(agentId: string, profileId: string | null, regressor?: Regressor): LatencySource {
    if (profileId !== null) {
      const row = this.deps.store.profiles.get(profileId)
      if (!row) throw new UserError(`unknown profile "${profileId}"`)
      if (row.deviceId !== agentId) throw new UserError(`profile "${profileId}" was fitted for ${row.deviceId}, not ${agentId}`)
      if (regressor) {
        const p = parseProfile(JSON.parse(row.json), `profile ${profileId}`)
        if (!regressorsOf(p).includes(regressor))
          throw new UserError(
            `profile "${profileId}" has no ${REGRESSOR_TEXT[regressor]} (its campaign fitted none: too few points per layer type, or an older console); it has: ${regressorsOf(p).join(', ')}`
          )
        this.deps.store.profiles.updateJson(profileId, JSON.stringify({ ...JSON.parse(row.json), regressor, regressorChosenBy: 'user' }))
      }
    } else if (regressor) throw new UserError('a regressor is chosen for a profile, not for the measured tables')
    this.deps.store.profiles.makeCurrent(agentId, profileId)
    this.sourceChanged(agentId)
    this.deps.log.info({ agentId, profileId }, 'latency source selected')
    return this.latencySource(agentId)
  }

  /**
   * After a plans campaign scored a profile's regressors on real plans: the profile predicts with the
   * one of least end-to-end median error from now on — unless the user chose one (useProfile). Says
   * what it chose and why.
   */
  chooseRegressor(
    agentId: string,
    profileId: string,
    scored: readonly { profileId?: string; regressor?: Regressor; e2eMedian: number | null }[],
    campaignId: string
  ): { regressor: Regressor; changed: boolean; why: string } {
    const row = this.deps.store.profiles.get(profileId)
    if (!row) throw new UserError(`unknown profile "${profileId}"`)
    const raw = JSON.parse(row.json) as Record<string, unknown>
    const p = parseProfile(raw, `profile ${profileId}`)
    if (p.regressorChosenBy === 'user') return { regressor: p.regressor, changed: false, why: `the ${p.regressor} regressor was chosen by the user` }
    const mine = scored.filter((x) => x.profileId === profileId && x.regressor && x.e2eMedian !== null)
    if (mine.length < 2) return { regressor: p.regressor, changed: false, why: 'the profile has one regressor: nothing to choose' }
    const best = mine.reduce((a, b) => (b.e2eMedian! < a.e2eMedian! ? b : a))
    const pct = (v: number) => `${(v * 100).toFixed(1)} %`
    const why = `end-to-end median error on these plans: ${mine.map((x) => `${x.regressor} ${pct(x.e2eMedian!)}`).join(', ')}`
    if (best.regressor === p.regressor) return { regressor: p.regressor, changed: false, why }
    this.deps.store.profiles.updateJson(
      profileId,
      JSON.stringify({ ...raw, regressor: best.regressor, regressorChosenBy: `plans campaign ${campaignId}: ${why}` })
    )
    if (this.deps.store.profiles.current(agentId)?.id === profileId) this.sourceChanged(agentId)
    this.deps.log.info({ agentId, profileId, regressor: best.regressor, why }, 'profile regressor chosen by a plans campaign')
    return { regressor: best.regressor!, changed: true, why }
  }

  /** The agent's cost table from its latency source, corrected online unless `raw`. */
  costTable(agentId: string, raw = false): CostTable {
    const d = this.device(agentId)
    if (!d.deviceTable) throw new UserError(`agent ${agentId} has not been profiled yet`)
    const p = this.loadProfile(agentId)
    const m = this.deps.models.get(d.model).manifest
    const source = p && !p.problem ? profileSource(p.profile) : measuredSource(m, d.deviceTable, this.edgeTable(d.model))
    const table = buildCostTable(m, raw ? source : d.correction.wrap(source), this.deps.maxUploadBytes, this.codecOptions(agentId))
    return raw ? table : this.withLoad(agentId, table)
  }

  /**
   * A device's cost table under the edge's measured load (load-aware planning): each plan that uses
   * the edge also waits what the queue model predicts from the other devices' load plus what this
   * plan would add (edge-load.ts). Unchanged when planning load-blind or when the edge is idle.
   */
  private withLoad(agentId: string, table: CostTable): CostTable {
    const load = this.deps.edgeLoad
    if (!load || !this.loadAware) return table
    const wait = load.waitFor(agentId)
    const handoffMs = load.meanHandoffMs()
    const measuredRate = load.framesPerSecond(agentId)
    let loaded = false
    const exits = table.exits.map((g) =>
      g.map((c) => {
        if (c.deviceLayers >= c.layers) return c
        // back to back at this plan's pace, or the device's own pace when it is slower (a camera's frame rate)
        const ownRate = 1000 / Math.max(0.01, c.deviceMs + c.edgeMs + c.overheadMs)
        const queueMs = wait(c.edgeMs + handoffMs, measuredRate === null ? ownRate : Math.min(ownRate, measuredRate))
        if (!(queueMs > 0)) return c
        loaded = true
        return { ...c, queueMs }
      })
    )
    return loaded ? { ...table, profile: `${table.profile}+load`, exits } : table
  }

  /**
   * Load-aware replanning, on every frame a device sends (at most every LOAD_REPLAN_MS): of the
   * devices whose requirement the console plans for, the one whose best plan under the edge's load
   * now differs the most from its current plan gets it — one device at a time, so that a busy edge
   * sheds devices until the wait fits, and an idle one takes them back, without the whole fleet
   * moving at once. A plan of equal accuracy replaces the current one only if ≥ 10 % faster.
   */
  loadTick(): void {
    if (!this.loadAware || !this.deps.edgeLoad) return
    const now = performance.now()
    if (now - this.lastLoadTick < LOAD_REPLAN_MS) return
    this.lastLoadTick = now
    let best: { id: string; gain: number; reason: string; kbps: number; intent: PlanIntent } | null = null
    for (const [id, d] of this.devices) {
      if (!d.intent || d.intent.pinned || !d.plan || !d.deviceTable) continue
      const kbps = d.plan.uplinkKbps
      const cond = { uplinkKbps: kbps, latencyMs: d.intent.latencyMs }
      const costs = this.atPercentile(id, this.costTable(id), d.intent.percentile)
      const next = planAt(costs, cond)
      const cur = candidateAt(costs, d.plan.exit, d.plan.deviceLayers, d.plan.codec)
      if (!next || !cur || sameConfiguration(next, d.plan)) continue
      const curMs = latencyOf(cur, cond)
      const curFeasible = curMs <= cond.latencyMs
      const better = (next.feasible && !curFeasible) || next.accuracy > cur.accuracy || next.predictedMs < (1 - LOAD_HYSTERESIS) * curMs
      if (!better) continue
      const gain = (next.feasible && !curFeasible ? 1e6 : 0) + (curMs - next.predictedMs)
      if (best && best.gain >= gain) continue
      const wait = (c: { queueMs?: number }) => (c.queueMs ?? 0).toFixed(1)
      best = {
        id,
        gain,
        kbps,
        intent: d.intent,
        reason: `edge load: exit ${next.exit} with ${next.deviceLayers} device layers predicted ${next.predictedMs.toFixed(1)} ms (wait ${next.breakdown.queueMs?.toFixed(1) ?? '0.0'} ms) against ${curMs.toFixed(1)} ms (wait ${wait(cur)} ms) for exit ${d.plan.exit} with ${d.plan.deviceLayers}`
      }
    }
    if (!best) return
    const { id, kbps, intent, reason } = best
    this.pushPlan(id, intent.latencyMs, kbps, reason, undefined, intent.percentile).catch((err: unknown) =>
      this.deps.log.error({ agentId: id, err: errorMessage(err) }, 'load replan failed')
    )
  }

  /**
   * Every latency source that could plan this device, as raw cost tables for its served model (a
   * plans campaign scores each against its measurements): each of the device's fitted profiles
   * that predicts every layer (a fused one also as its plain sum of layers), the measured per-layer
   * tables, and the paper's profile.
   */
  predictorTables(agentId: string): PredictorTable[] {
    const d = this.device(agentId)
    const m = this.deps.models.get(d.model).manifest
    const out: PredictorTable[] = []
    const max = this.deps.maxUploadBytes
    const tryAdd = (name: string, make: () => CostTable, extra: Omit<PredictorTable, 'name' | 'table'> = {}) => {
      try {
        out.push({ name, table: make(), ...extra })
      } catch {
        // a profile that cannot predict this model (a layer type it has no regression for) is left out
      }
    }
    for (const row of this.deps.store.profiles.forDevice(agentId)) {
      let p: CalibrationProfile
      try {
        p = parseProfile(JSON.parse(row.json), `profile ${row.id}`)
      } catch {
        continue
      }
      const timing = (p.source as { timing?: string } | undefined)?.timing
      const label = `profile ${row.id} (${row.campaignKind}${timing ? `, ${timing}` : ''})`
      const { segments, ...noSegments } = p
      const parts = [
        p.composition === 'fused' ? 'fused segments' : 'sum of layers',
        ...(segments ? ['segments as plans run them'] : []),
        ...(p.messaging ? ['messaging'] : [])
      ]
      const held = (r: Regressor) => ({ device: p.gridHeldOut?.device?.[r] ?? null, edge: p.gridHeldOut?.edge?.[r] ?? null })
      const regressors = regressorsOf(p)
      const several = regressors.length > 1
      tryAdd(`${label}: ${several ? `${REGRESSOR_TEXT[p.regressor]}, ` : ''}${parts.join(' + ')}`, () => buildCostTable(m, profileSource(p), max), {
        gridHeldOut: held(p.regressor),
        profileId: row.id,
        regressor: p.regressor
      })
      for (const other of regressors.filter((r) => r !== p.regressor)) {
        tryAdd(`${label}: ${REGRESSOR_TEXT[other]}, ${parts.join(' + ')}`, () => buildCostTable(m, profileSource({ ...p, regressor: other }), max), {
          gridHeldOut: held(other),
          profileId: row.id,
          regressor: other
        })
      }
      if (segments) tryAdd(`${label}: without the segments-as-run terms`, () => buildCostTable(m, profileSource(noSegments as CalibrationProfile), max))
      if (p.composition === 'fused' || segments)
        tryAdd(`${label}: sum of layers${p.messaging ? ' + messaging' : ''}`, () =>
          buildCostTable(m, profileSource({ ...(noSegments as CalibrationProfile), composition: 'sum' }), max)
        )
    }
    if (d.deviceTable) {
      const table = d.deviceTable
      tryAdd('measured per-layer tables', () => buildCostTable(m, measuredSource(m, table, this.edgeTable(d.model)), max))
    }
    tryAdd('paper-2018', () => buildCostTable(m, PAPER_2018, max))
    return out
  }

  /** The device's measured dispersion at a percentile (src/shared/tail.ts), from its latest inferences; cached until it learns again. */
  tail(agentId: string, percentile: number): TailModel {
    const d = this.device(agentId)
    let t = d.tails.get(percentile)
    if (!t) {
      t = measureTail(this.deps.store.runs.inferences(agentId, TAIL_WINDOW), percentile)
      d.tails.set(percentile, t)
    }
    return t
  }

  /** The cost table plans are chosen with: the (online-corrected) `costs`, at a percentile when one is given. */
  private atPercentile(agentId: string, costs: CostTable, percentile?: number): CostTable {
    return percentile === undefined || percentile === 50 ? costs : tailTable(costs, this.tail(agentId, percentile))
  }

  /** The configuration map of an agent for a requirement (at a percentile: tail-aware), cached, over 1 kbps–10 Gbps. */
  configMap(agentId: string, latencyMs: number, percentile?: number): MapInterval[] {
    const d = this.device(agentId)
    // the codecs the agent announces are part of the key: an agent restarted with other --codecs gets a map of its own
    const key = `${latencyMs}@${percentile ?? 50}/${(this.deps.hello?.(agentId)?.codecs ?? []).join(',')}`
    let map = d.maps.get(key)
    if (!map) {
      const costs = this.costTable(agentId)
      map = configurationMap(this.atPercentile(agentId, costs, percentile), { latencyMs, fromKbps: 1, toKbps: 1e7 })
      // under load the map holds only for this moment's load: not kept
      if (!costs.profile.endsWith('+load')) d.maps.set(key, map)
    }
    return map
  }

  /**
   * Pushes a plan (retained) to an agent. With a percentile, the plan is chosen on the percentile's
   * table (feasible: predicted within the requirement at that percentile) and carries both
   * predictions; its `predictedMs` and breakdown stay the typical ones, which the correction learns from.
   */
  async pushPlan(
    agentId: string,
    latencyMs: number,
    uplinkKbps: number,
    reason: string,
    pin?: { exit: number; deviceLayers: number; codec?: Codec },
    percentile?: number
  ): Promise<StoredPlan> {
    const typical = this.costTable(agentId)
    const costs = this.atPercentile(agentId, typical, percentile)
    const served = this.modelOf(agentId)
    const m = served.manifest
    let p = planAt(costs, { uplinkKbps, latencyMs })!
    const path = pin ? exitPath(m, pin.exit) : []
    const pinCodec: Codec = pin?.codec && pin.deviceLayers < path.length ? pin.codec : 'f32'
    if (pinCodec === 'u8' && pin!.deviceLayers !== 0)
      throw new UserError(`codec u8 carries the raw image: only for a plan that runs nothing on the device (deviceLayers 0), not ${pin!.deviceLayers}`)
    if (pinCodec === 'u8' && !m.preprocessing) throw new UserError(`codec u8 needs the edge to preprocess, and model ${m.id} declares no preprocessing`)
    /**
     * A configuration of `table`: planned ones are in it; a pinned codec the planner does not offer
     * (its accuracy not measured, or over the drop bound) is the user's choice — its bytes on the
     * link, the exit's accuracy as measured without it.
     */
    const find = (table: CostTable, exit: number, deviceLayers: number, codec: Codec): Candidate | undefined => {
      const hit = candidateAt(table, exit, deviceLayers, codec)
      if (hit) return hit
      const c = candidateAt(table, exit, deviceLayers)
      if (!c) return undefined
      const uploadBytes = payloadBytes(codec, cutShape(m, exitPath(m, exit), deviceLayers))
      return { ...c, codec, uploadBytes, sendable: uploadBytes <= this.deps.maxUploadBytes }
    }
    if (pin) {
      const cand = find(costs, pin.exit, pin.deviceLayers, pinCodec)
      if (!cand) throw new UserError(`model ${m.id} has no exit ${pin.exit} with deviceLayers ${pin.deviceLayers}`)
      if (!cand.sendable)
        throw new UserError(
          `exit ${pin.exit} with ${pin.deviceLayers} device layers sends ${cand.uploadBytes} bytes, more than the ${this.deps.maxUploadBytes} bytes an activation may have (the broker's packet limit less a frame's overhead)`
        )
      p = toPlan(costs, 'edgent', cand, { uplinkKbps, latencyMs })
    }
    const codec = p.codec
    const atPercentile = costs !== typical ? p : null
    if (atPercentile)
      p = { ...toPlan(typical, 'edgent', find(typical, p.exit, p.deviceLayers, codec)!, { uplinkKbps, latencyMs }), feasible: atPercentile.feasible }
    const plan: StoredPlan = {
      schema: SCHEMA,
      planId: randomUUID().slice(0, 12),
      model: m.id,
      modelSha256: served.package.sha256,
      exit: p.exit,
      deviceLayers: p.deviceLayers,
      layers: p.layers,
      latencyMs,
      uplinkKbps,
      predictedMs: p.predictedMs,
      feasible: p.feasible,
      maxFrameBytes: this.deps.maxUploadBytes + FRAME_OVERHEAD_MAX,
      ...(codec !== 'f32' ? { codec } : {}),
      ...(percentile !== undefined && percentile !== 50 ? { percentile, predictedPercentileMs: atPercentile?.predictedMs ?? p.predictedMs } : {}),
      reason,
      at: new Date().toISOString(),
      deviceId: agentId,
      breakdown: p.breakdown
    }
    PlanSchema.parse(plan)
    this.deps.store.plans.insert({ ...plan, reason, at: plan.at! })
    this.plans.set(plan.planId, plan)
    this.device(agentId).plan = plan
    const { deviceId: _d, breakdown: _b, ...wire } = plan
    await this.deps.publishRetained(topics.plan(agentId), encodeJson(wire))
    this.deps.log.info(
      { agentId, planId: plan.planId, exit: plan.exit, deviceLayers: plan.deviceLayers, uplinkKbps: Math.round(uplinkKbps), latencyMs, reason },
      'plan pushed'
    )
    this.deps.emit('plan', { id: agentId, plan })
    return plan
  }

  /** On a new estimate: the configuration map's choice for it; a different choice is pushed. */
  replanIfMoved(agentId: string, uplinkEstimateKbps: number): void {
    const d = this.devices.get(agentId)
    if (!d?.intent || d.intent.fixedKbps !== null || d.intent.pinned || !d.plan || !d.deviceTable) return
    const iv = lookupMap(this.configMap(agentId, d.intent.latencyMs, d.intent.percentile), uplinkEstimateKbps)
    if (!iv || iv.exit === null || sameConfiguration(iv, d.plan)) return
    const codec = (c: Codec | null | undefined) => (c && c !== 'f32' ? ` (${c})` : '')
    const reason = `uplink estimate ${Math.round(uplinkEstimateKbps)} kbps is in the configuration map's interval ${Math.round(iv.fromKbps)}–${Math.round(iv.toKbps)} kbps, where exit ${iv.exit} with ${iv.deviceLayers} device layers${codec(iv.codec)} is optimal (was exit ${d.plan.exit}, ${d.plan.deviceLayers}${codec(d.plan.codec)})`
    this.pushPlan(agentId, d.intent.latencyMs, uplinkEstimateKbps, reason, undefined, d.intent.percentile).catch((err: unknown) =>
      this.deps.log.error({ err: errorMessage(err) }, 'replan failed')
    )
  }

  /**
   * Learns from a batch: each plan's median measured device and edge segment times against its
   * (corrected) predictions. Returns the batch's prediction MAPE with the corrections it was planned
   * with and without any correction (both out of sample: this batch's own corrections apply next).
   * `uplinkEstimateKbps` is the estimate now: a batch caught by a link change does not teach the overhead.
   */
  learn(agentId: string, rows: readonly InferRow[], update: boolean, uplinkEstimateKbps: number | null): InferSummary['prediction'] {
    const d = this.device(agentId)
    const now = () => ({ deviceFactor: d.correction.meanFactor('device'), edgeFactor: d.correction.meanFactor('edge'), overheadMs: d.correction.overheadMs })
    if (!rows.length) return { mapeCorrected: null, mapeUncorrected: null, ...now() }
    const raw = this.costTable(agentId, true)
    let errCorrected = 0
    let errRaw = 0
    for (const r of rows) {
      const plan = this.plans.get(r.planId)!
      const cand = candidateAt(raw, plan.exit, plan.deviceLayers, plan.codec) ?? candidateAt(raw, plan.exit, plan.deviceLayers)!
      errCorrected += Math.abs(plan.predictedMs - r.e2eMs) / r.e2eMs
      errRaw += Math.abs(latencyOf(cand, { uplinkKbps: plan.uplinkKbps, latencyMs: plan.latencyMs }) - r.e2eMs) / r.e2eMs
    }
    const mape = { mapeCorrected: errCorrected / rows.length, mapeUncorrected: errRaw / rows.length }
    if (!update) return { ...mape, ...now() }
    for (const planId of new Set(rows.map((r) => r.planId))) {
      const plan = this.plans.get(planId)!
      const mine = rows.filter((r) => r.planId === planId)
      const path = exitPath(this.deps.models.get(plan.model).manifest, plan.exit).map((l) => l.id)
      if (plan.deviceLayers > 0) d.correction.observe('device', path.slice(0, plan.deviceLayers), plan.breakdown.deviceMs, median(mine.map((r) => r.deviceMs)))
      if (plan.deviceLayers < path.length) d.correction.observe('edge', path.slice(plan.deviceLayers), plan.breakdown.edgeMs, median(mine.map((r) => r.edgeMs)))
      // The fixed overhead is learned from the residual only when the link is what the plan assumed:
      // a batch caught by a bandwidth change (the estimate moved by > 30 %) missed for that reason.
      const linkMoved = plan.deviceLayers < plan.layers && uplinkEstimateKbps !== null && Math.abs(uplinkEstimateKbps - plan.uplinkKbps) > 0.3 * plan.uplinkKbps
      if (!linkMoved) d.correction.observeResidual(plan.predictedMs, median(mine.map((r) => r.e2eMs)))
    }
    d.maps.clear()
    d.tails.clear()
    return { ...mape, ...now() }
  }
}
