/**
 * The console core (headless): the embedded broker (or an external one), the edge runtime (ORT in a
 * worker), the fleet of paired agents, the planner service with live bandwidth estimates, and the
 * store. One object made of small parts with start()/stop(); the Electron and headless shells share it.
 */
import type { DeviceView, InferRow, InferSummary } from '../../shared/console-api.js'
import mqtt, { type MqttClient } from 'mqtt'
import { randomBytes, randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { median, quantileSorted } from 'simple-statistics'
import { BandwidthEstimator, probeBytes } from '../../shared/bandwidth.js'
import { parseProfile, type CalibrationProfile } from '../../shared/latency.js'
import { OnlineCorrection } from '../../shared/correction.js'
import { UserError, errorMessage } from '../../shared/errors.js'
import { decodeFrame } from '../../shared/frame.js'
import { exitPath, type Manifest } from '../../shared/manifest.js'
import { HelloSchema, PlanSchema, ResponseSchema, SCHEMA, StateSchema, encodeJson, parsePayload, type Hello, type PlanMessage } from '../../shared/messages.js'
import { argmax } from '../../shared/preprocess.js'
import { buildCostTable, configurationMap, latencyOf, lookupMap, plan as planAt, profileSource, toPlan, type Breakdown, type CostTable, type MapInterval } from '../../shared/planner.js'
import { checkAgentId, parseTopic, topics } from '../../shared/topics.js'
import { loadManifest, readShippedSamples } from '../files.js'
import { OrtExecutor } from '../runtime/executor.js'
import { CONSOLE_USERNAME, EmbeddedBroker } from './broker.js'
import { measureLayers, measuredSource, type LayerTable } from './edge-profile.js'
import { Store } from './store.js'
import { Campaigns, type SweepOptions } from '../campaign/runner.js'
import type { LayerMeasurement } from '../campaign/layers.js'
import { hashToken, newToken, verifyToken } from './tokens.js'

export interface ConsoleOptions {
  dataDir: string
  modelDir: string
  /** Embedded broker address; ignored with `brokerUrl`. */
  mqttHost: string
  mqttPort: number
  /** An external broker (Mosquitto, EMQX) instead of the embedded one. */
  brokerUrl?: string
  /** Largest MQTT packet after CONNECT (activations must fit), bytes. */
  maxPacketBytes: number
  /** Repetitions when timing layers (edge at start, device on first contact). */
  profileReps: number
  /** How often an idle agent's uplink is probed, ms (0 = never). */
  probeIntervalMs: number
  log: Logger
}

export const DEFAULT_CONSOLE: Omit<ConsoleOptions, 'dataDir' | 'modelDir' | 'log'> = {
  mqttHost: '0.0.0.0',
  mqttPort: 1883,
  maxPacketBytes: 2 * 1024 * 1024,
  profileReps: 8,
  probeIntervalMs: 1000
}

interface StoredPlan extends PlanMessage {
  deviceId: string
  breakdown: Breakdown
}

interface AgentRuntime {
  id: string
  state: string
  hello: Hello | null
  plan: StoredPlan | null
  estimator: BandwidthEstimator
  lastSampleKbps: number | null
  lastProbeAt: number
  lastActivationSampleAt: number
  deviceTable: LayerTable | null
  /** The requirement the agent is planned for; bandwidth changes replan against it. */
  requirementMs: number | null
  /** A bandwidth fixed by the user (no replanning on estimates). */
  fixedKbps: number | null
  /** A plan pinned by the user (no replanning). */
  pinned: boolean
  /** The plan id the agent last reported in its state. */
  reportedPlanId: string | null
  /** Per-layer factors learned from co-inference (measured/predicted segment times). */
  correction: OnlineCorrection
  probing: boolean
  /** The device's current fitted profile (undefined: not read yet; null: none, plan with measured tables). */
  profile?: { id: string; profile: CalibrationProfile; problem: string | null } | null
}

interface PendingHalf {
  at: number
  runId: string | null
  deviceId: string
  planId: string
  sample: number | null
  label: number | null
  predictedLabel: number
  deviceMs: number
  edgeMs: number
  edgeTotalMs: number
  uploadBytes: number
}


export type { InferRow, InferSummary } from '../../shared/console-api.js'

function quantile(sorted: number[], q: number): number {
  return sorted.length ? quantileSorted(sorted, q) : NaN
}

export class EdgentConsole extends EventEmitter {
  readonly store: Store
  readonly executor = new OrtExecutor({ maxSessions: 128 })
  private broker: EmbeddedBroker | null = null
  private client: MqttClient | null = null
  private readonly consoleSecret = randomBytes(24).toString('base64url')
  private manifest!: Manifest
  private edgeTable!: LayerTable
  private readonly agents = new Map<string, AgentRuntime>()
  private readonly plans = new Map<string, StoredPlan>()
  private readonly transactions = new Map<string, { agentId: string; resolve: (data: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>()
  private readonly halves = new Map<string, PendingHalf>()
  private readonly mapCache = new Map<string, MapInterval[]>()
  private probeTimer: NodeJS.Timeout | null = null
  mqttPort = 0
  campaigns!: Campaigns

  constructor(readonly opts: ConsoleOptions) {
    super()
    this.store = new Store(join(opts.dataDir, 'edgent.db'))
  }

  get log(): Logger {
    return this.opts.log
  }

  get model(): Manifest {
    return this.manifest
  }

  /** This machine's (the edge's) per-layer timings, measured at start. */
  get edgeLayerTable(): LayerTable {
    return this.edgeTable
  }

  async start(): Promise<void> {
    this.store.start()
    const interrupted = this.store.handle.prepare(`UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'`).run(new Date().toISOString()).changes
    if (interrupted) this.log.warn({ runs: interrupted }, 'runs left running by a previous console marked interrupted')
    // Until an agent announces itself to this console, its last known state is not its state.
    this.store.handle.prepare(`UPDATE devices SET state = 'offline' WHERE state IN ('online', 'busy')`).run()
    const stale = this.store.handle.prepare(`UPDATE campaigns SET status = 'interrupted', finished_at = ? WHERE status = 'running'`).run(new Date().toISOString()).changes
    if (stale) this.log.warn({ campaigns: stale }, 'campaigns left running by a previous console marked interrupted (their measurements are kept)')
    const loaded = loadManifest(this.opts.modelDir)
    this.manifest = loaded.manifest
    await this.executor.start()
    await this.executor.openModel(loaded.dir)
    const samples = readShippedSamples(loaded)
    this.campaigns = new Campaigns({
      store: this.store,
      executor: this.executor,
      timeOnDevice: (deviceId, specs, reps) => this.request<LayerMeasurement[]>(deviceId, 'time-layers', { specs, reps }, 600_000),
      manifest: this.manifest,
      samplePixels: samples.images.subarray(0, samples.imageElements),
      profileDevice: (deviceId, reps) => this.request<LayerTable>(deviceId, 'profile-layers', { reps }, 600_000),
      setUplink: (deviceId, kbps) => this.request<{ previousKbps: number; kbps: number }>(deviceId, 'set-uplink', { kbps }, 30_000),
      infer: (o) => this.infer(o),
      onProgress: (status) => {
        // A completed campaign made a new current profile: plan with it from now on.
        if (status.status === 'done' && status.profileId) this.sourceChanged(status.deviceId)
        this.emit('campaign', status)
      }
    })
    this.edgeTable = await measureLayers(this.executor, this.manifest, samples.images.subarray(0, samples.imageElements), this.opts.profileReps)
    this.log.info({ model: this.manifest.id, exitFusedMs: this.edgeTable.exitFusedMs }, 'edge runtime ready (layers timed)')
    let url = this.opts.brokerUrl
    let auth: { username?: string; password?: string } = {}
    if (!url) {
      this.broker = new EmbeddedBroker({
        host: this.opts.mqttHost,
        port: this.opts.mqttPort,
        maxPacketBytes: this.opts.maxPacketBytes,
        maxConnectBytes: 4096,
        consoleSecret: this.consoleSecret,
        checkAgent: (id, token) => {
          const row = this.store.device(id)
          return !!row && !row.revoked_at && verifyToken(token, row.token_hash)
        },
        log: this.log.child({ part: 'broker' })
      })
      await this.broker.start()
      this.mqttPort = this.broker.port
      const host = this.opts.mqttHost === '0.0.0.0' || this.opts.mqttHost === '::' ? '127.0.0.1' : this.opts.mqttHost
      url = `mqtt://${host}:${this.mqttPort}`
      auth = { username: CONSOLE_USERNAME, password: this.consoleSecret }
    } else {
      const u = new URL(url)
      this.mqttPort = Number(u.port || 1883)
    }
    const client = mqtt.connect(url, { clientId: `edgent-console-${randomUUID().slice(0, 8)}`, protocolVersion: 4, clean: true, keepalive: 10, reconnectPeriod: 1000, ...auth })
    this.client = client
    await new Promise<void>((resolve, reject) => {
      const onErr = (err: Error) => reject(new UserError(`cannot connect to the broker at ${url}: ${err.message}`))
      client.once('error', onErr)
      client.once('connect', () => {
        client.off('error', onErr)
        resolve()
      })
    })
    client.on('error', (err) => this.log.warn({ err: err.message }, 'console mqtt error'))
    const noDelay = () => (client.stream as { setNoDelay?: (v: boolean) => void } | undefined)?.setNoDelay?.(true)
    noDelay()
    client.on('connect', noDelay)
    client.on('message', (topic, payload) => this.onMessage(topic, payload))
    await client.subscribeAsync([topics.allAgents.state, topics.allAgents.hello, topics.allAgents.response, topics.allAgents.activation], { qos: 1 })
    if (this.opts.probeIntervalMs > 0) this.probeTimer = setInterval(() => this.probeIdle(), this.opts.probeIntervalMs)
    this.log.info({ broker: url }, 'console started')
  }

  async stop(): Promise<void> {
    if (this.probeTimer) clearInterval(this.probeTimer)
    this.probeTimer = null
    for (const t of this.transactions.values()) {
      clearTimeout(t.timer)
      t.reject(new Error('console stopping'))
    }
    this.transactions.clear()
    const c = this.client
    this.client = null
    if (c) await c.endAsync(true)
    await this.broker?.stop()
    this.broker = null
    await this.executor.stop()
    this.store.stop()
  }

  // ------------------------------------------------------------------ fleet and pairing

  /** Issues a new token for an agent id (a re-pair replaces the old token). */
  pair(id: string): { id: string; token: string } {
    checkAgentId(id)
    const token = newToken()
    this.store.pairDevice(id, hashToken(token))
    this.log.info({ agentId: id }, 'paired')
    return { id, token }
  }

  unpair(id: string): { id: string; revoked: boolean; disconnected: boolean } {
    checkAgentId(id)
    const revoked = this.store.revokeDevice(id)
    if (!revoked && !this.store.device(id)) throw new UserError(`unknown agent "${id}"`)
    const disconnected = this.broker?.disconnect(id) ?? false
    this.log.info({ agentId: id, revoked, disconnected }, 'unpaired')
    return { id, revoked, disconnected }
  }

  devices(): DeviceView[] {
    return this.store.devices().map((d) => {
      const a = this.agents.get(d.id)
      return {
        id: d.id,
        paired: !d.revoked_at,
        state: a?.state ?? d.state,
        hello: a?.hello ?? (d.hello_json ? (JSON.parse(d.hello_json) as Hello) : null),
        plan: a?.plan ?? null,
        reportedPlanId: a?.reportedPlanId ?? null,
        uplinkKbps: a?.estimator.kbps ?? null,
        latencySource: d.revoked_at ? null : this.latencySource(d.id)
      }
    })
  }

  private agent(id: string): AgentRuntime {
    let a = this.agents.get(id)
    if (!a) {
      a = { id, state: 'unknown', hello: null, plan: null, estimator: new BandwidthEstimator(), lastSampleKbps: null, lastProbeAt: 0, lastActivationSampleAt: 0, deviceTable: null, requirementMs: null, fixedKbps: null, pinned: false, reportedPlanId: null, correction: new OnlineCorrection(), probing: false }
      this.agents.set(id, a)
    }
    return a
  }

  // ------------------------------------------------------------------ messages

  private onMessage(topic: string, payload: Buffer): void {
    const t = parseTopic(topic)
    if (!t) return
    try {
      if (t.kind === 'state') {
        if (payload.length === 0) return
        const s = parsePayload(StateSchema, payload, topic)
        const a = this.agent(t.agentId)
        const was = a.state
        a.state = s.state
        if (s.planId) a.reportedPlanId = s.planId
        if (this.store.device(t.agentId)) this.store.setDeviceState(t.agentId, s.state)
        if (s.state === 'offline') this.failAgent(t.agentId, `agent ${t.agentId} went offline`)
        if (was !== s.state) {
          this.log.info({ agentId: t.agentId, state: s.state }, 'agent state')
          this.emit('agent-state', { id: t.agentId, state: s.state })
        }
      } else if (t.kind === 'hello') {
        if (payload.length === 0) return
        const h = parsePayload(HelloSchema, payload, topic)
        const a = this.agent(t.agentId)
        a.hello = h
        if (this.store.device(t.agentId)) this.store.setDeviceState(t.agentId, a.state, JSON.stringify(h))
      } else if (t.kind === 'response' && t.verb) {
        const r = parsePayload(ResponseSchema, payload, topic)
        const pending = this.transactions.get(r.transaction)
        if (!pending || pending.agentId !== t.agentId) return
        this.transactions.delete(r.transaction)
        clearTimeout(pending.timer)
        if (r.status === 'ok') pending.resolve(r.data)
        else pending.reject(new UserError(`agent ${t.agentId}: ${r.error}`))
      } else if (t.kind === 'activation') {
        void this.onActivation(t.agentId, payload)
      }
    } catch (err) {
      this.log.warn({ topic, err: errorMessage(err) }, 'dropped message')
    }
  }

  private async onActivation(agentId: string, payload: Buffer): Promise<void> {
    const arrived = performance.now()
    let requestId: string | undefined
    try {
      const frame = decodeFrame(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), { maxPayloadBytes: this.opts.maxPacketBytes })
      const h = frame.header
      requestId = h.requestId
      const plan = this.plans.get(h.planId)
      if (!plan || plan.deviceId !== agentId) throw new UserError(`unknown plan "${h.planId}" for agent ${agentId}`)
      if (h.model !== this.manifest.id || h.exit !== plan.exit || h.deviceLayers !== plan.deviceLayers) {
        throw new UserError(`frame (model ${h.model}, exit ${h.exit}, deviceLayers ${h.deviceLayers}) does not match plan ${plan.planId}`)
      }
      const path = exitPath(this.manifest, h.exit)
      const expected = h.deviceLayers === 0 ? this.manifest.input.shape : h.deviceLayers >= path.length ? path[path.length - 1]!.outputShape : path[h.deviceLayers - 1]!.outputShape
      if (frame.dims.length !== expected.length || frame.dims.some((d, i) => d !== expected[i])) {
        throw new UserError(`frame dims [${frame.dims.join(', ')}] do not match the boundary tensor of deviceLayers ${h.deviceLayers} ([${expected.join(', ')}])`)
      }
      // Observers of the raw tensors (the arm64 conformance test compares them across agents).
      if (this.listenerCount('frame') > 0) this.emit('frame', { agentId, header: h, dims: frame.dims, data: frame.data.slice() })
      const a = this.agent(agentId)
      if (h.uplinkKbps) this.addBandwidthSample(a, h.uplinkKbps, 'activation', payload.length)
      let scores = frame.data
      let edgeMs = 0
      if (h.deviceLayers < path.length) {
        const r = await this.executor.runSegment(this.manifest.id, { exit: h.exit, from: h.deviceLayers, to: path.length }, frame.data, frame.dims)
        scores = r.output
        edgeMs = r.ms
      }
      const label = argmax(scores)
      const edgeTotalMs = performance.now() - arrived
      if (h.deviceLayers < path.length) {
        this.client?.publish(
          topics.result(agentId),
          Buffer.from(encodeJson({ schema: SCHEMA, requestId: h.requestId, planId: h.planId, exit: h.exit, label, scores: Array.from(scores), edgeMs, edgeTotalMs })),
          { qos: 1 }
        )
      }
      this.dropStaleHalves()
      this.halves.set(h.requestId, {
        at: Date.now(),
        runId: null,
        deviceId: agentId,
        planId: h.planId,
        sample: h.sample ?? null,
        label: h.label ?? null,
        predictedLabel: label,
        deviceMs: h.deviceMs,
        edgeMs,
        edgeTotalMs,
        uploadBytes: h.deviceLayers >= path.length ? 0 : payload.length
      })
    } catch (err) {
      const message = errorMessage(err)
      this.log.warn({ agentId, bytes: payload.length, err: message }, 'rejected activation')
      if (requestId && err instanceof UserError) {
        this.client?.publish(topics.result(agentId), Buffer.from(encodeJson({ schema: SCHEMA, requestId, planId: 'rejected', exit: 1, label: 0, scores: [], edgeMs: 0, error: message })), { qos: 1 })
      }
    }
  }

  /**
   * The console's half of an inference waits for the agent's batch response; inferences outside a
   * batch (the agent's library API) never get one, so halves older than ten minutes are dropped.
   */
  private dropStaleHalves(): void {
    const cutoff = Date.now() - 10 * 60_000
    for (const [k, h] of this.halves) {
      if (h.at >= cutoff) break // insertion order is arrival order
      this.halves.delete(k)
    }
  }

  /** A command to an agent; resolves with its response's data. */
  request<T>(agentId: string, verb: string, args: Record<string, unknown>, timeoutMs: number): Promise<T> {
    const c = this.client
    if (!c) return Promise.reject(new Error('console not started'))
    const transaction = randomUUID()
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.transactions.delete(transaction)
        reject(new UserError(`agent ${agentId} did not answer "${verb}" within ${Math.round(timeoutMs / 1000)} s`))
      }, timeoutMs)
      this.transactions.set(transaction, { agentId, resolve: resolve as (d: unknown) => void, reject, timer })
      c.publish(topics.request(agentId, verb), Buffer.from(encodeJson({ transaction, ...args })), { qos: 1 })
    })
  }

  private failAgent(agentId: string, reason: string): void {
    for (const [tx, p] of this.transactions) {
      if (p.agentId !== agentId) continue
      clearTimeout(p.timer)
      this.transactions.delete(tx)
      p.reject(new UserError(reason))
    }
  }

  // ------------------------------------------------------------------ bandwidth and planning

  private addBandwidthSample(a: AgentRuntime, kbps: number, source: 'activation' | 'probe', bytes: number): void {
    const u = a.estimator.add(kbps)
    a.lastSampleKbps = kbps
    if (source === 'activation') a.lastActivationSampleAt = Date.now()
    if (this.store.device(a.id)) {
      this.store.handle
        .prepare('INSERT INTO bandwidth_samples (device_id, source, bytes, kbps, smoothed_kbps, at) VALUES (?, ?, ?, ?, ?, ?)')
        .run(a.id, source, bytes, kbps, u.kbps, new Date().toISOString())
    }
    this.emit('bandwidth', { id: a.id, kbps: u.kbps, sample: kbps, source })
    if (u.changed) this.log.info({ agentId: a.id, kbps: Math.round(u.kbps) }, 'uplink estimate changed')
    this.replanIfMoved(a)
  }

  /**
   * Probes each connected agent's uplink at most once per interval, unless activation transfers gave
   * a sample within it. A probe is about a quarter of a second of traffic at the latest sample (not
   * the smoothed estimate, so that after a drop the next probe is already short), 2 KiB–64 KiB
   * (at most about a second at 500 kbps, so a drop from a fast link is noticed quickly).
   */
  private probeIdle(): void {
    const now = Date.now()
    for (const a of this.agents.values()) {
      if (a.probing || (a.state !== 'online' && a.state !== 'busy')) continue
      if (now - a.lastProbeAt < this.opts.probeIntervalMs || now - a.lastActivationSampleAt < this.opts.probeIntervalMs) continue
      a.probing = true
      this.probeUplink(a.id, undefined, 30_000)
        .catch((err: unknown) => this.log.debug({ agentId: a.id, err: errorMessage(err) }, 'probe failed'))
        .finally(() => (a.probing = false))
    }
  }

  /**
   * Probes an agent's uplink now (a packet train of `bytes`, default a quarter second at the
   * current estimate) and returns the updated estimate, kbps.
   */
  async probeUplink(agentId: string, bytes?: number, timeoutMs = 60_000): Promise<number> {
    const a = this.agent(agentId)
    a.lastProbeAt = Date.now()
    const r = await this.request<{ kbps: number; bytes: number }>(agentId, 'probe', { bytes: bytes ?? probeBytes(a.lastSampleKbps ?? 1000) }, timeoutMs)
    this.addBandwidthSample(a, r.kbps, 'probe', r.bytes)
    return a.estimator.kbps ?? r.kbps
  }

  /** Measures the device's layers (once per agent and model) through the agent's profile-layers command. */
  async deviceTable(agentId: string): Promise<LayerTable> {
    const a = this.agent(agentId)
    if (a.deviceTable) return a.deviceTable
    const r = await this.request<LayerTable>(agentId, 'profile-layers', { reps: this.opts.profileReps }, 300_000)
    if (r.model !== this.manifest.id) throw new UserError(`agent ${agentId} profiled model ${r.model}, the console serves ${this.manifest.id}`)
    a.deviceTable = r
    this.log.info({ agentId, exitFusedMs: r.exitFusedMs }, 'device layers timed')
    return r
  }

  /**
   * The latency source the planner uses for a device: its current fitted profile (a campaign's
   * regressions for both sides) when it has one that predicts every layer of the served model,
   * else the measured per-layer tables. `edgent profile use` / `useProfile` selects.
   */
  latencySource(agentId: string): { kind: 'profile' | 'measured'; profileId: string | null; problem: string | null } {
    const p = this.loadProfile(this.agent(agentId))
    if (p && !p.problem) return { kind: 'profile', profileId: p.id, problem: null }
    return { kind: 'measured', profileId: p?.id ?? null, problem: p?.problem ?? null }
  }

  private loadProfile(a: AgentRuntime): { id: string; profile: CalibrationProfile; problem: string | null } | null {
    if (a.profile !== undefined) return a.profile
    const row = this.store.handle.prepare('SELECT id, json FROM profiles WHERE device_id = ? AND current = 1').get(a.id) as { id: string; json: string } | undefined
    if (!row) return (a.profile = null)
    const profile = parseProfile(JSON.parse(row.json), `profile ${row.id}`)
    let problem: string | null = null
    try {
      const src = profileSource(profile)
      for (const l of this.manifest.layers) for (const side of ['device', 'edge'] as const) src.layerMs(side, l)
    } catch (err) {
      problem = `${errorMessage(err)}: planning with the measured tables instead`
      this.log.warn({ agentId: a.id, profile: row.id, problem }, 'current profile cannot predict the served model')
    }
    return (a.profile = { id: row.id, profile, problem })
  }

  /** After a device's profile changes: forget the cached profile, corrections and maps. */
  private sourceChanged(agentId: string): void {
    const a = this.agent(agentId)
    a.profile = undefined
    a.correction = new OnlineCorrection()
    for (const k of [...this.mapCache.keys()]) if (k.startsWith(`${agentId}\u0000`)) this.mapCache.delete(k)
  }

  /** Selects a device's current profile (one of its own), or none (`null`: the measured tables). */
  useProfile(agentId: string, profileId: string | null): { kind: 'profile' | 'measured'; profileId: string | null; problem: string | null } {
    const id = checkAgentId(agentId)
    if (!this.store.device(id)) throw new UserError(`unknown agent "${id}"`)
    const db = this.store.handle
    if (profileId !== null) {
      const row = db.prepare('SELECT device_id FROM profiles WHERE id = ?').get(profileId) as { device_id: string } | undefined
      if (!row) throw new UserError(`unknown profile "${profileId}"`)
      if (row.device_id !== id) throw new UserError(`profile "${profileId}" was fitted for ${row.device_id}, not ${id}`)
    }
    db.transaction(() => {
      db.prepare('UPDATE profiles SET current = 0 WHERE device_id = ?').run(id)
      if (profileId !== null) db.prepare('UPDATE profiles SET current = 1 WHERE id = ?').run(profileId)
    })()
    this.sourceChanged(id)
    this.log.info({ agentId: id, profileId }, 'latency source selected')
    return this.latencySource(id)
  }

  /** The agent's cost table from its latency source, corrected online unless `raw`. */
  costTable(agentId: string, raw = false): CostTable {
    const a = this.agent(agentId)
    if (!a.deviceTable) throw new UserError(`agent ${agentId} has not been profiled yet`)
    const p = this.loadProfile(a)
    const source = p && !p.problem ? profileSource(p.profile) : measuredSource(this.manifest, a.deviceTable, this.edgeTable)
    return buildCostTable(this.manifest, raw ? source : a.correction.wrap(source))
  }

  /**
   * Learns from a batch: each plan's median measured device and edge segment times against its
   * (corrected) predictions. Returns the batch's prediction MAPE with the corrections it was planned
   * with and without any correction (both out of sample: this batch's own corrections apply next).
   */
  private learn(a: AgentRuntime, rows: InferRow[], update = true): InferSummary['prediction'] {
    const now = () => ({ deviceFactor: a.correction.meanFactor('device'), edgeFactor: a.correction.meanFactor('edge'), overheadMs: a.correction.overheadMs })
    if (!rows.length) return { mapeCorrected: null, mapeUncorrected: null, ...now() }
    const raw = this.costTable(a.id, true)
    let errCorrected = 0
    let errRaw = 0
    for (const r of rows) {
      const plan = this.plans.get(r.planId)!
      const cand = raw.exits.find((g) => g[0]!.exit === plan.exit)![plan.deviceLayers]!
      errCorrected += Math.abs(plan.predictedMs - r.e2eMs) / r.e2eMs
      errRaw += Math.abs(latencyOf(cand, { uplinkKbps: plan.uplinkKbps, latencyMs: plan.latencyMs }) - r.e2eMs) / r.e2eMs
    }
    if (!update) return { mapeCorrected: errCorrected / rows.length, mapeUncorrected: errRaw / rows.length, ...now() }
    for (const planId of new Set(rows.map((r) => r.planId))) {
      const plan = this.plans.get(planId)!
      const mine = rows.filter((r) => r.planId === planId)
      const path = exitPath(this.manifest, plan.exit).map((l) => l.id)
      if (plan.deviceLayers > 0) a.correction.observe('device', path.slice(0, plan.deviceLayers), plan.breakdown.deviceMs, median(mine.map((r) => r.deviceMs)))
      if (plan.deviceLayers < path.length) a.correction.observe('edge', path.slice(plan.deviceLayers), plan.breakdown.edgeMs, median(mine.map((r) => r.edgeMs)))
      // The fixed overhead is learned from the residual only when the link is what the plan assumed:
      // a batch caught by a bandwidth change (the estimate moved by > 30 %) missed for that reason.
      const nowKbps = a.estimator.kbps
      const linkMoved = plan.deviceLayers < plan.layers && nowKbps !== null && Math.abs(nowKbps - plan.uplinkKbps) > 0.3 * plan.uplinkKbps
      if (!linkMoved) a.correction.observeResidual(plan.predictedMs, median(mine.map((r) => r.e2eMs)))
    }
    for (const k of [...this.mapCache.keys()]) if (k.startsWith(`${a.id}\u0000`)) this.mapCache.delete(k)
    return { mapeCorrected: errCorrected / rows.length, mapeUncorrected: errRaw / rows.length, ...now() }
  }

  /** The configuration map of an agent for a requirement (cached), over 1 kbps–10 Gbps. */
  configMap(agentId: string, latencyMs: number): MapInterval[] {
    const key = `${agentId}\u0000${latencyMs}`
    let map = this.mapCache.get(key)
    if (!map) {
      map = configurationMap(this.costTable(agentId), { latencyMs, fromKbps: 1, toKbps: 1e7 })
      this.mapCache.set(key, map)
    }
    return map
  }

  /** Pushes a plan (retained) to an agent and waits until the agent reports it. */
  async pushPlan(agentId: string, latencyMs: number, uplinkKbps: number, reason: string, pin?: { exit: number; deviceLayers: number }): Promise<StoredPlan> {
    const costs = this.costTable(agentId)
    let p = planAt(costs, { uplinkKbps, latencyMs })!
    if (pin) {
      const cand = costs.exits.find((g) => g[0]!.exit === pin.exit)?.[pin.deviceLayers]
      if (!cand) throw new UserError(`model ${this.manifest.id} has no exit ${pin.exit} with deviceLayers ${pin.deviceLayers}`)
      p = toPlan(costs, 'edgent', cand, { uplinkKbps, latencyMs })
    }
    const plan: StoredPlan = {
      schema: SCHEMA,
      planId: randomUUID().slice(0, 12),
      model: this.manifest.id,
      exit: p.exit,
      deviceLayers: p.deviceLayers,
      layers: p.layers,
      latencyMs,
      uplinkKbps,
      predictedMs: p.predictedMs,
      feasible: p.feasible,
      reason,
      at: new Date().toISOString(),
      deviceId: agentId,
      breakdown: p.breakdown
    }
    PlanSchema.parse(plan)
    this.store.handle
      .prepare('INSERT INTO plans (id, device_id, model, exit, device_layers, layers, latency_ms, uplink_kbps, predicted_ms, feasible, reason, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)')
      .run(plan.planId, agentId, plan.model, plan.exit, plan.deviceLayers, plan.layers, latencyMs, uplinkKbps, plan.predictedMs, plan.feasible ? 1 : 0, reason, plan.at!)
    this.plans.set(plan.planId, plan)
    const a = this.agent(agentId)
    a.plan = plan
    const { deviceId: _d, breakdown: _b, ...wire } = plan
    await this.client!.publishAsync(topics.plan(agentId), Buffer.from(encodeJson(wire)), { qos: 1, retain: true })
    this.log.info({ agentId, planId: plan.planId, exit: plan.exit, deviceLayers: plan.deviceLayers, uplinkKbps: Math.round(uplinkKbps), latencyMs, reason }, 'plan pushed')
    this.emit('plan', { id: agentId, plan })
    return plan
  }

  /** On a new estimate: the configuration map's choice for it; a different choice is pushed. */
  private replanIfMoved(a: AgentRuntime): void {
    if (a.requirementMs === null || a.fixedKbps !== null || a.pinned || !a.plan || !a.deviceTable) return
    const kbps = a.estimator.kbps
    if (kbps === null) return
    const iv = lookupMap(this.configMap(a.id, a.requirementMs), kbps)
    if (!iv || iv.exit === null || (iv.exit === a.plan.exit && iv.deviceLayers === a.plan.deviceLayers)) return
    const reason = `uplink estimate ${Math.round(kbps)} kbps is in the configuration map's interval ${Math.round(iv.fromKbps)}–${Math.round(iv.toKbps)} kbps, where exit ${iv.exit} with ${iv.deviceLayers} device layers is optimal (was exit ${a.plan.exit}, ${a.plan.deviceLayers})`
    this.pushPlan(a.id, a.requirementMs, kbps, reason).catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'replan failed'))
  }

  /** Starts a benchmark campaign on a paired, online agent (and on this edge). */
  startCampaign(agent: string, kind: string, reps: number, sweep: SweepOptions = {}): string {
    const id = checkAgentId(agent)
    const dev = this.store.device(id)
    if (!dev || dev.revoked_at) throw new UserError(`unknown agent "${id}" (pair it first: edgent pair ${id})`)
    if (this.agent(id).state !== 'online') throw new UserError(`agent ${id} is not online`)
    return this.campaigns.start(id, kind, reps, sweep)
  }

  // ------------------------------------------------------------------ co-inference

  /** `learn: false`: a measurement-only batch (a baseline) that does not move the online correction. */
  async infer(opts: { agent: string; count: number; latencyMs: number; bandwidthKbps?: number; plan?: { exit: number; deviceLayers: number }; campaignId?: string; learn?: boolean }): Promise<{ summary: InferSummary; rows: InferRow[] }> {
    const id = checkAgentId(opts.agent)
    const dev = this.store.device(id)
    if (!dev || dev.revoked_at) throw new UserError(`unknown agent "${id}" (pair it first: edgent pair ${id})`)
    const a = this.agent(id)
    if (a.state !== 'online') throw new UserError(`agent ${id} is ${a.state === 'unknown' ? 'not connected' : a.state}`)
    if (!Number.isInteger(opts.count) || opts.count < 1) throw new UserError(`count must be a positive integer, got ${opts.count}`)
    await this.deviceTable(id)
    let kbps = opts.bandwidthKbps
    a.fixedKbps = kbps ?? null
    if (kbps === undefined) {
      if (a.estimator.kbps === null) {
        const r = await this.request<{ kbps: number; bytes: number }>(id, 'probe', { bytes: 16384 }, 15_000)
        this.addBandwidthSample(a, r.kbps, 'probe', r.bytes)
      }
      kbps = a.estimator.kbps!
    }
    a.requirementMs = opts.latencyMs
    a.pinned = !!opts.plan
    const reason = opts.plan
      ? `pinned by the user: exit ${opts.plan.exit}, ${opts.plan.deviceLayers} device layers`
      : opts.bandwidthKbps
        ? `bandwidth fixed at ${kbps} kbps by the user`
        : `uplink estimate ${Math.round(kbps)} kbps`
    const first = await this.pushPlan(id, opts.latencyMs, kbps, reason, opts.plan)
    const runId = randomUUID()
    const startedAt = new Date().toISOString()
    this.store.handle
      .prepare(`INSERT INTO runs (id, device_id, kind, params_json, status, started_at, campaign_id) VALUES (?, ?, 'infer', ?, 'running', ?, ?)`)
      .run(runId, id, JSON.stringify(opts), startedAt, opts.campaignId ?? null)
    const planIdsBefore = new Set(this.plans.keys())
    try {
      const res = await this.request<{ rows: { requestId: string; sample: number; label: number | null; deviceMs: number; ackMs: number; e2eMs: number; predictedLabel: number; uploadBytes: number; lost?: boolean }[] }>(
        id,
        'run-batch',
        { runId, count: opts.count },
        60_000 + opts.count * 10_000
      )
      const rows: InferRow[] = []
      let lost = 0
      for (const r of res.rows) {
        const half = this.halves.get(r.requestId)
        this.halves.delete(r.requestId)
        if (r.lost || !half) {
          lost++
          continue
        }
        const plan = this.plans.get(half.planId)!
        const transferMs = Math.max(0, r.e2eMs - half.deviceMs - half.edgeTotalMs)
        rows.push({
          requestId: r.requestId,
          sample: half.sample,
          label: half.label,
          predictedLabel: r.predictedLabel,
          correct: half.label === null ? null : r.predictedLabel === half.label,
          exit: plan.exit,
          deviceLayers: plan.deviceLayers,
          planId: plan.planId,
          predictedMs: plan.predictedMs,
          predicted: plan.breakdown,
          deviceMs: half.deviceMs,
          transferMs: plan.deviceLayers >= plan.layers ? 0 : transferMs,
          edgeMs: half.edgeMs,
          e2eMs: r.e2eMs,
          met: r.e2eMs <= opts.latencyMs,
          uplinkKbps: plan.uplinkKbps,
          uploadBytes: half.uploadBytes
        })
      }
      const prediction = this.learn(a, rows, opts.learn !== false)
      const e2e = rows.map((r) => r.e2eMs).sort((x, y) => x - y)
      const labelled = rows.filter((r) => r.correct !== null)
      const summary: InferSummary = {
        runId,
        agent: id,
        count: opts.count,
        completed: rows.length,
        lost,
        latencyMs: opts.latencyMs,
        uplinkKbps: kbps,
        bandwidthSource: opts.bandwidthKbps ? 'fixed' : 'estimate',
        plan: { planId: first.planId, exit: first.exit, deviceLayers: first.deviceLayers, layers: first.layers, predictedMs: first.predictedMs, feasible: first.feasible },
        p50Ms: quantile(e2e, 0.5),
        p95Ms: quantile(e2e, 0.95),
        accuracy: labelled.length ? labelled.filter((r) => r.correct).length / labelled.length : null,
        metShare: rows.length ? rows.filter((r) => r.met).length / rows.length : 0,
        planChanges: [...this.plans.keys()].filter((k) => !planIdsBefore.has(k) && this.plans.get(k)!.deviceId === id).length,
        prediction
      }
      const insert = this.store.handle.prepare(
        `INSERT OR IGNORE INTO inferences (request_id, run_id, device_id, plan_id, model, exit, device_layers, sample, label, predicted_label, correct, latency_req_ms, predicted_ms, predicted_json, device_ms, transfer_ms, edge_ms, e2e_ms, met, uplink_kbps, upload_bytes, created_at)
         VALUES (@requestId, @runId, @deviceId, @planId, @model, @exit, @deviceLayers, @sample, @label, @predictedLabel, @correct, @latencyMs, @predictedMs, @predictedJson, @deviceMs, @transferMs, @edgeMs, @e2eMs, @met, @uplinkKbps, @uploadBytes, @createdAt)`
      )
      const now = new Date().toISOString()
      this.store.handle.transaction(() => {
        for (const r of rows) {
          insert.run({
            requestId: r.requestId,
            runId,
            deviceId: id,
            planId: r.planId,
            model: this.manifest.id,
            exit: r.exit,
            deviceLayers: r.deviceLayers,
            sample: r.sample,
            label: r.label,
            predictedLabel: r.predictedLabel,
            correct: r.correct === null ? null : r.correct ? 1 : 0,
            latencyMs: opts.latencyMs,
            predictedMs: r.predictedMs,
            predictedJson: JSON.stringify(r.predicted),
            deviceMs: r.deviceMs,
            transferMs: r.transferMs,
            edgeMs: r.edgeMs,
            e2eMs: r.e2eMs,
            met: r.met ? 1 : 0,
            uplinkKbps: r.uplinkKbps,
            uploadBytes: r.uploadBytes,
            createdAt: now
          })
        }
        this.store.handle.prepare(`UPDATE runs SET status = 'done', finished_at = ?, summary_json = ? WHERE id = ?`).run(now, JSON.stringify(summary), runId)
      })()
      this.emit('inferences', { id, summary })
      return { summary, rows }
    } catch (err) {
      this.store.handle.prepare(`UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?`).run(new Date().toISOString(), errorMessage(err), runId)
      for (const [k, h] of this.halves) if (h.deviceId === id) this.halves.delete(k)
      throw err
    }
  }
}
