/**
 * The console core (headless), as a table of contents: the store, the edge runtime and the served
 * models, the broker (embedded, or an external one), the agent link, the fleet, model distribution,
 * the link monitor, planning, co-inference and campaigns — constructed in order, started in order, stopped in reverse.
 * Each module owns its state; this file only wires them. The Electron and headless shells share it.
 */
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { AgentCommand, AgentRequest, CommandArgsIn, CommandReply } from '../../shared/contracts/agent-api.js'
import type { DeviceView, EdgeLoadView, ExitPoliciesView, InferRow, InferSummary, LatencySource } from '../../shared/contracts/console-api.js'
import type { Manifest } from '../../shared/contracts/manifest.js'
import { OrtExecutor, edgeWorkers } from '../runtime/executor.js'
import { Store } from '../store/store.js'
import { Campaigns, type SweepOptions } from './features/campaigns/campaigns.js'
import { AgentLink } from './features/agent-link.js'
import { CONSOLE_USERNAME, EmbeddedBroker } from './broker/broker.js'
import { ensureBrokerTls } from './broker/tls.js'
import { FRAME_OVERHEAD_MAX } from '../../shared/contracts/frame.js'
import { CoInference, type InferOptions } from './features/coinference.js'
import { Workers } from './features/workers.js'
import { Audits } from './features/audits.js'
import type { Emit } from './api/events.js'
import { Fleet } from './features/fleet.js'
import { LinkMonitor } from './features/link-monitor.js'
import type { ConsoleOptions } from './options.js'
import { Planning } from './features/planning.js'
import { Lifecycle, type ConsoleModule, type Registered } from './lifecycle.js'
import { LatencySources } from './features/latency-sources.js'
import { Distribution } from './features/distribution.js'
import { Models, type ServedModel } from './features/models.js'
import { Uploads } from './api/uploads.js'
import { ModelJobs } from './features/model-jobs.js'
import { EdgeLoad } from './features/edge-load.js'
import { DEFAULT_MAX_IMPORT_BYTES } from '../models/library.js'
import type { Regressor } from '../../shared/algorithms/latency.js'

export { type ConsoleOptions, DEFAULT_CONSOLE } from './options.js'
export type { InferRow, InferSummary } from '../../shared/contracts/console-api.js'

export class EdgentConsole extends EventEmitter {
  readonly store: Store
  readonly executor: OrtExecutor
  readonly models: Models
  readonly broker: EmbeddedBroker | null
  readonly link: AgentLink
  readonly fleet: Fleet
  readonly distribution: Distribution
  readonly monitor: LinkMonitor
  /** What predicts each device's latency: measured tables, profiles, regressors, cost tables. */
  readonly sources: LatencySources
  readonly planning: Planning
  readonly coinference: CoInference
  readonly workers: Workers
  readonly audits: Audits
  readonly campaigns: Campaigns
  readonly uploads: Uploads
  /** Long work on the model library (adding exits), each job in an admin worker. */
  readonly modelJobs: ModelJobs
  /** The edge's measured load (its pool's waits and service times, every device's frames). */
  readonly edgeLoad: EdgeLoad
  mqttPort = 0
  /** The embedded broker's TLS port (0: no TLS listener). */
  mqttTlsPort = 0
  /** The CA agents pin for mqtts:// (null without a TLS listener). */
  tls: { ca: string; caSha256: string } | null = null
  private readonly lifecycle: Lifecycle

  constructor(readonly opts: ConsoleOptions) {
    super()
    const log = opts.log
    this.executor = new OrtExecutor({ maxSessions: 128, workers: opts.edgeWorkers ?? edgeWorkers() })
    // the edge's threads: the console's own pool's and its live edge workers' (workers.ts)
    this.edgeLoad = new EdgeLoad(() => this.workers.capacity())
    this.executor.observe((r) => {
      // runs of a device (co-inference); the console's own (timing, campaigns) are not a device's load
      if (r.owner) this.edgeLoad.addRun({ owner: r.owner, at: r.at, queuedMs: r.queuedMs, serviceMs: r.serviceMs, runMs: r.runMs })
    })
    this.store = new Store(join(opts.dataDir, 'edgent.db'))
    const emit: Emit = (event, data) => void this.emit(event, data)
    const base = { store: this.store, emit, log }
    const request: AgentRequest = (agentId, command, args, timeoutMs) => this.link.request(agentId, command, args, timeoutMs)
    const consoleSecret = randomBytes(24).toString('base64url')
    this.uploads = new Uploads(opts.dataDir, { maxBytes: opts.maxImportBytes ?? DEFAULT_MAX_IMPORT_BYTES })
    this.models = new Models({ modelDir: opts.modelDir, dataDir: opts.dataDir, executor: this.executor, store: this.store, log })
    this.broker = opts.brokerUrl
      ? null
      : new EmbeddedBroker({
          host: opts.mqttHost,
          port: opts.mqttPort,
          maxPacketBytes: opts.maxPacketBytes,
          maxConnectBytes: 4096,
          consoleSecret,
          checkAgent: (id, token) => this.fleet.checkToken(id, token),
          checkWorker: (id, token) => this.workers.checkToken(id, token),
          log: log.child({ part: 'broker' })
        })
    const local = opts.mqttHost === '0.0.0.0' || opts.mqttHost === '::' ? '127.0.0.1' : opts.mqttHost
    this.link = new AgentLink(
      {
        url: () => opts.brokerUrl ?? `mqtt://${local}:${this.mqttPort}`,
        // The embedded broker is reached in process (no loopback MQTT client); an external one over MQTT.
        ...(this.broker ? { local: this.broker, username: CONSOLE_USERNAME, password: consoleSecret } : {}),
        log
      },
      {
        state: (id, p, t) => this.fleet.onState(id, p, t),
        hello: (id, p, t) => {
          this.fleet.onHello(id, p, t)
          // a device announcing another speed: its tables and profile are checked against it
          this.sources.helloChanged(id)
        },
        health: (id, p, t) => this.fleet.onHealth(id, p, t),
        activation: (id, p) => void this.coinference.onActivation(id, p),
        fetch: (id, p, t) => this.distribution.onFetch(id, p, t),
        worker: (id, kind, p) => {
          if (kind === 'hello') this.workers.onHello(id, p)
          else if (kind === 'health') this.workers.onHealth(id, p)
          else this.workers.onDone(id, p)
        }
      }
    )
    this.workers = new Workers({
      ...base,
      executor: this.executor,
      models: this.models,
      // jobs at QoS 1: a worker that loses one on a reconnect is covered by the job timeout anyway
      publish: (topic, payload) => this.link.publish(topic, payload, { qos: 1 }),
      disconnect: (id) => this.broker?.disconnectWorker(id) ?? false,
      localEdge: opts.localEdge ?? true,
      onRun: (r) => {
        if (r.owner) this.edgeLoad.addRun(r)
      },
      ...(opts.edgeRouting ? { routing: opts.edgeRouting } : {}),
      log: log.child({ part: 'workers' })
    })
    this.fleet = new Fleet({
      ...base,
      onOffline: (id, reason) => this.link.failAgent(id, reason),
      onOnline: (id) => this.sendModelIfMissing(id),
      disconnect: (id) => this.broker?.disconnect(id) ?? false
    })
    this.distribution = new Distribution({
      models: this.models,
      request,
      publish: (topic, payload) => this.link.publish(topic, payload, { qos: 1 }),
      hello: (id) => this.fleet.view(id).hello,
      queuedBytes: (id) => this.broker?.queuedBytes(id) ?? 0,
      emit,
      log: log.child({ part: 'distribution' }),
      ...(opts.transferChunkBytes ? { chunkBytes: opts.transferChunkBytes } : {})
    })
    // The largest activation the console accepts: its packet limit less a frame's largest overhead.
    const maxUploadBytes = opts.maxPacketBytes - FRAME_OVERHEAD_MAX
    this.sources = new LatencySources({
      store: this.store,
      log,
      executor: this.executor,
      models: this.models,
      ensureOnAgent: (id, m) => this.distribution.ensureOnAgent(id, m),
      request,
      profileReps: opts.profileReps,
      maxUploadBytes,
      hello: (id) => this.fleet.view(id).hello,
      ...(opts.maxCodecDropPts !== undefined ? { maxCodecDropPts: opts.maxCodecDropPts } : {}),
      ...(opts.policies !== undefined ? { policies: opts.policies } : {})
    })
    this.planning = new Planning({
      ...base,
      sources: this.sources,
      publishRetained: (topic, payload) => this.link.publishAsync(topic, payload, { qos: 1, retain: true }),
      maxUploadBytes,
      edgeLoad: this.edgeLoad,
      loadAware: opts.loadAware ?? true,
      hello: (id) => this.fleet.view(id).hello
    })
    this.audits = new Audits({ sources: this.sources, planning: this.planning, emit, log: log.child({ part: 'audits' }) })
    this.monitor = new LinkMonitor({
      ...base,
      request,
      connected: () => this.fleet.connected(),
      onEstimate: (id, kbps) => this.planning.replanIfMoved(id, kbps),
      probeIntervalMs: opts.probeIntervalMs
    })
    this.coinference = new CoInference({
      ...base,
      edge: this.workers,
      models: this.models,
      fleet: this.fleet,
      monitor: this.monitor,
      planning: this.planning,
      sources: this.sources,
      observingFrames: () => this.listenerCount('frame') > 0,
      onFrame: (id) => {
        this.edgeLoad.addFrame(id)
        this.planning.loadTick()
      },
      onAudit: (id, planId, heads) => this.audits.onAudit(id, planId, heads),
      request,
      // Results at QoS 0: agents hold clean sessions, so QoS 1 would keep nothing across a reconnect
      // (a replayed activation gets its result again instead), and spares a PUBACK per inference.
      publish: (topic, payload) => this.link.publish(topic, payload, { qos: 0 }),
      maxPayloadBytes: opts.maxPacketBytes
    })
    this.campaigns = new Campaigns({
      store: this.store,
      executor: this.executor,
      models: this.models,
      sources: this.sources,
      coinference: this.coinference,
      distribution: this.distribution,
      fleet: this.fleet,
      link: this.link,
      emit,
      log: log.child({ part: 'campaigns' }),
      maxUploadBytes
    })
    this.modelJobs = new ModelJobs({
      dataDir: opts.dataDir,
      uploads: this.uploads,
      log: log.child({ part: 'model-jobs' }),
      onModel: (id) => emit('devices', { reason: `model ${id} added to the library` })
    })
    this.lifecycle = new Lifecycle(this.modules(), log)
  }

  get log(): Logger {
    return this.opts.log
  }

  /**
   * The modules in start order; stopped in reverse (lifecycle.ts). With the embedded broker, the agent
   * link subscribes in process before the broker listens (nothing an early agent publishes is missed);
   * with an external one, it connects once its address is known.
   */
  private modules(): Registered[] {
    const { store, log } = this
    const recovering: ConsoleModule = {
      start: () => {
        store.start()
        const left = store.recoverFromCrash()
        if (left.runs) log.warn({ runs: left.runs }, 'runs left running by a previous console marked interrupted')
        if (left.campaigns)
          log.warn({ campaigns: left.campaigns }, 'campaigns left running by a previous console marked interrupted (their measurements are kept)')
      },
      stop: () => store.stop()
    }
    const messaging: Registered[] = this.broker
      ? [
          { name: 'agent link', module: this.link },
          { name: 'broker', module: { start: () => this.startBroker(this.broker!), stop: () => this.broker!.stop() } }
        ]
      : [
          {
            name: 'external broker',
            module: {
              start: () => {
                this.mqttPort = Number(new URL(this.opts.brokerUrl!).port || 1883)
              },
              stop: () => undefined
            }
          },
          { name: 'agent link', module: this.link }
        ]
    return [
      { name: 'store', module: recovering },
      { name: 'uploads', module: this.uploads },
      { name: 'model jobs', module: { start: () => undefined, stop: () => this.modelJobs.stop() } },
      { name: 'edge runtime', module: this.executor },
      { name: 'served models', module: this.models },
      { name: 'fleet', module: this.fleet },
      { name: 'latency sources', module: this.sources },
      { name: 'planning', module: this.planning },
      { name: 'audits', module: this.audits },
      ...messaging,
      { name: 'distribution', module: this.distribution },
      { name: 'edge workers', module: this.workers },
      { name: 'co-inference', module: this.coinference },
      { name: 'link monitor', module: this.monitor },
      { name: 'campaigns', module: this.campaigns }
    ]
  }

  /** The embedded broker with its TLS listener (the CA made on first start) and the ports it took. */
  private async startBroker(broker: EmbeddedBroker): Promise<void> {
    if (this.opts.mqttTlsPort !== undefined && this.opts.mqttTlsPort !== null) {
      const t = await ensureBrokerTls(this.opts.dataDir)
      if (t.created) this.log.info({ caSha256: t.caSha256 }, 'made the broker certificate authority (agents pin it)')
      this.tls = { ca: t.ca, caSha256: t.caSha256 }
      broker.withTls({ host: this.opts.mqttTlsHost ?? this.opts.mqttHost, port: this.opts.mqttTlsPort, cert: t.cert, key: t.key })
    }
    await broker.start()
    this.mqttPort = broker.port
    this.mqttTlsPort = broker.tlsPort
  }

  async start(): Promise<void> {
    await this.lifecycle.start()
    this.log.info({ broker: this.link.url }, 'console started')
  }

  /** Stops every module in reverse order: a running campaign is interrupted and awaited first. */
  async stop(): Promise<void> {
    await this.lifecycle.stop()
  }

  /** A paired agent that came online without the model it is assigned is sent it (in the background). */
  private sendModelIfMissing(agentId: string): void {
    const dev = this.store.devices.get(agentId)
    if (!dev || dev.revoked_at) return
    const m = this.models.forDevice(agentId)
    if (this.distribution.holds(agentId, m)) return
    this.distribution.ensureOnAgent(agentId, m).catch((err: unknown) => this.log.warn({ agentId, model: m.id, err: String(err) }, 'model transfer failed'))
  }

  // ------------------------------------------------------------------ what the service, the CLI and tests call

  /** The default model (what a device without an assignment is planned and served with). */
  get model(): Manifest {
    return this.models.default.manifest
  }
  /**
   * Chooses the model a device (or, without one, every device that has no assignment of its own) is
   * planned and served with; `null`: back to the default. The devices concerned start over with it:
   * tables, corrections and maps; agents that do not hold it are sent it now (in the background).
   */
  async assignModel(agentId: string | null, ref: string | null): Promise<ServedModel> {
    if (agentId !== null) this.fleet.paired(agentId)
    const m = await this.models.assign(agentId, ref)
    const affected =
      agentId !== null
        ? [agentId]
        : this.store.devices
            .list()
            .filter((d) => !d.revoked_at && !d.model_id)
            .map((d) => d.id)
    for (const id of affected) {
      this.planning.modelChanged(id)
      if (this.fleet.state(id) === 'online' || this.fleet.state(id) === 'busy') {
        this.distribution
          .ensureOnAgent(id, this.models.forDevice(id))
          .catch((err: unknown) => this.log.warn({ agentId: id, err: String(err) }, 'model transfer failed'))
      }
    }
    this.log.info({ agent: agentId ?? '(default)', model: m.id }, 'model assigned')
    this.emit('devices', { reason: `model ${m.id} assigned to ${agentId ?? 'every device without its own'}` })
    return m
  }
  pair(id: string, o: { force?: boolean } = {}): { id: string; token: string; replaced: boolean; disconnected: boolean } {
    return this.fleet.pair(id, o)
  }
  unpair(id: string): { id: string; revoked: boolean; disconnected: boolean } {
    return this.fleet.unpair(id)
  }
  request<C extends AgentCommand>(agentId: string, command: C, args: CommandArgsIn<C>, timeoutMs: number): Promise<CommandReply<C>> {
    return this.link.request(agentId, command, args, timeoutMs)
  }
  devices(): DeviceView[] {
    const load = this.edgeLoad.view()
    return this.store.devices.list().map((d) => {
      const p = this.fleet.view(d.id)
      return {
        id: d.id,
        paired: !d.revoked_at,
        state: p.state ?? d.state,
        hello: p.hello ?? d.hello,
        plan: this.planning.currentPlan(d.id),
        reportedPlanId: p.reportedPlanId,
        uplinkEstimateKbps: this.monitor.estimateKbps(d.id),
        latencySource: d.revoked_at ? null : this.sources.latencySource(d.id),
        model: this.models.forDevice(d.id).id,
        modelAssigned: !!d.model_id,
        transfer: this.distribution.transfers().find((t) => t.agentId === d.id) ?? null,
        health: this.fleet.health(d.id),
        edge: load.devices.find((x) => x.id === d.id) ?? null
      }
    })
  }
  /** The edge's measured load and whether plans use it. */
  load(): EdgeLoadView {
    return { ...this.edgeLoad.view(), queued: this.executor.queued, loadAware: this.planning.loadAware }
  }
  useProfile(agentId: string, profileId: string | null, regressor?: Regressor): LatencySource {
    return this.sources.useProfile(this.fleet.known(agentId), profileId, regressor)
  }
  /** `signal`: the caller went away — the batch ends after its current inference, with the rows done. */
  /** A device's confidence-exit policies and audits: sets what is given (the plans made after follow), returns the view. */
  exitPolicies(a: { agent: string; enabled?: boolean; auditShare?: number; bound?: number; tune?: boolean }): ExitPoliciesView {
    const id = this.fleet.known(a.agent)
    const { enabled, agent: _a, ...audit } = a
    if (enabled === false) this.sources.setPolicyOptions(id, null)
    else if (enabled === true && !this.sources.policiesOn(id)) this.sources.setPolicyOptions(id, {})
    const settings = Object.keys(audit).length ? this.audits.configure(id, audit) : this.audits.settingsOf(id)
    const view = this.audits.view(id)
    return {
      agent: id,
      enabled: this.sources.policiesOn(id),
      unavailable: this.sources.policiesUnavailable(id),
      ...view,
      ...settings,
      auditShare: settings.share
    }
  }

  infer(opts: InferOptions, signal?: AbortSignal): Promise<{ summary: InferSummary; rows: InferRow[] }> {
    return this.coinference.infer(opts, signal)
  }
  /** Starts a benchmark campaign on a paired, online agent (and on this edge). */
  startCampaign(agent: string, kind: string, reps: number, sweep: SweepOptions = {}): string {
    return this.campaigns.begin(this.fleet.online(agent), kind, reps, sweep)
  }
}
