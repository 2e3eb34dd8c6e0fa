/**
 * The console API's implementation over the console core: plain methods (tested without any
 * transport) and one `call(method, args)` entry that every transport uses after its own sender
 * check. Arguments are validated here (api-schemas.ts), so no transport can skip it.
 */
import { UserError } from '../../shared/errors.js'
import {
  EVENT_NAMES,
  type ArgsOf,
  type BandwidthPoint,
  type Calibration,
  type CampaignStatus,
  type ConsoleEvent,
  type ConsoleEvents,
  type ExportFile,
  type InferencePoint,
  type LayerLatencies,
  type MethodName,
  type ModelView,
  type Pairing,
  type ProfileView,
  type ResultOf
} from '../../shared/console-api.js'
import { FIT_FEATURES, PAPER_2018, evaluateRegression, parseProfile, predictLayerMs, type CalibrationProfile, type RegressionKey, type Side } from '../../shared/latency.js'
import { exitPath, inputBytes, type Layer } from '../../shared/manifest.js'
import { checkAgentId } from '../../shared/topics.js'
import { buildCalibrationExport } from '../cli/campaign.js'
import { aggregatePasses } from '../campaign/fit.js'
import { parseArgs } from './api-schemas.js'
import type { EdgentConsole } from './console.js'

/** A profile's prediction for a layer, or null where the profile has no regression for its type. */
function predictOrNull(profile: CalibrationProfile, side: Side, layer: Layer): number | null {
  try {
    return predictLayerMs(profile, side, layer)
  } catch (err) {
    if (err instanceof UserError) return null
    throw err
  }
}

export interface ServiceOptions {
  shell: 'electron' | 'headless'
  /** How a Pi reaches this console's broker, for the pairing command (host:port). */
  brokerAddress: () => string
}

export class ConsoleService {
  constructor(
    private readonly core: EdgentConsole,
    private readonly opts: ServiceOptions
  ) {}

  /** Validates and runs one call. Errors a user can cause are UserErrors with a clear message. */
  async call<M extends MethodName>(method: M, rawArgs: unknown): Promise<ResultOf<M>> {
    const args = parseArgs(method, rawArgs)
    const impl = this[method] as unknown as (a: ArgsOf<M>) => ResultOf<M> | Promise<ResultOf<M>>
    return await impl.call(this, args)
  }

  /** Forwards every console event to a listener; returns the unsubscribe function. */
  onEvent(listener: (event: ConsoleEvent) => void): () => void {
    const offs = EVENT_NAMES.map((type) => {
      const h = (data: ConsoleEvents[typeof type]) => listener({ type, data } as ConsoleEvent)
      this.core.on(type, h)
      return () => this.core.off(type, h)
    })
    return () => offs.forEach((off) => off())
  }

  status(): ResultOf<'status'> {
    return { model: this.core.model.id, mqttPort: this.core.mqttPort, devices: this.core.devices().length, shell: this.opts.shell }
  }

  devices(): ResultOf<'devices'> {
    return this.core.devices()
  }

  pair(a: ArgsOf<'pair'>): Pairing {
    const { id, token } = this.core.pair(a.id)
    this.core.emit('devices', { reason: `paired ${id}` })
    return { id, token, command: `npx edgent-agent --broker mqtt://${this.opts.brokerAddress()} --id ${id} --token ${token}` }
  }

  unpair(a: ArgsOf<'unpair'>): ResultOf<'unpair'> {
    const r = this.core.unpair(a.id)
    this.core.emit('devices', { reason: `unpaired ${a.id}` })
    return r
  }

  campaigns(): CampaignStatus[] {
    return this.core.campaigns.list()
  }

  campaignStart(a: ArgsOf<'campaignStart'>): ResultOf<'campaignStart'> {
    return { id: this.core.startCampaign(a.agent, a.kind, a.reps ?? 5, { ...(a.bandwidthsKbps ? { bandwidthsKbps: a.bandwidthsKbps } : {}), ...(a.latenciesMs ? { latenciesMs: a.latenciesMs } : {}) }) }
  }

  campaignStatus(a: ArgsOf<'campaignStatus'>): CampaignStatus {
    const s = this.core.campaigns.status(a.id)
    if (!s) throw new UserError(`unknown campaign "${a.id}"`)
    return s
  }

  campaignCancel(a: ArgsOf<'campaignCancel'>): ResultOf<'campaignCancel'> {
    this.core.campaigns.cancel(a.id)
    return { id: a.id }
  }

  /** A campaign's measured points beside its fitted regressions' predictions. */
  calibration(a: ArgsOf<'calibration'>): Calibration {
    const campaign = this.campaignStatus({ id: a.campaign })
    const db = this.core.store.handle
    const row = db.prepare('SELECT json FROM profiles WHERE campaign_id = ?').get(a.campaign) as { json: string } | undefined
    const profile = row ? parseProfile(JSON.parse(row.json), `profile of campaign ${a.campaign}`) : null
    const regressions: Calibration['regressions'] = []
    if (profile) {
      for (const side of ['device', 'edge'] as const) {
        for (const [key, reg] of Object.entries(profile[side] ?? {})) {
          if (reg) regressions.push({ side, key: key as RegressionKey, intercept: reg.intercept, coefficients: [...reg.coefficients] })
        }
      }
    }
    // One point per configuration and side, as fitted: the fastest of a layers campaign's passes.
    const rows = (db.prepare('SELECT side, regression_key, spec_json, features_json, run_ms, held_out FROM measurements WHERE campaign_id = ? ORDER BY id').all(a.campaign) as { side: Side; regression_key: RegressionKey; spec_json: string; features_json: string; run_ms: number; held_out: number }[]).map((m) => ({ ...m, config: m.spec_json, runMs: m.run_ms, loadMs: 0 }))
    const points = aggregatePasses(rows).map((m) => {
      const features = JSON.parse(m.features_json) as number[]
      const reg = profile?.[m.side]?.[m.regression_key]
      return { side: m.side, key: m.regression_key, features, runMs: m.runMs, predictedMs: reg ? Math.max(0, evaluateRegression(reg, features)) : null, heldOut: m.held_out === 1 }
    })
    return { campaign, featureNames: FIT_FEATURES, regressions, points }
  }

  modelInfo(): ModelView {
    const m = this.core.model
    return {
      id: m.id,
      inputShape: [...m.input.shape],
      inputBytes: inputBytes(m),
      layers: m.layers.map((l) => ({ id: l.id, type: l.type, outputShape: [...l.outputShape], outputBytes: l.outputBytes })),
      exits: m.exits.map((e) => ({ exit: e.exit, accuracy: e.accuracy, layers: [...e.layers] }))
    }
  }

  /** The current fitted profile of a device, if a campaign produced one. */
  private currentProfile(agent: string): CalibrationProfile | null {
    const row = this.core.store.handle.prepare('SELECT json FROM profiles WHERE device_id = ? AND current = 1').get(agent) as { json: string } | undefined
    return row ? parseProfile(JSON.parse(row.json), `current profile of ${agent}`) : null
  }

  /** Measured (single-layer slices, both sides) against predicted (regressions) per layer of an exit. */
  async layerLatencies(a: ArgsOf<'layerLatencies'>): Promise<LayerLatencies> {
    const agent = this.knownAgent(a.agent)
    const m = this.core.model
    const exit = a.exit ?? Math.max(...m.exits.map((e) => e.exit))
    if (!m.exits.some((e) => e.exit === exit)) throw new UserError(`model ${m.id} has no exit ${exit} (exits 1..${m.exits.length})`)
    const device = await this.core.deviceTable(agent)
    const edge = this.core.edgeLayerTable
    const fitted = this.currentProfile(agent)
    const profile = fitted ?? PAPER_2018
    return {
      agent,
      exit,
      profile: { id: profile.id, name: profile.name ?? profile.id, fitted: !!fitted },
      layers: exitPath(m, exit).map((l) => ({
        id: l.id,
        type: l.type,
        deviceMeasuredMs: device.layerMs[l.id] ?? 0,
        edgeMeasuredMs: edge.layerMs[l.id] ?? 0,
        devicePredictedMs: predictOrNull(profile, 'device', l),
        edgePredictedMs: predictOrNull(profile, 'edge', l)
      }))
    }
  }

  /** The cost table the console plans with for a device (measured, online-corrected). */
  async costTable(a: ArgsOf<'costTable'>): Promise<ResultOf<'costTable'>> {
    const agent = this.knownAgent(a.agent)
    await this.core.deviceTable(agent)
    return this.core.costTable(agent)
  }

  infer(a: ArgsOf<'infer'>): Promise<ResultOf<'infer'>> {
    return this.core.infer(a)
  }

  /** The device's latest stored inferences, oldest first. */
  inferences(a: ArgsOf<'inferences'>): InferencePoint[] {
    const agent = this.knownAgent(a.agent)
    const cols = 'id, created_at, run_id, plan_id, exit, device_layers, latency_req_ms, predicted_ms, device_ms, transfer_ms, edge_ms, e2e_ms, met, correct, uplink_kbps'
    const db = this.core.store.handle
    const limit = a.limit ?? 10_000
    const rows = (
      a.afterId !== undefined
        ? db.prepare(`SELECT ${cols} FROM inferences WHERE device_id = ? AND id > ? ORDER BY id ASC LIMIT ?`).all(agent, a.afterId, limit)
        : db.prepare(`SELECT ${cols} FROM inferences WHERE device_id = ? ORDER BY id DESC LIMIT ?`).all(agent, limit).reverse()
    ) as Record<string, number | string | null>[]
    const bool = (v: unknown) => (v === null ? null : v === 1)
    return rows.map((r) => ({
      id: r['id'] as number,
      at: r['created_at'] as string,
      runId: r['run_id'] as string | null,
      planId: r['plan_id'] as string,
      exit: r['exit'] as number,
      deviceLayers: r['device_layers'] as number,
      latencyReqMs: r['latency_req_ms'] as number,
      predictedMs: r['predicted_ms'] as number,
      deviceMs: r['device_ms'] as number,
      transferMs: r['transfer_ms'] as number | null,
      edgeMs: r['edge_ms'] as number,
      e2eMs: r['e2e_ms'] as number | null,
      met: bool(r['met']),
      correct: bool(r['correct']),
      uplinkKbps: r['uplink_kbps'] as number | null
    }))
  }

  bandwidth(a: ArgsOf<'bandwidth'>): BandwidthPoint[] {
    const agent = this.knownAgent(a.agent)
    const rows = this.core.store.handle
      .prepare('SELECT at, source, kbps, smoothed_kbps FROM bandwidth_samples WHERE device_id = ? ORDER BY id DESC LIMIT ?')
      .all(agent, a.limit ?? 2000) as { at: string; source: 'activation' | 'probe'; kbps: number; smoothed_kbps: number }[]
    return rows.reverse().map((r) => ({ at: r.at, source: r.source, kbps: r.kbps, smoothedKbps: r.smoothed_kbps }))
  }

  exportCalibration(a: ArgsOf<'exportCalibration'>): ExportFile {
    const format = a.format ?? 'json'
    const doc = buildCalibrationExport(this.core.store, { format, ...(a.campaign ? { campaign: a.campaign } : {}) })
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')
    return {
      fileName: `edgent-calibration-${a.campaign ?? 'all'}-${stamp}.${format}`,
      mimeType: format === 'csv' ? 'text/csv' : 'application/json',
      content: doc.content,
      summary: doc.summary
    }
  }

  /** A device's fitted profiles, newest first. */
  profiles(a: ArgsOf<'profiles'>): ProfileView[] {
    const agent = this.knownAgent(a.agent)
    const rows = this.core.store.handle
      .prepare('SELECT p.id, p.device_id, p.campaign_id, p.created_at, p.current, c.kind FROM profiles p JOIN campaigns c ON c.id = p.campaign_id WHERE p.device_id = ? ORDER BY p.created_at DESC')
      .all(agent) as { id: string; device_id: string; campaign_id: string; created_at: string; current: number; kind: string }[]
    return rows.map((r) => ({ id: r.id, deviceId: r.device_id, campaignId: r.campaign_id, campaignKind: r.kind, createdAt: r.created_at, current: r.current === 1, fits: this.core.campaigns.status(r.campaign_id)?.fits ?? [] }))
  }

  useProfile(a: ArgsOf<'useProfile'>): ResultOf<'useProfile'> {
    const r = this.core.useProfile(a.agent, a.profile)
    this.core.emit('devices', { reason: `latency source of ${a.agent}: ${r.kind === 'profile' ? r.profileId : 'measured'}` })
    return r
  }

  private knownAgent(id: string): string {
    checkAgentId(id)
    if (!this.core.store.device(id)) throw new UserError(`unknown agent "${id}" (pair it first)`)
    return id
  }
}
