/**
 * Latency sources: the one owner, per device and model, of what predicts a plan's latency — the
 * edge's and the device's measured per-layer tables, the device's current calibration profile (and
 * why it is or is not the source: a profile that cannot predict the served model is reported, and
 * the measured tables plan instead), which profile and which of its regressors predict (chosen by the
 * user or by a plans campaign), the codecs a device's plans may use, and the cost tables built from
 * all of it: the raw one, one wrapped by a correction (planning's online correction), and one per
 * candidate predictor for plans campaigns to score.
 *
 * Planning (planning.ts) reads cost tables from here and learns on top of them; a change of source
 * (a new profile, another regressor, another model) is announced to `onChange` listeners, which drop
 * what they derived from the old one.
 */
import type { Logger } from 'pino'
import type { AgentRequest, LayerTable } from '../../../shared/contracts/agent-api.js'
import { measureCodecCosts } from '../../../shared/algorithms/codec-cost.js'
import { isCodec, type Codec } from '../../../shared/algorithms/codecs.js'
import type { LatencySource } from '../../../shared/contracts/console-api.js'
import { UserError, errorMessage } from '../../../shared/errors.js'
import { PAPER_2018, REGRESSOR_TEXT, regressorsOf, type CalibrationProfile, type Regressor } from '../../../shared/algorithms/latency.js'
import { measuredPieces, measuredSource } from '../../../shared/algorithms/measured-source.js'
import { computeIdentity, type Hello } from '../../../shared/contracts/messages.js'
import {
  DEFAULT_MAX_CODEC_DROP_PTS,
  buildCostTable,
  profileSource,
  type CodecOptions,
  type CostTable,
  type LayerLatencySource,
  type PolicyOptions
} from '../../../shared/algorithms/planner.js'
import { policiesUnavailable } from '../../../shared/algorithms/policy-plans.js'
import type { PredictorTable } from '../../calibration/plans.js'
import type { OrtExecutor } from '../../runtime/executor.js'
import { measureLayers } from '../../runtime/layer-timer.js'
import type { Store } from '../../store/store.js'
import type { Models, ServedModel } from './models.js'

export interface LatencySourcesDeps {
  store: Store
  executor: OrtExecutor
  models: Models
  /** Makes the agent hold a model (fetched from this console when it does not). */
  ensureOnAgent(agentId: string, m: ServedModel): Promise<void>
  request: AgentRequest
  log: Logger
  /** Repetitions when timing layers (the edge at start, a device on first contact). */
  profileReps: number
  /** The largest activation the console accepts: cost tables mark plans sending more unsendable. */
  maxUploadBytes: number
  /** An agent's hello (the codecs it sends and what encoding costs it); absent: f32 only. */
  hello?(agentId: string): Hello | null | undefined
  /** The largest accuracy drop a lossy codec may cost, percentage points (default 0.5). */
  maxCodecDropPts?: number
  /** Whether devices' plans may use confidence-exit policies unless set per device (default true). */
  policies?: boolean
}

/** A device's current profile as read for its served model, and why it cannot plan (null: it can). */
interface CurrentProfile {
  id: string
  /** null when the stored document does not pass the schema (the problem says so) */
  profile: CalibrationProfile | null
  problem: string | null
  /** Why the profile no longer matches the device (it announced another speed since it was fitted); null: it does. */
  stale: string | null
}

interface DeviceSources {
  /** The model the tables and the profile check below are for. */
  model: string
  deviceTable: LayerTable | null
  /** The device's compute identity (computeIdentity's key) when its table was measured. */
  tableCompute?: string | null
  /** Plans measured far from their predictions (reportDrift): the profile is not used until the source changes. */
  drift?: string | null
  /** undefined: not read yet; null: the device has no current profile. */
  profile?: CurrentProfile | null
}

export class LatencySources {
  private readonly devices = new Map<string, DeviceSources>()
  /** This machine's (the edge's) per-layer timings, per model. */
  private readonly edge = new Map<string, LayerTable>()
  private readonly timingEdge = new Map<string, Promise<LayerTable>>()
  private readonly listeners = new Set<(agentId: string) => void>()
  /** Per device: its policy options, and whether policies are on for it (absent: the console's default). */
  private readonly policySettings = new Map<string, PolicyOptions>()
  private readonly policyEnabled = new Map<string, boolean>()
  private edgeDecodeNs: Record<Codec, number> | null = null
  /** The largest accuracy drop a lossy codec may cost a plan, percentage points. */
  maxCodecDropPts: number

  constructor(private readonly deps: LatencySourcesDeps) {
    this.maxCodecDropPts = deps.maxCodecDropPts ?? DEFAULT_MAX_CODEC_DROP_PTS
  }

  /** Times every layer of the default model on this machine (the edge); others are timed when first planned. */
  async start(): Promise<void> {
    await this.ensureEdge(this.deps.models.default)
  }

  stop(): void {
    this.devices.clear()
  }

  /** Calls `listener(agentId)` whenever a device's source changes; returns the unsubscribe. */
  onChange(listener: (agentId: string) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  // ------------------------------------------------------------------ measured tables

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

  private device(id: string): DeviceSources {
    let d = this.devices.get(id)
    if (!d) {
      d = { model: this.deps.models.forDevice(id).id, deviceTable: null }
      this.devices.set(id, d)
    }
    return d
  }

  /** A served model by id. */
  model(modelId: string): ServedModel {
    return this.deps.models.get(modelId)
  }

  /** The model a device's tables are for. */
  modelOf(agentId: string): ServedModel {
    return this.deps.models.get(this.device(agentId).model)
  }

  /** After a device's model assignment changed: its tables start over for the new model. Returns whether it changed. */
  modelChanged(agentId: string): boolean {
    const d = this.devices.get(agentId)
    const model = this.deps.models.forDevice(agentId).id
    if (d && d.model === model) return false
    this.devices.set(agentId, { model, deviceTable: null })
    if (d) this.notify(agentId)
    return !!d
  }

  /** Whether the device's layers have been timed for its model (plans need them). */
  hasDeviceTable(agentId: string): boolean {
    return !!this.devices.get(agentId)?.deviceTable
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
    d.tableCompute = computeIdentity(this.deps.hello?.(agentId))?.key ?? null
    // Without a profile, the tables timed again are the remedy of a drift: it is over. (With one, the
    // profile stays out until the device is recalibrated or a profile is chosen.)
    if (d.drift && !this.currentProfile(agentId)) {
      d.drift = null
      this.notify(agentId)
    }
    this.deps.log.info({ agentId, exitFusedMs: r.exitFusedMs }, 'device layers timed')
    return r
  }

  // ------------------------------------------------------------------ the current source

  /**
   * The latency source the planner uses for a device: its current fitted profile (a campaign's
   * regressions for both sides) when it has one that predicts every layer of the served model,
   * else the measured per-layer tables. `useProfile` selects.
   */
  latencySource(agentId: string): LatencySource {
    const p = this.currentProfile(agentId)
    const stale = p?.stale ?? this.device(agentId).drift ?? null
    if (p && !p.problem && !stale) return { kind: 'profile', profileId: p.id, problem: null, stale: null }
    return { kind: 'measured', profileId: p?.id ?? null, problem: p?.problem ?? null, stale }
  }

  /** Whether the current profile predicts the device now (readable, matching what it announces, no drift). */
  private usable(agentId: string, p: CurrentProfile | null): p is CurrentProfile & { profile: CalibrationProfile } {
    return !!p?.profile && !p.problem && !p.stale && !this.device(agentId).drift
  }

  /**
   * A device's hello arrived: when the speed it announces (computeIdentity) differs from when its
   * layers were timed, its table is dropped (timed again before its next plan); and whether its
   * profile still matches is checked again. Listeners hear of it only when something changed.
   */
  helloChanged(agentId: string): void {
    const d = this.devices.get(agentId)
    if (!d) return
    const now = computeIdentity(this.deps.hello?.(agentId))
    const before = JSON.stringify(this.latencySource(agentId))
    let changed = false
    if (d.deviceTable && now && d.tableCompute && d.tableCompute !== now.key) {
      d.deviceTable = null
      changed = true
      this.deps.log.warn({ agentId, now: now.text }, 'the device announces another speed: its layers are timed again before its next plan')
    }
    d.profile = undefined
    if (changed || JSON.stringify(this.latencySource(agentId)) !== before) this.notify(agentId)
  }

  /**
   * Plans of a device measured far from their predictions (planning's drift check): its profile is
   * not used until its source changes (a new profile, `useProfile`), and its layers are timed again.
   * Returns whether this was news (a drift already reported is not reported again).
   */
  reportDrift(agentId: string, why: string): boolean {
    const d = this.device(agentId)
    if (d.drift) return false
    d.drift = `${why}: planning with its layers measured again until it is recalibrated (a layers campaign) or a profile is chosen`
    d.deviceTable = null
    this.deps.log.warn({ agentId, why }, 'predictions drifted from what plans measure')
    this.notify(agentId)
    return true
  }

  private currentProfile(agentId: string): CurrentProfile | null {
    const d = this.device(agentId)
    if (d.profile !== undefined) return d.profile
    const stored = this.deps.store.profiles.current(agentId)
    if (!stored) {
      d.profile = null
      return null
    }
    let profile: CalibrationProfile | null = null
    let problem: string | null = null
    // The speed the device announced when the profile's campaign ran, against what it announces now.
    const then = this.deps.store.campaigns.get(stored.campaignId)?.params?.machines?.deviceCompute
    const now = computeIdentity(this.deps.hello?.(agentId))
    const stale =
      then && now && then.key !== now.key
        ? `profile ${stored.id} was fitted when ${agentId} announced ${then.text}; it now announces ${now.text}: planning with its layers measured again until it is recalibrated (a layers campaign)`
        : null
    try {
      profile = stored.profile
      const src = profileSource(profile)
      for (const l of this.modelOf(agentId).manifest.layers) for (const side of ['device', 'edge'] as const) src.layerMs(side, l)
    } catch (err) {
      problem = `${errorMessage(err)}: planning with the measured tables instead`
      this.deps.log.warn({ agentId, profile: stored.id, problem }, 'current profile cannot predict the served model')
    }
    d.profile = { id: stored.id, profile, problem, stale }
    return d.profile
  }

  /** What predicts a device's layers now: its current profile, else its measured tables (which must have been timed). */
  source(agentId: string): LayerLatencySource {
    const d = this.device(agentId)
    if (!d.deviceTable) throw new UserError(`agent ${agentId} has not been profiled yet`)
    const p = this.currentProfile(agentId)
    const m = this.deps.models.get(d.model).manifest
    const edge = this.edgeTable(d.model)
    // a profile prices a policy's sessions as the device and the edge measured them, where they did
    return this.usable(agentId, p) ? { ...profileSource(p.profile), pieceMs: measuredPieces(d.deviceTable, edge) } : measuredSource(m, d.deviceTable, edge)
  }

  /** The device's cost table for its served model from its source as is, or wrapped (planning's online correction). */
  costTable(agentId: string, wrap?: (source: LayerLatencySource) => LayerLatencySource): CostTable {
    const source = this.source(agentId)
    const m = this.modelOf(agentId).manifest
    return buildCostTable(m, wrap ? wrap(source) : source, this.deps.maxUploadBytes, this.codecOptions(agentId), this.policyOptions(agentId))
  }

  /** Whether a device's plans may use confidence-exit policies (the user's choice, else the console's default). */
  policiesOn(agentId: string): boolean {
    return this.policyEnabled.get(agentId) ?? this.deps.policies ?? true
  }

  /** Why a device's plans cannot use policies now, or null. */
  policiesUnavailable(agentId: string): string | null {
    if (!this.deps.hello?.(agentId)?.policies) return `agent ${agentId} does not run confidence-exit policies (an agent from before them: update it)`
    return policiesUnavailable(this.modelOf(agentId).manifest)
  }

  /**
   * How a device's plans may use confidence-exit policies (audits, tuned thresholds, tolerance);
   * undefined: static plans only (policies off for it, or its agent does not run them).
   */
  policyOptions(agentId: string): PolicyOptions | undefined {
    if (!this.policiesOn(agentId) || !this.deps.hello?.(agentId)?.policies) return undefined
    return this.policySettings.get(agentId) ?? {}
  }

  /** Changes a device's policy options (whether or not policies are on for it), for the plans made after. */
  updatePolicyOptions(agentId: string, patch: (o: PolicyOptions) => PolicyOptions): void {
    this.policySettings.set(agentId, patch(this.policySettings.get(agentId) ?? {}))
    this.notify(agentId)
  }

  /** Turns a device's policies on with these options, or off (null), for the plans made after. */
  setPolicyOptions(agentId: string, o: PolicyOptions | null): void {
    this.policyEnabled.set(agentId, o !== null)
    if (o) this.policySettings.set(agentId, o)
    this.notify(agentId)
  }

  /** After a device's profile changed: the cached one is forgotten and listeners drop what they derived from it. */
  sourceChanged(agentId: string): void {
    const d = this.device(agentId)
    d.profile = undefined
    d.drift = null
    this.notify(agentId)
  }

  private notify(agentId: string): void {
    for (const l of this.listeners) l(agentId)
  }

  /**
   * Selects a device's current profile (one of its own), or none (`null`: the measured tables); with
   * `regressor`, also which of the profile's regressors predicts (the user's choice, which plans
   * campaigns then leave alone).
   */
  useProfile(agentId: string, profileId: string | null, regressor?: Regressor): LatencySource {
    const profiles = this.deps.store.profiles
    if (profileId !== null) {
      const stored = profiles.get(profileId)
      if (!stored) throw new UserError(`unknown profile "${profileId}"`)
      if (stored.agentId !== agentId) throw new UserError(`profile "${profileId}" was fitted for ${stored.agentId}, not ${agentId}`)
      if (regressor) {
        const has = regressorsOf(stored.profile)
        if (!has.includes(regressor))
          throw new UserError(
            `profile "${profileId}" has no ${REGRESSOR_TEXT[regressor]} (its campaign fitted none: too few points per layer type, or an older console); it has: ${has.join(', ')}`
          )
        profiles.chooseRegressor(profileId, regressor, 'user')
      }
    } else if (regressor) throw new UserError('a regressor is chosen for a profile, not for the measured tables')
    profiles.makeCurrent(agentId, profileId)
    this.sourceChanged(agentId)
    this.deps.log.info({ agentId, profileId }, 'latency source selected')
    return this.latencySource(agentId)
  }

  /**
   * After a plans campaign scored a profile's regressors on real plans: the profile predicts with the
   * one with the largest share of end-to-end predictions within ±10 % (the field's figure; the lower
   * median error breaks a tie) from now on — unless the user chose one (useProfile). Says what it
   * chose and why.
   */
  chooseRegressor(
    agentId: string,
    profileId: string,
    scored: readonly { profileId?: string; regressor?: Regressor; e2eWithin10: number | null; e2eMedian: number | null }[],
    campaignId: string
  ): { regressor: Regressor; changed: boolean; why: string } {
    const stored = this.deps.store.profiles.get(profileId)
    if (!stored) throw new UserError(`unknown profile "${profileId}"`)
    const p = stored.profile
    if (p.regressorChosenBy === 'user') return { regressor: p.regressor, changed: false, why: `the ${p.regressor} regressor was chosen by the user` }
    const mine = scored.filter((x) => x.profileId === profileId && x.regressor && x.e2eWithin10 !== null && x.e2eMedian !== null)
    if (mine.length < 2) return { regressor: p.regressor, changed: false, why: 'the profile has one regressor: nothing to choose' }
    const better = (a: (typeof mine)[number], b: (typeof mine)[number]) =>
      b.e2eWithin10! > a.e2eWithin10! || (b.e2eWithin10 === a.e2eWithin10 && b.e2eMedian! < a.e2eMedian!) ? b : a
    const best = mine.reduce(better)
    const pct = (v: number) => `${(v * 100).toFixed(1)} %`
    const why = `end-to-end predictions within ±10 % on these plans (median error): ${mine.map((x) => `${x.regressor} ${pct(x.e2eWithin10!)} (${pct(x.e2eMedian!)})`).join(', ')}`
    if (best.regressor === p.regressor) return { regressor: p.regressor, changed: false, why }
    this.deps.store.profiles.chooseRegressor(profileId, best.regressor!, `plans campaign ${campaignId}: ${why}`)
    if (this.deps.store.profiles.current(agentId)?.id === profileId) this.sourceChanged(agentId)
    this.deps.log.info({ agentId, profileId, regressor: best.regressor, why }, 'profile regressor chosen by a plans campaign')
    return { regressor: best.regressor!, changed: true, why }
  }

  // ------------------------------------------------------------------ codecs and candidate predictors

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
    for (const stored of this.deps.store.profiles.forDevice(agentId)) {
      let p: CalibrationProfile
      try {
        p = stored.profile
      } catch {
        continue // a stored document that no longer passes the schema predicts nothing
      }
      const timing = p.source?.['timing']
      const label = `profile ${stored.id} (${stored.campaignKind}${typeof timing === 'string' ? `, ${timing}` : ''})`
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
        profileId: stored.id,
        regressor: p.regressor
      })
      for (const other of regressors.filter((r) => r !== p.regressor)) {
        tryAdd(`${label}: ${REGRESSOR_TEXT[other]}, ${parts.join(' + ')}`, () => buildCostTable(m, profileSource({ ...p, regressor: other }), max), {
          gridHeldOut: held(other),
          profileId: stored.id,
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
}
