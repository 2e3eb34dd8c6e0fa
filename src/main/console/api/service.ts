/**
 * The console API's implementation over the console core: plain methods (tested without any
 * transport) and one `call(method, args)` entry that every transport uses after its own sender
 * check. Arguments are validated here (api-schemas.ts), so no transport can skip it.
 */
import { npxCommand } from '../../../shared/npx.js'
import { changedSettings, DEFAULT_SETTINGS, type Settings } from '../../../shared/contracts/settings.js'
import { readSettings, settingsPath, writeSettings } from '../../runtime/settings-file.js'
import { UserError } from '../../../shared/errors.js'
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
  type LibraryModelView,
  type ModelCutsView,
  type MethodName,
  type ModelView,
  type Pairing,
  type ProfileView,
  type ResultOf,
  type SettingsView,
  type UploadView,
  CALIBRATION_POINTS_SHOWN
} from '../../../shared/contracts/console-api.js'
import {
  FIT_FEATURES,
  PAPER_2018,
  evaluateRegression,
  predictLayerMs,
  type CalibrationProfile,
  type RegressionKey,
  type Side
} from '../../../shared/algorithms/latency.js'
import { exitPath, inputBytes, layerMacs, type Layer } from '../../../shared/contracts/manifest.js'
import { idFromFileName, importModel, listModels, modelDirById } from '../../models/library.js'
import { loadManifest } from '../../runtime/files.js'
import { aggregatePasses } from '../../calibration/fit.js'
import { parseArgs } from './api-schemas.js'
import { compareRuns } from '../../../shared/algorithms/compare.js'
import { credentialsCommand, credentialsFor } from '../../../shared/contracts/credentials.js'
import type { EdgentConsole } from '../console.js'

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
  /** The data directory and what the console runs with (the Settings page); absent in bare test set-ups. */
  settings?: { dataDir: string; running: () => Settings }
}

/** What a shell knows of a call beyond its arguments: `signal` aborts when its caller went away. */
export interface CallContext {
  signal?: AbortSignal
}

export class ConsoleService {
  constructor(
    private readonly core: EdgentConsole,
    private readonly opts: ServiceOptions
  ) {}

  /** Validates and runs one call. Errors a user can cause are UserErrors with a clear message. */
  async call<M extends MethodName>(method: M, rawArgs: unknown, ctx: CallContext = {}): Promise<ResultOf<M>> {
    const args = parseArgs(method, rawArgs)
    const impl = this[method] as unknown as (a: ArgsOf<M>, ctx: CallContext) => ResultOf<M> | Promise<ResultOf<M>>
    return await impl.call(this, args, ctx)
  }

  /** Receives a file from a shell (capped) for a later call such as modelImport. */
  upload(fileName: string, source: AsyncIterable<Uint8Array> | Uint8Array): Promise<UploadView> {
    return this.core.uploads.receive(fileName, source)
  }

  /** Forwards every console event to a listener; returns the unsubscribe function. */
  onEvent(listener: (event: ConsoleEvent) => void): () => void {
    const offs = EVENT_NAMES.map((type) => {
      const h = (data: ConsoleEvents[typeof type]) => listener({ type, data } as ConsoleEvent)
      this.core.on(type, h)
      return () => this.core.off(type, h)
    })
    return () => {
      for (const off of offs) off()
    }
  }

  private settingsView(stored: Settings): SettingsView {
    const s = this.opts.settings
    if (!s) throw new UserError('settings are not available in this console (it was started without a shell)')
    const running = s.running()
    return {
      dataDir: s.dataDir,
      file: settingsPath(s.dataDir),
      stored,
      defaults: DEFAULT_SETTINGS,
      running,
      restartNeeded: changedSettings(stored, running),
      shell: this.opts.shell
    }
  }

  settings(): SettingsView {
    const s = this.opts.settings
    return this.settingsView(s ? readSettings(s.dataDir) : DEFAULT_SETTINGS) // without a data directory settingsView refuses
  }

  settingsUpdate(a: ArgsOf<'settingsUpdate'>): SettingsView {
    const view = this.settingsView(a.settings) // refuses before writing when there is no data directory
    writeSettings(view.dataDir, a.settings)
    this.core.log.info({ restartNeeded: view.restartNeeded }, 'settings stored (applied at the next start)')
    return view
  }

  status(): ResultOf<'status'> {
    return {
      model: this.core.model.id,
      mqttPort: this.core.mqttPort,
      devices: this.core.devices().length,
      shell: this.opts.shell,
      maxUploadBytes: this.core.uploads.maxBytes
    }
  }

  devices(): ResultOf<'devices'> {
    return this.core.devices()
  }

  pair(a: ArgsOf<'pair'>): Pairing {
    const { id, token, replaced, disconnected } = this.core.pair(a.id, { force: a.force === true })
    this.core.emit('devices', { reason: `paired ${id}` })
    const address = this.opts.brokerAddress()
    const tls = this.core.tls && this.core.mqttTlsPort ? { port: this.core.mqttTlsPort, ...this.core.tls } : null
    const c = credentialsFor({ id, token, host: address.replace(/:\d+$/, ''), port: Number(address.split(':').pop()), tls })
    return { id, token, command: credentialsCommand(`${id}.credentials.json`), credentials: c.text, broker: c.broker, replaced, disconnected }
  }

  unpair(a: ArgsOf<'unpair'>): ResultOf<'unpair'> {
    const r = this.core.unpair(a.id)
    this.core.emit('devices', { reason: `unpaired ${a.id}` })
    return r
  }

  workers(): ResultOf<'workers'> {
    return this.core.workers.list()
  }

  workerPair(a: ArgsOf<'workerPair'>): ResultOf<'workerPair'> {
    const { id, token, replaced } = this.core.workers.pair(a.id, { force: a.force === true })
    const broker = `mqtt://${this.opts.brokerAddress()}`
    // the token in the environment, not on the command line (ps shows every user a process's arguments)
    return { id, token, broker, command: `EDGENT_WORKER_TOKEN=${token} ${npxCommand('edgent', 'worker', '--broker', broker, '--id', id)}`, replaced }
  }

  workerUnpair(a: ArgsOf<'workerUnpair'>): ResultOf<'workerUnpair'> {
    return this.core.workers.unpair(a.id)
  }

  campaigns(): CampaignStatus[] {
    return this.core.campaigns.list()
  }

  campaignStart(a: ArgsOf<'campaignStart'>): ResultOf<'campaignStart'> {
    return {
      id: this.core.startCampaign(a.agent, a.kind, a.reps ?? 5, {
        ...(a.bandwidthsKbps ? { bandwidthsKbps: a.bandwidthsKbps } : {}),
        ...(a.latenciesMs ? { latenciesMs: a.latenciesMs } : {}),
        ...(a.uplinkKbps !== undefined ? { uplinkKbps: a.uplinkKbps } : {}),
        ...(a.timing !== undefined ? { timing: a.timing } : {}),
        ...(a.tags ? { tags: a.tags } : {}),
        ...(a.note !== undefined ? { note: a.note } : {})
      })
    }
  }

  runs(a: ArgsOf<'runs'>): ResultOf<'runs'> {
    return this.core.store.runs.list({
      ...(a.agent ? { agentId: this.knownAgent(a.agent) } : {}),
      source: a.source ?? 'user',
      ...(a.tag ? { tag: a.tag } : {}),
      limit: a.limit ?? 200
    })
  }

  annotate(a: ArgsOf<'annotate'>): ResultOf<'annotate'> {
    const change = { ...(a.tags ? { tags: a.tags } : {}), ...(a.note !== undefined ? { note: a.note } : {}) }
    if (a.target === 'run') {
      if (!this.core.store.runs.annotate(a.id, change)) throw new UserError(`unknown run "${a.id}"`)
      const r = this.core.store.runs.view(a.id)!
      return { target: 'run', id: a.id, tags: r.tags, note: r.note }
    }
    if (!this.core.store.campaigns.annotate(a.id, change)) throw new UserError(`unknown campaign "${a.id}"`)
    const c = this.core.campaigns.status(a.id)!
    this.core.emit('campaign', c)
    return { target: 'campaign', id: a.id, tags: c.tags, note: c.note }
  }

  runCompare(a: ArgsOf<'runCompare'>): ResultOf<'runCompare'> {
    const { runs } = this.core.store
    const view = (id: string) => {
      const r = runs.view(id)
      if (!r) throw new UserError(`unknown run "${id}" (edgent runs lists them)`)
      return r
    }
    const [x, y] = [view(a.a), view(a.b)]
    return compareRuns(x, y, runs.e2eMs(x.id), runs.e2eMs(y.id))
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
    const { campaigns, profiles } = this.core.store
    const row = profiles.byCampaign(a.campaign)
    const profile = row ? row.profile : null
    const regressions: Calibration['regressions'] = []
    if (profile) {
      for (const side of ['device', 'edge'] as const) {
        for (const [key, reg] of Object.entries(profile[side] ?? {})) {
          if (reg) regressions.push({ side, key: key as RegressionKey, intercept: reg.intercept, coefficients: [...reg.coefficients] })
        }
      }
    }
    // One point per configuration and side, as fitted: the fastest of a layers campaign's passes; and
    // the model-loading points where a whole model was loaded (session creation against model bytes).
    const point = (side: Side, key: RegressionKey, features: number[], ms: number, heldOut: boolean) => {
      const reg = profile?.[side]?.[key]
      return { side, key, features, runMs: ms, predictedMs: reg ? Math.max(0, evaluateRegression(reg, features)) : null, heldOut }
    }
    const points = aggregatePasses(campaigns.measurements(a.campaign)).flatMap((m) => [
      point(m.side, m.regressionKey, m.features, m.runMs, m.heldOut),
      ...(m.modelBytes > 0 ? [point(m.side, 'modelLoad', [m.modelBytes], m.loadMs, m.heldOut)] : [])
    ])
    const shown = points.length <= CALIBRATION_POINTS_SHOWN ? points : evenly(points, CALIBRATION_POINTS_SHOWN)
    return { campaign, featureNames: FIT_FEATURES, regressions, points: shown, pointsTotal: points.length }
  }

  modelInfo(a: ArgsOf<'modelInfo'>): ModelView {
    const m = a.agent ? this.core.sources.modelOf(this.knownAgent(a.agent)).manifest : this.core.model
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
    const row = this.core.store.profiles.current(agent)
    return row ? row.profile : null
  }

  /** Measured (single-layer slices, both sides) against predicted (regressions) per layer of an exit. */
  async layerLatencies(a: ArgsOf<'layerLatencies'>): Promise<LayerLatencies> {
    const agent = this.knownAgent(a.agent)
    const device = await this.core.sources.deviceTable(agent)
    const m = this.core.sources.modelOf(agent).manifest
    const exit = a.exit ?? Math.max(...m.exits.map((e) => e.exit))
    if (!m.exits.some((e) => e.exit === exit)) throw new UserError(`model ${m.id} has no exit ${exit} (exits 1..${m.exits.length})`)
    const edge = this.core.sources.edgeTable(m.id)
    const fitted = this.currentProfile(agent)
    const profile = fitted ?? PAPER_2018
    return {
      agentId: agent,
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
    await this.core.sources.deviceTable(agent)
    return this.core.planning.costTable(agent)
  }

  async load(): Promise<ResultOf<'load'>> {
    return this.core.load()
  }

  /** The device's measured dispersion at a percentile (tail-aware planning; the Planner page applies it to the cost table). */
  async tail(a: ArgsOf<'tail'>): Promise<ResultOf<'tail'>> {
    return this.core.planning.tail(this.knownAgent(a.agent), a.percentile)
  }

  infer(a: ArgsOf<'infer'>, ctx: CallContext = {}): Promise<ResultOf<'infer'>> {
    return this.core.infer(a, ctx.signal)
  }

  /** The device's latest stored inferences, oldest first. */
  inferences(a: ArgsOf<'inferences'>): InferencePoint[] {
    return this.core.store.runs.inferences(this.knownAgent(a.agent), a.limit ?? 10_000, a.afterId, a.source ?? 'all')
  }

  bandwidth(a: ArgsOf<'bandwidth'>): BandwidthPoint[] {
    return this.core.store.bandwidth.latest(this.knownAgent(a.agent), a.limit ?? 2000).map(({ bytes: _b, ...p }) => p)
  }

  exportCalibration(a: ArgsOf<'exportCalibration'>): ExportFile {
    const format = a.format ?? 'json'
    const what = a.what ?? 'calibration'
    if (what !== 'calibration' && a.campaign) throw new UserError('campaign is for exporting calibration data (runs, bandwidth and plans take agent)')
    if (what === 'calibration' && a.agent) throw new UserError('agent is for exporting runs, bandwidth or plans (calibration takes campaign)')
    const store = this.core.store
    const doc =
      what === 'calibration'
        ? store.calibration.export({ format, ...(a.campaign ? { campaign: a.campaign } : {}) })
        : what === 'plans'
          ? store.runs.exportPlans(format, a.agent ? this.knownAgent(a.agent) : undefined)
          : (what === 'runs' ? store.runs : store.bandwidth).export(format, a.agent ? this.knownAgent(a.agent) : undefined)
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')
    return {
      fileName: `edgent-${what}-${a.campaign ?? a.agent ?? 'all'}-${stamp}.${format}`,
      mimeType: format === 'csv' ? 'text/csv' : 'application/json',
      content: doc.content,
      summary: doc.summary
    }
  }

  /** A device's fitted profiles, newest first. */
  profiles(a: ArgsOf<'profiles'>): ProfileView[] {
    const agent = this.knownAgent(a.agent)
    return this.core.store.profiles.forDevice(agent).map((r) => ({
      id: r.id,
      agentId: r.agentId,
      campaignId: r.campaignId,
      campaignKind: r.campaignKind,
      createdAt: r.createdAt,
      current: r.current,
      fits: this.core.campaigns.status(r.campaignId)?.fits ?? []
    }))
  }

  useProfile(a: ArgsOf<'useProfile'>): ResultOf<'useProfile'> {
    const r = this.core.useProfile(a.agent, a.profile, a.regressor)
    this.core.emit('devices', { reason: `latency source of ${a.agent}: ${r.kind === 'profile' ? r.profileId : 'measured'}` })
    return r
  }

  models(): LibraryModelView[] {
    const devices = this.core.devices().filter((d) => d.paired)
    return listModels(this.core.opts.dataDir).map((e) => ({
      ...e,
      serving: e.id === this.core.model.id,
      devices: devices.filter((d) => d.model === e.id).map((d) => d.id)
    }))
  }

  async modelUse(a: ArgsOf<'modelUse'>): Promise<ResultOf<'modelUse'>> {
    const m = await this.core.assignModel(a.agent ?? null, a.model)
    return {
      model: m.id,
      agentId: a.agent ?? null,
      devices: this.core
        .devices()
        .filter((d) => d.paired && d.model === m.id)
        .map((d) => d.id)
    }
  }

  /** Imports uploaded files into the library; the uploads are removed whatever happens. */
  async modelImport(a: ArgsOf<'modelImport'>): Promise<ResultOf<'modelImport'>> {
    const { uploads } = this.core
    const release = uploads.hold([a.upload, a.images, a.labels].filter((u): u is string => !!u))
    try {
      if ((a.images === undefined) !== (a.labels === undefined)) throw new UserError('modelImport: images and labels go together')
      const r = await importModel(
        {
          file: uploads.path(a.upload),
          dataDir: this.core.opts.dataDir,
          id: a.id ?? idFromFileName(a.fileName),
          maxBytes: uploads.maxBytes,
          ...(a.inputShape ? { inputShape: a.inputShape } : {}),
          ...(a.preprocess ? { preprocess: a.preprocess } : {}),
          ...(a.accuracy ? { accuracy: a.accuracy } : {}),
          ...(a.images && a.labels ? { images: uploads.path(a.images), labels: uploads.path(a.labels) } : {}),
          ...(a.imageDir ? { imageDir: a.imageDir } : {})
        },
        this.core.executor,
        undefined,
        a.fileName
      )
      this.core.emit('devices', { reason: `model ${r.id} imported` })
      return {
        id: r.id,
        layers: r.manifest.layers.length,
        inputShape: [...r.manifest.input.shape],
        exits: r.manifest.exits.map((e) => ({ exit: e.exit, layers: e.layers.length, accuracy: e.accuracy, accuracySource: e.accuracySource })),
        notes: r.notes
      }
    } finally {
      release()
      for (const u of [a.upload, a.images, a.labels]) if (u) uploads.remove(u)
    }
  }

  modelExitsAdd(a: ArgsOf<'modelExitsAdd'>): ResultOf<'modelExitsAdd'> {
    return this.core.modelJobs.exitsAdd(a)
  }

  modelJobs(): ResultOf<'modelJobs'> {
    return this.core.modelJobs.list()
  }

  modelJobCancel(a: ArgsOf<'modelJobCancel'>): ResultOf<'modelJobCancel'> {
    return this.core.modelJobs.cancel(a.job)
  }

  exitPolicies(a: ArgsOf<'exitPolicies'>): ResultOf<'exitPolicies'> {
    return this.core.exitPolicies(a)
  }

  transfers(): ResultOf<'transfers'> {
    return this.core.distribution.transfers()
  }

  /** Per exit and cut point: the bytes that cross the link and the multiply-accumulates on each side. */
  modelCuts(a: ArgsOf<'modelCuts'>): ModelCutsView {
    const { manifest: m } = loadManifest(modelDirById(a.model, this.core.opts.dataDir))
    return {
      id: m.id,
      inputBytes: inputBytes(m),
      exits: m.exits.map((e) => {
        const path = exitPath(m, e.exit)
        const macs = path.map(layerMacs)
        const total = macs.reduce((s, x) => s + x, 0)
        let device = 0
        return {
          exit: e.exit,
          accuracy: e.accuracy,
          accuracySource: e.accuracySource,
          cuts: [
            { deviceLayers: 0, tensor: m.input.name, layer: null, type: 'input', ops: null, bytes: inputBytes(m), deviceMacs: 0, edgeMacs: total },
            ...path.map((l, i) => {
              device += macs[i]!
              return {
                deviceLayers: i + 1,
                tensor: l.output,
                layer: l.id,
                type: l.type,
                ops: l.type === 'block' ? l.ops : null,
                bytes: l.outputBytes,
                deviceMacs: device,
                edgeMacs: total - device
              }
            })
          ]
        }
      })
    }
  }

  private knownAgent(id: string): string {
    return this.core.fleet.known(id)
  }
}

/** `n` items of `all`, evenly spaced, in order. */
function evenly<T>(all: readonly T[], n: number): T[] {
  return Array.from({ length: n }, (_, i) => all[Math.floor((i * all.length) / n)]!)
}
