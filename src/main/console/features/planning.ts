/**
 * Planning: for each device, what it is planned for (its intent), the plans pushed to it (retained,
 * so a restarted agent resumes its plan; a bounded record in memory, all of them in the store), the
 * online correction learned from co-inference on top of its latency source (latency-sources.ts), the
 * tail models, the configuration maps, and load-aware replanning. A move of the uplink estimate into
 * another interval of the configuration map pushes the map's plan for it.
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { median } from 'simple-statistics'
import type { InferRow, InferSummary } from '../../../shared/contracts/console-api.js'
import { CorrectionGate, OnlineCorrection, PLAN_FAMILIES, planFamily } from '../../../shared/algorithms/correction.js'
import { UserError, errorMessage } from '../../../shared/errors.js'
import { cutShape, exitPath, type Manifest } from '../../../shared/contracts/manifest.js'
import { FRAME_OVERHEAD_MAX } from '../../../shared/contracts/frame.js'
import { PlanSchema, SCHEMA, encodeJson, type Hello, type PlanMessage, type PlanPolicy } from '../../../shared/contracts/messages.js'
import {
  candidateAt,
  configurationMap,
  latencyOf,
  lookupMap,
  plan as planAt,
  sameConfiguration,
  toPlan,
  type Breakdown,
  type Candidate,
  type CostTable,
  type MapInterval,
  type Plan
} from '../../../shared/algorithms/planner.js'
import { topics } from '../../../shared/contracts/topics.js'
import { TAIL_WINDOW, measureTail, tailTable, type TailModel } from '../../../shared/algorithms/tail.js'
import type { Store } from '../../store/store.js'
import type { Emit } from '../api/events.js'
import type { LatencySources } from './latency-sources.js'
import type { EdgeLoad } from './edge-load.js'
import { frameCodec, payloadBytes, type Codec } from '../../../shared/algorithms/codecs.js'

export interface StoredPlan extends PlanMessage {
  agentId: string
  breakdown: Breakdown
  /** A policy's predicted mixture: per exit frames may leave at, its share, side, latency and breakdown. */
  mixture?: PlanMixture
}

export type PlanMixture = NonNullable<Plan['policy']>['mixture']

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
  /** The model the maps and corrections below are for (a new assignment resets them). */
  model: string
  correction: OnlineCorrection
  /** Which plan families the correction measures better for (CorrectionGate). */
  gate: CorrectionGate
  /** Consecutive batches whose device segments measured far from the uncorrected predictions. */
  driftBatches: number
  /** Configuration maps by requirement and percentile. */
  maps: Map<string, MapInterval[]>
  /** Tail models by percentile, from the device's latest inferences (cleared as the maps are). */
  tails: Map<number, TailModel>
  intent: PlanIntent | null
  plan: StoredPlan | null
  /** The ids of the plans pushed to it that are kept in memory, oldest first (at most PLANS_KEPT). */
  planIds: string[]
}

export interface PlanningDeps {
  store: Store
  /** What predicts the device's latency: cost tables, models, measured tables. */
  sources: LatencySources
  emit: Emit
  log: Logger
  publishRetained(topic: string, payload: Uint8Array): Promise<void>
  /** The largest activation the console accepts (its packet limit less a frame's overhead): plans sending more are never chosen. */
  maxUploadBytes: number
  /** The edge's measured load (absent: plans as if each device had the edge to itself). */
  edgeLoad?: EdgeLoad
  /** Plan with the edge's load (default true). */
  loadAware?: boolean
  /** An agent's hello (the codecs it announces key its configuration maps). */
  hello?(agentId: string): Hello | null | undefined
}

/** A batch's device segments off their uncorrected predictions by more than this (median) counts towards drift. */
export const DRIFT_ERROR = 0.5
/** Batches in a row that make a drift. */
export const DRIFT_BATCHES = 2

/**
 * The plans kept in memory per device (a batch's rows are matched to the plans they ran with; older
 * plans are in the store). A device replanned for every frame for hours must not grow the console.
 */
export const PLANS_KEPT = 512

/** Load-aware replanning: at most one device's plan changes per this many ms (devices move one at a time, not as a herd). */
export const LOAD_REPLAN_MS = 250
/** A plan of equal accuracy replaces the current one for load only when it is predicted this much faster. */
const LOAD_HYSTERESIS = 0.1

export class Planning {
  private readonly devices = new Map<string, DevicePlanning>()
  private readonly plans = new Map<string, StoredPlan>()
  private unsubscribe: (() => void) | null = null

  /** Plans use the edge's measured load (setLoadAware: the load test compares both ways). */
  loadAware: boolean
  private lastLoadTick = 0

  constructor(private readonly deps: PlanningDeps) {
    this.loadAware = deps.loadAware ?? true
  }

  /** Follows the latency sources: a device whose source changed drops its correction, maps and tails. */
  start(): void {
    this.unsubscribe = this.deps.sources.onChange((id) => this.sourceChanged(id))
  }

  /** Forgets every device's intent, plan, correction and maps (plans stay in the store). */
  stop(): void {
    this.unsubscribe?.()
    this.unsubscribe = null
    this.devices.clear()
    this.plans.clear()
  }

  private fresh(model: string): DevicePlanning {
    return {
      model,
      correction: new OnlineCorrection(),
      gate: new CorrectionGate(),
      driftBatches: 0,
      maps: new Map(),
      tails: new Map(),
      intent: null,
      plan: null,
      planIds: []
    }
  }

  private device(id: string): DevicePlanning {
    const d = this.devices.get(id) ?? this.fresh(this.deps.sources.modelOf(id).id)
    this.devices.set(id, d)
    return d
  }

  /** After a device's model assignment changed: its tables, corrections and maps start over for the new model (intent and plan kept). */
  modelChanged(agentId: string): void {
    this.deps.sources.modelChanged(agentId)
    const d = this.devices.get(agentId)
    const model = this.deps.sources.modelOf(agentId).id
    if (d && d.model === model) return
    this.devices.set(agentId, { ...this.fresh(model), intent: d?.intent ?? null, plan: d?.plan ?? null, planIds: d?.planIds ?? [] })
  }

  /** After a device's latency source changed: forget the corrections and maps learned on the old one. */
  sourceChanged(agentId: string): void {
    // the pages show each device's latency source (and whether its calibration is out of date)
    this.deps.emit('devices', { reason: `the latency source of ${agentId} changed` })
    const d = this.devices.get(agentId)
    if (!d) return
    d.correction = new OnlineCorrection()
    d.gate = new CorrectionGate()
    d.driftBatches = 0
    d.maps.clear()
    d.tails.clear()
  }

  plan(planId: string): StoredPlan | undefined {
    return this.plans.get(planId)
  }

  /** Keeps a pushed plan as the device's current one, and in its bounded record (the oldest beyond PLANS_KEPT go). */
  private remember(agentId: string, plan: StoredPlan): void {
    const d = this.device(agentId)
    d.plan = plan
    this.plans.set(plan.planId, plan)
    d.planIds.push(plan.planId)
    while (d.planIds.length > PLANS_KEPT) this.plans.delete(d.planIds.shift()!)
  }

  currentPlan(agentId: string): StoredPlan | null {
    return this.devices.get(agentId)?.plan ?? null
  }

  /** Ids of every plan pushed to an agent so far (a batch counts its plan changes with it). */
  planIds(agentId: string): string[] {
    return [...(this.devices.get(agentId)?.planIds ?? [])]
  }

  setIntent(agentId: string, intent: PlanIntent): void {
    this.device(agentId).intent = intent
  }

  /**
   * The agent's cost table from its latency source, corrected online unless `raw` — each plan family
   * only while the correction measures better than none for it (CorrectionGate).
   */
  costTable(agentId: string, raw = false): CostTable {
    if (raw) return this.deps.sources.costTable(agentId)
    return this.withLoad(agentId, this.gatedTable(agentId))
  }

  /** The corrected table, with the candidates of families the correction does not help taken from the raw one. */
  private gatedTable(agentId: string): CostTable {
    const d = this.device(agentId)
    const corrected = this.deps.sources.costTable(agentId, (s) => d.correction.wrap(s))
    if (PLAN_FAMILIES.every((f) => d.gate.uses(f))) return corrected
    const raw = this.deps.sources.costTable(agentId)
    // Both tables come from the same manifest and codec options: candidates at the same places.
    return { ...corrected, exits: corrected.exits.map((g, i) => g.map((c, j) => (d.gate.uses(planFamily(c)) ? c : raw.exits[i]![j]!))) }
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
    const withWait = (c: Candidate): Candidate => {
      if (c.deviceLayers >= c.layers) return c
      // back to back at this plan's pace, or the device's own pace when it is slower (a camera's frame rate)
      const ownRate = 1000 / Math.max(0.01, c.deviceMs + c.edgeMs + c.overheadMs)
      const queueMs = wait(c.edgeMs + handoffMs, measuredRate === null ? ownRate : Math.min(ownRate, measuredRate))
      if (!(queueMs > 0)) return c
      loaded = true
      // (a policy's frames that leave on the device do not wait: planner.ts charges it to its edge share)
      return { ...c, queueMs }
    }
    const exits = table.exits.map((g) => g.map(withWait))
    const policies = table.policies?.map((g) => g.map(withWait))
    return loaded ? { ...table, profile: `${table.profile}+load`, exits, ...(policies ? { policies } : {}) } : table
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
      if (!d.intent || d.intent.pinned || !d.plan || !this.deps.sources.hasDeviceTable(id)) continue
      const kbps = d.plan.uplinkKbps
      const cond = { uplinkKbps: kbps, latencyMs: d.intent.latencyMs }
      const costs = this.atPercentile(id, this.costTable(id), d.intent.percentile)
      const next = planAt(costs, cond)
      const cur = candidateAt(costs, d.plan.exit, d.plan.deviceLayers, d.plan.codec ?? 'f32', d.plan.policy?.index)
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

  /** The device's measured dispersion at a percentile (src/shared/algorithms/tail.ts), from its latest inferences; cached until it learns again. */
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
    pin?: { exit: number; deviceLayers: number; codec?: Codec; policy?: number },
    percentile?: number
  ): Promise<StoredPlan> {
    const typical = this.costTable(agentId)
    const costs = this.atPercentile(agentId, typical, percentile)
    const served = this.deps.sources.modelOf(agentId)
    const m = served.manifest
    let p = planAt(costs, { uplinkKbps, latencyMs })!
    const path = pin ? exitPath(m, pin.exit) : []
    const pinCodec: Codec = pin ? frameCodec(pin.codec, pin.deviceLayers, path.length) : 'f32'
    if (pinCodec === 'u8' && pin!.deviceLayers !== 0)
      throw new UserError(`codec u8 carries the raw image: only for a plan that runs nothing on the device (deviceLayers 0), not ${pin!.deviceLayers}`)
    if (pinCodec === 'u8' && !m.preprocessing) throw new UserError(`codec u8 needs the edge to preprocess, and model ${m.id} declares no preprocessing`)
    /**
     * A configuration of `table`: planned ones are in it; a pinned codec the planner does not offer
     * (its accuracy not measured, or over the drop bound) is the user's choice — its bytes on the
     * link, the exit's accuracy as measured without it.
     */
    const find = (table: CostTable, exit: number, deviceLayers: number, codec: Codec, policy?: number): Candidate | undefined => {
      const hit = candidateAt(table, exit, deviceLayers, codec, policy)
      if (hit || policy !== undefined) return hit
      const c = candidateAt(table, exit, deviceLayers)
      if (!c) return undefined
      const uploadBytes = payloadBytes(codec, cutShape(m, exitPath(m, exit), deviceLayers))
      return { ...c, codec, uploadBytes, sendable: uploadBytes <= this.deps.maxUploadBytes }
    }
    if (pin) {
      if (pin.policy !== undefined && !costs.policies)
        throw new UserError(`policy ${pin.policy}: ${costs.policyNote ?? `agent ${agentId} does not run confidence-exit policies (update it)`}`)
      const cand = find(costs, pin.exit, pin.deviceLayers, pinCodec, pin.policy)
      if (!cand)
        throw new UserError(
          pin.policy !== undefined
            ? `model ${m.id} has no policy ${pin.policy} with deviceLayers ${pin.deviceLayers} (policies 0..${(costs.policies?.length ?? 0) - 1}, exit ${costs.policies?.[0]?.[0]?.exit}, f32)`
            : `model ${m.id} has no exit ${pin.exit} with deviceLayers ${pin.deviceLayers}`
        )
      if (!cand.sendable)
        throw new UserError(
          `exit ${pin.exit} with ${pin.deviceLayers} device layers sends ${cand.uploadBytes} bytes, more than the ${this.deps.maxUploadBytes} bytes an activation may have (the broker's packet limit less a frame's overhead)`
        )
      p = toPlan(costs, 'edgent', cand, { uplinkKbps, latencyMs })
    }
    const codec = p.codec
    const atPercentile = costs !== typical ? p : null
    if (atPercentile)
      p = {
        ...toPlan(typical, 'edgent', find(typical, p.exit, p.deviceLayers, codec, p.policy?.index)!, { uplinkKbps, latencyMs }),
        feasible: atPercentile.feasible
      }
    const policy = p.policy && this.wirePolicy(agentId, m, p.policy)
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
      ...(policy ? { policy } : {}),
      reason,
      at: new Date().toISOString(),
      agentId,
      breakdown: p.breakdown,
      ...(p.policy ? { mixture: p.policy.mixture } : {})
    }
    PlanSchema.parse(plan)
    this.deps.store.plans.insert({ ...plan, reason, at: plan.at! })
    this.remember(agentId, plan)
    const { agentId: _d, breakdown: _b, mixture: _x, ...wire } = plan
    await this.deps.publishRetained(topics.plan(agentId), encodeJson(wire))
    this.deps.log.info(
      { agentId, planId: plan.planId, exit: plan.exit, deviceLayers: plan.deviceLayers, uplinkKbps: Math.round(uplinkKbps), latencyMs, reason },
      'plan pushed'
    )
    this.deps.emit('plan', { id: agentId, plan })
    return plan
  }

  /** A chosen policy as the agent runs it: its thresholds, the model's temperatures and measure, the device's audit share. */
  private wirePolicy(agentId: string, m: Manifest, p: NonNullable<Plan['policy']>): PlanPolicy {
    const c = m.confidence!
    const audit = this.deps.sources.policyOptions(agentId)?.auditShare
    return { index: p.index, measure: c.measure, thresholds: p.thresholds, temperatures: c.temperatures, ...(audit ? { auditShare: audit } : {}) }
  }

  /** On a new estimate: the configuration map's choice for it; a different choice is pushed. */
  replanIfMoved(agentId: string, uplinkEstimateKbps: number): void {
    const d = this.devices.get(agentId)
    if (!d?.intent || d.intent.fixedKbps !== null || d.intent.pinned || !d.plan || !this.deps.sources.hasDeviceTable(agentId)) return
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
  /**
   * Measured drift: the device segments of DRIFT_BATCHES batches in a row measured more than
   * DRIFT_ERROR off the uncorrected predictions (median over each batch) — the device is no longer
   * what its source describes (a profile fitted at another speed, tables timed before a change it did
   * not announce). The sources stop using its profile and time its layers again.
   */
  private checkDrift(agentId: string, d: DevicePlanning, rows: readonly InferRow[], raw: CostTable): boolean {
    const errors: number[] = []
    const ratios: number[] = []
    for (const r of rows) {
      const plan = this.plans.get(r.planId)!
      if (plan.deviceLayers === 0 || !(r.deviceMs > 0)) continue
      const cand = candidateAt(raw, plan.exit, plan.deviceLayers, plan.codec) ?? candidateAt(raw, plan.exit, plan.deviceLayers)
      if (!cand || !(cand.deviceMs > 0)) continue
      errors.push(Math.abs(cand.deviceMs - r.deviceMs) / r.deviceMs)
      ratios.push(r.deviceMs / cand.deviceMs)
    }
    if (errors.length < 3) return false
    if (median(errors) <= DRIFT_ERROR) {
      d.driftBatches = 0
      return false
    }
    if (++d.driftBatches < DRIFT_BATCHES) return false
    d.driftBatches = 0
    return this.deps.sources.reportDrift(
      agentId,
      `its device segments measured ${median(ratios).toFixed(2)}× their predictions (median) in ${DRIFT_BATCHES} batches in a row`
    )
  }

  learn(agentId: string, rows: readonly InferRow[], update: boolean, uplinkEstimateKbps: number | null): InferSummary['prediction'] {
    const d = this.device(agentId)
    const now = () => ({ deviceFactor: d.correction.meanFactor('device'), edgeFactor: d.correction.meanFactor('edge'), overheadMs: d.correction.overheadMs })
    if (!rows.length) return { mapeCorrected: null, mapeUncorrected: null, ...now(), families: d.gate.view() }
    const raw = this.costTable(agentId, true)
    let errCorrected = 0
    let errRaw = 0
    for (const r of rows) {
      const plan = this.plans.get(r.planId)!
      const cond = { uplinkKbps: plan.uplinkKbps, latencyMs: plan.latencyMs }
      // a policy's row against its own component of the mixture (where the frame left), as planned and uncorrected
      errCorrected += Math.abs(r.predictedMs - r.e2eMs) / r.e2eMs
      if (plan.policy) {
        const c = candidateAt(raw, plan.exit, plan.deviceLayers, 'f32', plan.policy.index)
        const part = c && toPlan(raw, 'edgent', c, cond).policy?.mixture.find((x) => x.exit === r.exit && x.side === r.side)
        errRaw += part ? Math.abs(part.ms - r.e2eMs) / r.e2eMs : Math.abs(r.predictedMs - r.e2eMs) / r.e2eMs
        continue
      }
      const cand = candidateAt(raw, plan.exit, plan.deviceLayers, plan.codec) ?? candidateAt(raw, plan.exit, plan.deviceLayers)!
      errRaw += Math.abs(latencyOf(cand, cond) - r.e2eMs) / r.e2eMs
    }
    const mape = { mapeCorrected: errCorrected / rows.length, mapeUncorrected: errRaw / rows.length }
    if (!update) return { ...mape, ...now(), families: d.gate.view() }
    // The correction and the drift check learn per plan segment: a policy's frames split the path at
    // its exits, so only static plans' rows teach them.
    rows = rows.filter((r) => !this.plans.get(r.planId)!.policy)
    if (!rows.length) return { ...mape, ...now(), families: d.gate.view() }
    // A drift changes the source (its layers are timed again): nothing more to learn on the old one.
    if (this.checkDrift(agentId, d, rows, raw)) return { ...mape, ...now(), families: d.gate.view() }
    // Each plan's corrected and uncorrected predictions against its median, before this batch teaches
    // the correction (out of sample): the gate keeps the correction per family only where it is better.
    // The correction learns against its own prediction — with its current factors and overhead —
    // whichever table the plan was made with (an uncorrected plan's numbers would teach it twice).
    const corrected = this.deps.sources.costTable(agentId, (s) => d.correction.wrap(s))
    for (const planId of new Set(rows.map((r) => r.planId))) {
      const plan = this.plans.get(planId)!
      const mine = rows.filter((r) => r.planId === planId)
      const measured = median(mine.map((r) => r.e2eMs))
      const at = (t: CostTable) => candidateAt(t, plan.exit, plan.deviceLayers, plan.codec) ?? candidateAt(t, plan.exit, plan.deviceLayers)
      const [c, u] = [at(corrected), at(raw)]
      if (!c || !u || !(measured > 0)) continue
      const cond = { uplinkKbps: plan.uplinkKbps, latencyMs: plan.latencyMs }
      const predicted = latencyOf(c, cond) + (plan.breakdown.queueMs ?? 0)
      d.gate.observe(
        planFamily(c),
        Math.abs(predicted - measured) / measured,
        Math.abs(latencyOf(u, cond) + (plan.breakdown.queueMs ?? 0) - measured) / measured
      )
      const path = exitPath(this.deps.sources.model(plan.model).manifest, plan.exit).map((l) => l.id)
      if (plan.deviceLayers > 0) d.correction.observe('device', path.slice(0, plan.deviceLayers), c.deviceMs, median(mine.map((r) => r.deviceMs)))
      if (plan.deviceLayers < path.length) d.correction.observe('edge', path.slice(plan.deviceLayers), c.edgeMs, median(mine.map((r) => r.edgeMs)))
      // The fixed overhead is learned from the residual only when the link is what the plan assumed:
      // a batch caught by a bandwidth change (the estimate moved by > 30 %) missed for that reason.
      const linkMoved = plan.deviceLayers < plan.layers && uplinkEstimateKbps !== null && Math.abs(uplinkEstimateKbps - plan.uplinkKbps) > 0.3 * plan.uplinkKbps
      if (!linkMoved) d.correction.observeResidual(predicted, measured)
    }
    d.maps.clear()
    d.tails.clear()
    return { ...mape, ...now(), families: d.gate.view() }
  }
}
