/**
 * The device agent: connects to the console's broker with a last will, announces itself (retained
 * hello and state), follows its retained plan, runs the device prefix of the plan on its sample
 * inputs and publishes activation frames; answers commands (run a batch, probe the uplink, profile
 * layers, load a model) with request/response envelopes. It holds its own model (--model-dir) and
 * the models in its cache; a plan or a `load-model` naming a model it does not hold makes it fetch
 * the model from the console (ModelCache), and a plan is followed only once its model is held.
 */
import { readHealth } from '../../src/main/runtime/health.js'
import { describeMachine } from '../../src/main/runtime/machine.js'
import mqtt, { type MqttClient } from 'mqtt'
import { arch, cpus, platform, totalmem } from 'node:os'
import type { Logger } from 'pino'
import { median } from 'simple-statistics'
import { MAX_PROBE_BYTES, dispatchCommand, type AgentHandlers, type CommandReply, type InferenceRecord, type LayerTable } from '../../src/shared/agent-api.js'
import { UserError, errorMessage } from '../../src/shared/errors.js'
import { encodeFrame } from '../../src/shared/frame.js'
import { exitPath, type Manifest } from '../../src/shared/manifest.js'
import {
  HelloSchema,
  PlanSchema,
  RequestSchema,
  ResultOrRefusalSchema,
  SCHEMA,
  encodeJson,
  parsePayload,
  type PlanMessage,
  type ResultOrRefusal
} from '../../src/shared/messages.js'
import { argmax, preprocess } from '../../src/shared/preprocess.js'
import { parseTopic, topics } from '../../src/shared/topics.js'
import type { Stages } from '../../src/shared/stages.js'
import { CODECS, frameCodec, type Codec } from '../../src/shared/codecs.js'
import { measureCodecCosts } from '../../src/shared/codec-cost.js'
import { loadManifest, readModelSamples, type SampleSet } from '../../src/main/runtime/files.js'
import { OrtExecutor } from '../../src/main/runtime/executor.js'
import { measureLayers } from '../../src/main/runtime/layer-timer.js'
import { timeSynthetic } from '../../src/main/runtime/synthetic.js'
import { ORT_PACKAGE_VERSION, appVersion } from '../../src/main/runtime/version.js'
import { storePublishesUncopied } from '../../src/main/runtime/mqtt-store.js'
import { ModelCache } from './model-cache.js'

/** How long an agent refused for its token waits between tries (it needs re-pairing, not hammering). */
const AUTH_RETRY_MS = 5 * 60_000

export interface AgentOptions {
  brokerUrl: string
  id: string
  token: string
  /** For mqtts://: the console's CA (PEM), pinned — the broker's certificate must chain to it, whatever its host name. */
  ca?: string
  modelDir: string
  /** Where models fetched from the console are kept (one folder per model and checksum). */
  cacheDir: string
  /** ms to wait for a model chunk before asking again. */
  fetchTimeoutMs?: number
  /** Emulated uplink, kbps: each frame waits its serialisation time first (application-level rate limit). */
  emulatedUplinkKbps?: number
  /** Fallback CPU emulation: each device segment takes slowdown × its median compute time here (see emulateSlowCpu). */
  slowdown?: number
  /** How this device is emulated, announced in hello (cgroup quota, shaping…). */
  emulation?: Record<string, unknown>
  /** The codecs it offers to send (default every one it implements); the console plans with these only. */
  codecs?: Codec[]
  /** ms to wait for the edge's result before counting an inference as lost. */
  resultTimeoutMs?: number
  /** ms between health reports (temperature, throttling, frequency, load, memory); default 10 s, EDGENT_HEALTH_MS. */
  healthMs?: number
  log: Logger
}

export type { InferenceRecord } from '../../src/shared/agent-api.js'

/** Frames are written in several pieces; Nagle's algorithm would hold them for the peer's delayed ACK. */
function noDelay(client: MqttClient): void {
  ;(client.stream as { setNoDelay?: (v: boolean) => void } | undefined)?.setNoDelay?.(true)
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** Runs of a device segment after which the slowdown emulation freezes its cost (see emulateSlowCpu). */
const EMULATION_RUNS = 1001

interface HeldModel {
  manifest: Manifest
  dir: string
  sha256: string
  onnxBytes: number
  samples: SampleSet
}

export class EdgentAgent {
  private client: MqttClient | null = null
  private readonly executor = new OrtExecutor()
  /** The models this agent holds, by id: its own (--model-dir) and those fetched into its cache. */
  private readonly held = new Map<string, HeldModel>()
  private own!: HeldModel
  private cache!: ModelCache
  private plan: PlanMessage | null = null
  /** A plan whose model is still being fetched: followed once it is held. */
  private pendingPlan: PlanMessage | null = null
  /** Inferences waiting for their result, by request id: called with it and when its message arrived (performance.now). */
  private readonly waiting = new Map<string, (r: ResultOrRefusal, receivedAt: number) => void>()
  private busy = false
  private seq = 0
  private rttMs: number | null = null
  /** The latest uplink sample from an activation transfer, reported once in the next frame. */
  private transferKbps: number | null = null
  private probing = false
  private reconnectMs = 1000
  /** The emulated uplink in force, kbps (a sweep campaign changes it); null when not emulated. */
  private emulatedUplinkKbps: number | null

  /** The console's commands (src/shared/agent-api.ts), one handler each. */
  private readonly handlers: AgentHandlers = {
    'run-batch': (a) => this.runBatch(a.count, a.runId, a.offset),
    probe: (a) => this.probe(a.bytes),
    'profile-layers': (a) => this.profileLayers(a.reps, a.model),
    'load-model': (a) => this.loadModel(a.model, a.sha256),
    'time-layers': (a) => timeSynthetic(this.executor, a.specs, a.reps, this.opts.slowdown ?? 1, a.regime),
    'set-uplink': (a) => this.setUplink(a.kbps)
  }

  constructor(private readonly opts: AgentOptions) {
    this.emulatedUplinkKbps = opts.emulatedUplinkKbps ?? null
  }

  get currentPlan(): PlanMessage | null {
    return this.plan
  }

  /** The models this agent holds (id and ONNX SHA-256). */
  get models(): { id: string; sha256: string }[] {
    return [...this.held.values()].map((h) => ({ id: h.manifest.id, sha256: h.sha256 }))
  }

  async start(): Promise<void> {
    await this.executor.start()
    this.own = await this.open(this.opts.modelDir)
    this.cache = new ModelCache({
      dir: this.opts.cacheDir,
      log: this.opts.log,
      publishFetch: (payload) => this.publishFetch(payload),
      ...(this.opts.fetchTimeoutMs ? { timeoutMs: this.opts.fetchTimeoutMs } : {})
    })
    for (const dir of this.cache.complete()) {
      try {
        await this.open(dir)
      } catch (err) {
        this.opts.log.warn({ dir, err: errorMessage(err) }, 'cached model does not load: removed (it is fetched again when needed)')
        this.cache.remove(dir)
      }
    }
    const { id, log } = this.opts
    const will = { topic: topics.state(id), payload: Buffer.from(encodeJson({ schema: SCHEMA, state: 'offline' })), qos: 1 as const, retain: true }
    const client = mqtt.connect(this.opts.brokerUrl, {
      clientId: id,
      username: id,
      password: this.opts.token,
      protocolVersion: 4,
      keepalive: 10,
      clean: true,
      reconnectPeriod: this.reconnectMs,
      // mqtt.js 5 stops for good after a refused CONNECT unless told otherwise: an agent keeps trying,
      // with the backoff below, whatever the refusal (a console restoring a backup, an id under attack).
      reconnectOnConnackError: true,
      connectTimeout: 10_000,
      will,
      // The pinned CA is the broker's identity; the address a Pi dials changes with DHCP, so no host-name check.
      ...(this.opts.ca ? { ca: this.opts.ca, rejectUnauthorized: true, checkServerIdentity: () => undefined } : {})
    })
    this.client = client
    // Activation frames are published at QoS 1 (their PUBACK times the uplink): stored, not copied, until it comes.
    if (!storePublishesUncopied(client)) log.warn('this mqtt.js cannot store publishes uncopied: every activation frame is copied once more')
    const every = this.opts.healthMs ?? (Number(process.env['EDGENT_HEALTH_MS']) || 10_000)
    this.healthTimer = setInterval(() => this.publishHealth(), every)
    this.healthTimer.unref()
    client.on('connect', () => {
      noDelay(client)
      this.reconnectMs = 1000
      client.options.reconnectPeriod = this.reconnectMs
      log.info({ broker: this.opts.brokerUrl }, 'connected')
      this.publishHello()
      this.publishState()
      this.publishHealth()
      client.subscribe(topics.agentInbox(id), { qos: 1 }, (err, granted) => {
        if (err) log.error({ err: err.message }, 'subscribe failed')
        const refused = (granted ?? []).filter((g) => g.qos === 128)
        if (refused.length) log.error({ refused: refused.map((g) => g.topic) }, 'broker refused subscriptions')
      })
      // A model fetch cut by the dropped connection asks again (after the subscription, in order).
      this.cache.reconnected()
    })
    client.on('close', () => {
      // Exponential backoff between reconnects (mqtt.js retries at a fixed period by default).
      this.reconnectMs = Math.min(this.reconnectMs * 2, Math.max(30_000, this.reconnectMs))
      client.options.reconnectPeriod = this.reconnectMs
    })
    client.on('error', (err) => {
      const code = (err as Error & { code?: number }).code
      if (code === 4 || code === 5) {
        // Refused for its credentials: retrying the same token cannot help until the device is re-paired,
        // so say what to do and wait long between tries (the console may be restoring a backup).
        this.reconnectMs = Math.max(this.reconnectMs, AUTH_RETRY_MS)
        client.options.reconnectPeriod = this.reconnectMs
        log.error(
          { broker: this.opts.brokerUrl, retryInS: Math.round(this.reconnectMs / 1000) },
          `the console refused this agent's token (unknown, revoked or re-paired): re-pair this device (edgent pair ${id} on the console) and restart the agent with the new credentials file`
        )
        return
      }
      if (code === 3)
        log.warn(
          { err: err.message, retryInS: Math.round(Math.min(this.reconnectMs * 2, Math.max(30_000, this.reconnectMs)) / 1000) },
          'the console is not accepting this agent for now (too many failed logins from this address): retrying with backoff'
        )
      else log.warn({ err: err.message }, 'mqtt error')
    })
    client.on('message', (topic, payload) => {
      this.onMessage(topic, payload).catch((err: unknown) => log.error({ err: errorMessage(err), topic }, 'message handling failed'))
    })
  }

  /** Publishes one health report (qos 0: the next one follows in a few seconds). */
  private publishHealth(): void {
    void readHealth().then((h) => {
      const c = this.client
      if (c?.connected) c.publish(topics.health(this.opts.id), Buffer.from(encodeJson(h)), { qos: 0 })
    })
  }

  private healthTimer: NodeJS.Timeout | null = null

  async stop(): Promise<void> {
    if (this.healthTimer) clearInterval(this.healthTimer)
    this.healthTimer = null
    const c = this.client
    this.client = null
    this.cache?.stop()
    if (c) {
      if (c.connected) {
        // Say goodbye when the console can hear it (at most 2 s); a disconnected agent stops at once.
        await Promise.race([
          new Promise<void>((r) =>
            c.publish(topics.state(this.opts.id), Buffer.from(encodeJson({ schema: SCHEMA, state: 'offline' })), { qos: 1, retain: true }, () => r())
          ),
          new Promise<void>((r) => setTimeout(r, 2000).unref())
        ])
      }
      await c.endAsync(true)
    }
    await this.executor.stop()
  }

  /** Opens a model folder in the runtime and holds it. */
  private async open(dir: string): Promise<HeldModel> {
    const loaded = loadManifest(dir)
    const open = await this.executor.openModel(loaded.dir)
    const h: HeldModel = { manifest: loaded.manifest, dir: loaded.dir, sha256: open.sha256, onnxBytes: open.onnxBytes, samples: readModelSamples(loaded) }
    this.held.set(h.manifest.id, h)
    return h
  }

  private holding(model: string, sha256?: string): HeldModel | null {
    const h = this.held.get(model)
    return h && (!sha256 || h.sha256 === sha256) ? h : null
  }

  private publishFetch(payload: Uint8Array): void {
    this.client?.publish(topics.fetch(this.opts.id), Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos: 1 })
  }

  private publishHello(): void {
    const c = this.client
    if (!c?.connected) return
    const hello = HelloSchema.parse({
      schema: SCHEMA,
      agentId: this.opts.id,
      arch: arch(),
      platform: platform(),
      cpus: cpus().length,
      memoryBytes: totalmem(),
      versions: { node: process.versions.node, onnxruntime: ORT_PACKAGE_VERSION, agent: appVersion() },
      models: [...this.held.values()].map((h) => ({ id: h.manifest.id, sha256: h.sha256, onnxBytes: h.onnxBytes })),
      ...(this.opts.emulation ? { emulation: this.opts.emulation } : {}),
      codecs: [...(this.opts.codecs ?? CODECS)],
      codecEncodeNs: this.codecEncodeNs(),
      startedAt: this.startedAt,
      machine: describeMachine()
    })
    c.publish(topics.hello(this.opts.id), Buffer.from(encodeJson(hello)), { qos: 1, retain: true })
  }

  /**
   * Holds a model: already (its own, or cached), or fetched from the console now — checked chunk by
   * chunk and whole, written atomically into the cache, then opened (which checks the ONNX file's
   * SHA-256 against the manifest). Concurrent calls for one model share one fetch.
   */
  async loadModel(model: string, sha256: string): Promise<CommandReply<'load-model'>> {
    const t0 = performance.now()
    const h = this.holding(model, sha256)
    if (h) return { model, sha256, source: h === this.own ? 'local' : 'cache', fetchedBytes: 0, resumedBytes: 0, refusedChunks: 0, ms: 0 }
    let p = this.loading.get(`${model}@${sha256}`)
    if (!p) {
      p = (async () => {
        const got = await this.cache.fetch(model, sha256)
        const opened = await this.open(got.dir)
        if (opened.sha256 !== sha256) throw new UserError(`model ${model}: fetched ONNX file has SHA-256 ${opened.sha256}, the console named ${sha256}`)
        this.opts.log.info({ model, sha256: sha256.slice(0, 12), ...got.stats }, 'model fetched and loaded')
        this.publishHello()
        return { model, sha256, source: 'fetched' as const, ...got.stats, ms: performance.now() - t0 }
      })()
      this.loading.set(`${model}@${sha256}`, p)
      p.finally(() => this.loading.delete(`${model}@${sha256}`)).catch(() => undefined)
    }
    return p
  }

  private readonly loading = new Map<string, Promise<CommandReply<'load-model'>>>()
  private readonly startedAt = new Date().toISOString()
  private encodeCosts: Record<string, number> | null = null

  /** This device's encoding cost per codec (measured once, a few ms): announced in the hello for the planner. */
  private codecEncodeNs(): Record<string, number> {
    this.encodeCosts ??= measureCodecCosts().encodeNs
    return this.encodeCosts
  }

  private applyPlan(plan: PlanMessage, h: HeldModel): void {
    exitPath(h.manifest, plan.exit) // throws on an unknown exit
    this.plan = plan
    this.pendingPlan = null
    this.opts.log.info({ planId: plan.planId, model: plan.model, exit: plan.exit, deviceLayers: plan.deviceLayers, reason: plan.reason }, 'plan received')
    this.publishState()
  }

  private publishState(): void {
    const state = { schema: SCHEMA, state: this.busy ? 'busy' : 'online', at: new Date().toISOString(), ...(this.plan ? { planId: this.plan.planId } : {}) }
    this.client?.publish(topics.state(this.opts.id), Buffer.from(encodeJson(state)), { qos: 1, retain: true })
  }

  private async onMessage(topic: string, payload: Buffer): Promise<void> {
    const t = parseTopic(topic)
    if (!t || t.agentId !== this.opts.id) return
    if (t.kind === 'plan') {
      if (payload.length === 0) {
        this.plan = null
        return
      }
      const plan = parsePayload(PlanSchema, payload, topic)
      const h = this.holding(plan.model, plan.modelSha256)
      if (h) return this.applyPlan(plan, h)
      // Never run a plan for a model not held: fetch it, follow the plan once it is here.
      this.plan = null
      this.pendingPlan = plan
      this.publishState()
      if (!plan.modelSha256)
        throw new UserError(`plan ${plan.planId} is for model ${plan.model}, which this agent does not hold (and the plan names no checksum to fetch it by)`)
      this.opts.log.info({ planId: plan.planId, model: plan.model }, 'plan for a model this agent does not hold: fetching it')
      const held = await this.loadModel(plan.model, plan.modelSha256)
      if (this.pendingPlan === plan) this.applyPlan(plan, this.holding(held.model, held.sha256)!)
      return
    }
    if (t.kind === 'chunk') {
      this.cache.onChunk(payload)
      return
    }
    if (t.kind === 'result') {
      const receivedAt = performance.now()
      const r = parsePayload(ResultOrRefusalSchema, payload, topic)
      this.waiting.get(r.requestId)?.(r, receivedAt)
      return
    }
    if (t.kind === 'request' && t.verb) {
      let transaction = ''
      try {
        const req = parsePayload(RequestSchema, payload, topic)
        transaction = req.transaction
        const data = await dispatchCommand(this.handlers, t.verb, req)
        this.respond(t.verb, { transaction, status: 'ok', data })
      } catch (err) {
        this.respond(t.verb, { transaction: transaction || 'unknown', status: 'error', error: errorMessage(err) })
      }
    }
  }

  private respond(verb: string, body: unknown): void {
    this.client?.publish(topics.response(this.opts.id, verb), Buffer.from(encodeJson(body)), { qos: 1 })
  }

  /**
   * Changes the emulated uplink (a sweep campaign's grid). Only an agent started with an emulated
   * uplink (--uplink-kbps) accepts: a real device's link is what it is (shape it with tc instead).
   */
  private setUplink(kbps: number): CommandReply<'set-uplink'> {
    const previousKbps = this.emulatedUplinkKbps
    if (previousKbps === null) {
      throw new UserError(
        'this agent has no emulated uplink (it was started without --uplink-kbps): its link cannot be set remotely; shape it with tc (npm run testbed)'
      )
    }
    this.emulatedUplinkKbps = kbps
    this.opts.log.info({ previousKbps, kbps }, 'emulated uplink set')
    return { previousKbps, kbps }
  }

  /**
   * QoS 1 publish; resolves with the time until the broker's PUBACK, ms. `sent`, when given, gets
   * the times (performance.now) the publish call began and returned.
   */
  private publishAcked(topic: string, payload: Uint8Array, sent?: { called: number; returned: number }): Promise<number> {
    const c = this.client
    if (!c) return Promise.reject(new Error('not connected'))
    const t0 = performance.now()
    return new Promise((resolve, reject) => {
      c.publish(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos: 1 }, (err) =>
        err ? reject(err) : resolve(performance.now() - t0)
      )
      if (sent) {
        sent.called = t0
        sent.returned = performance.now()
      }
    })
  }

  /**
   * An uplink sample from one acknowledged activation: bytes over (ack time − round trip). Only when
   * the transfer itself took long enough to measure (≥ 5 ms beyond the round trip) and no probe
   * shared the link meanwhile.
   */
  private observeTransfer(bytes: number, ackMs: number, overlapped: boolean): void {
    if (this.rttMs === null || overlapped) return
    const transferMs = ackMs - this.rttMs
    if (transferMs < 5) return
    this.transferKbps = (bytes * 8) / transferMs
  }

  private async limitUplink(bytes: number): Promise<void> {
    if (this.emulatedUplinkKbps) await sleep((bytes * 8) / this.emulatedUplinkKbps)
  }

  async probe(bytes: number): Promise<CommandReply<'probe'>> {
    if (!Number.isInteger(bytes) || bytes < 64 || bytes > MAX_PROBE_BYTES) throw new UserError(`probe size must be 64..1048576 bytes, got ${bytes}`)
    this.probing = true
    try {
      return await this.probeOnce(bytes)
    } finally {
      this.probing = false
    }
  }

  /**
   * Packet-train probe: a lead message then the probe body, back to back, both QoS 1. The body's
   * bytes over the gap between the two acknowledgements is the uplink rate: the round trip cancels
   * out, and a shaper's initial burst is spent on the lead message.
   */
  private async probeOnce(bytes: number): Promise<CommandReply<'probe'>> {
    const topic = topics.probe(this.opts.id)
    const tiny = new Uint8Array(16)
    await this.limitUplink(tiny.length)
    this.rttMs = Math.min(await this.publishAcked(topic, tiny), this.rttMs ?? Infinity)
    const lead = new Uint8Array(Math.max(4096, bytes >> 2))
    const body = new Uint8Array(bytes)
    const t0 = performance.now()
    await this.limitUplink(lead.length)
    const leadAck = this.publishAcked(topic, lead).then(() => performance.now())
    // Awaited with the body's below: a failure meanwhile (the connection lost while the body waits
    // out its serialisation) must not be an unhandled rejection, which ends the process.
    leadAck.catch(() => undefined)
    await this.limitUplink(body.length)
    const bodyAck = this.publishAcked(topic, body).then(() => performance.now())
    const [tLead, tBody] = await Promise.all([leadAck, bodyAck])
    const gapMs = Math.max(tBody - tLead, 0.05)
    return { bytes, ackMs: tBody - t0, rttMs: this.rttMs, uplinkSampleKbps: (bytes * 8) / gapMs }
  }

  /** The model a command names, else the current plan's, else this agent's own. */
  private model(id?: string): HeldModel {
    const name = id ?? this.plan?.model ?? this.own.manifest.id
    const h = this.held.get(name)
    if (!h) {
      const fetching = this.cache.progress(name)
      throw new UserError(
        `model ${name} is not held by this agent${fetching ? ` (being fetched: ${fetching.bytes} of ${fetching.totalBytes} bytes)` : ''} (it holds ${[...this.held.keys()].join(', ')})`
      )
    }
    return h
  }

  private async profileLayers(reps: number, model?: string): Promise<LayerTable> {
    if (!Number.isInteger(reps) || reps < 1 || reps > 1000) throw new UserError(`reps must be 1..1000, got ${reps}`)
    const h = this.model(model)
    const t = await measureLayers(this.executor, h.manifest, h.samples.images.subarray(0, h.samples.imageElements), reps)
    // The fallback emulation reports the times the slowed device would have taken.
    const k = this.opts.slowdown ?? 1
    return {
      ...t,
      layerMs: Object.fromEntries(Object.entries(t.layerMs).map(([id, ms]) => [id, ms * k])),
      exitFusedMs: Object.fromEntries(Object.entries(t.exitFusedMs).map(([e, ms]) => [e, ms * k])),
      ...(t.layerRepsMs ? { layerRepsMs: Object.fromEntries(Object.entries(t.layerRepsMs).map(([id, xs]) => [id, xs.map((ms) => ms * k)])) } : {})
    }
  }

  /** Per device segment: its compute times here so far, then (after EMULATION_RUNS) the frozen median. */
  private readonly computeMs = new Map<string, number[] | number>()

  /**
   * The slowdown emulation: a device `slowdown`× slower than this machine, and steady. A segment
   * takes slowdown × the median of its compute times here — over all its runs so far, frozen after
   * EMULATION_RUNS — made up by a wait after the real run. Waiting (slowdown − 1) × each run's own
   * time instead multiplied this machine's drift by the factor: on this shared VM the same
   * device-only plan measured 13.7 ms in one minute and 16.2 ms in another at 6.7×, more than the
   * differences between configurations the testbed compares. A Pi's own jitter is not emulated.
   * The wait sleeps, then spins its last 1.5 ms (timers are whole milliseconds). Returns the device
   * time to report; without a slowdown, the run's own.
   */
  private async emulateSlowCpu(key: string, ms: number): Promise<number> {
    const k = this.opts.slowdown ?? 1
    if (!(k > 1)) return ms
    let typical = this.computeMs.get(key) ?? []
    if (Array.isArray(typical)) {
      typical.push(ms)
      this.computeMs.set(key, typical.length >= EMULATION_RUNS ? median(typical) : typical)
      typical = median(typical)
    }
    const target = k * typical
    const extra = target - ms
    if (extra > 0) {
      const until = performance.now() + extra
      if (extra > 2) await sleep(Math.floor(extra - 1.5))
      while (performance.now() < until) {
        /* spin: the emulated device is computing */
      }
    }
    return Math.max(target, ms)
  }

  async runBatch(count: number, runId: string, offset = 0): Promise<{ runId: string; planId: string; rows: InferenceRecord[] }> {
    if (!Number.isInteger(count) || count < 1 || count > 100_000) throw new UserError(`count must be 1..100000, got ${count}`)
    const plan = this.plan
    if (!plan) throw this.noPlan()
    if (this.busy) throw new UserError('busy with another batch')
    this.busy = true
    this.publishState()
    const rows: InferenceRecord[] = []
    try {
      for (let i = 0; i < count; i++) {
        const current = this.plan ?? plan // a plan pushed mid-batch applies to the next inference
        const h = this.model(current.model)
        rows.push(await this.inferOne(current, h, (offset + i) % h.samples.count))
      }
    } finally {
      this.busy = false
      this.publishState()
    }
    return { runId, planId: plan.planId, rows }
  }

  /**
   * Library API: one co-inference of the caller's own image (raw uint8 pixels in the model's input
   * layout) under the current plan. Resolves with its timings and the predicted label.
   */
  async infer(pixels: Uint8Array, label?: number): Promise<InferenceRecord> {
    const plan = this.plan
    if (!plan) throw this.noPlan()
    const h = this.model(plan.model)
    const expected = h.manifest.input.shape.reduce((a, b) => a * b, 1)
    if (!(pixels instanceof Uint8Array) || pixels.length !== expected) {
      throw new UserError(
        `an input image must be ${expected} uint8 pixels (${h.manifest.input.shape.join('×')}), got ${pixels instanceof Uint8Array ? pixels.length : typeof pixels}`
      )
    }
    return this.inferPixels(plan, h, pixels, label ?? null, null)
  }

  private noPlan(): UserError {
    const p = this.pendingPlan
    if (!p) return new UserError('no plan: the console has not pushed one yet')
    const f = this.cache.progress(p.model)
    return new UserError(`plan ${p.planId} needs model ${p.model}, which is still being fetched${f ? ` (${f.bytes} of ${f.totalBytes} bytes)` : ''}`)
  }

  private inferOne(plan: PlanMessage, h: HeldModel, sample: number): Promise<InferenceRecord> {
    const s = h.samples
    const pixels = s.images.subarray(sample * s.imageElements, (sample + 1) * s.imageElements)
    return this.inferPixels(plan, h, pixels, s.labelled === false ? null : (s.labels[sample] ?? null), sample)
  }

  private async inferPixels(plan: PlanMessage, h: HeldModel, pixels: Uint8Array, label: number | null, sample: number | null): Promise<InferenceRecord> {
    const requestId = `${this.opts.id}-${Date.now().toString(36)}-${(this.seq++).toString(36)}`
    const N = exitPath(h.manifest, plan.exit).length
    const t0 = performance.now()
    let x = preprocess(h.manifest, pixels)
    const preprocessed = performance.now()
    let dims = [...h.manifest.input.shape]
    let deviceMs = 0
    let deviceHandoffMs = 0
    if (plan.deviceLayers > 0) {
      const asked = performance.now()
      // the preprocessed input is not needed here afterwards: it moves to the worker, not copied
      const r = await this.executor.runSegment(h.manifest.id, { exit: plan.exit, from: 0, to: plan.deviceLayers }, x, undefined, { give: true })
      deviceHandoffMs = Math.max(0, performance.now() - asked - r.ms)
      x = r.output
      dims = r.dims
      deviceMs = await this.emulateSlowCpu(`${plan.model}/${plan.exit}/${plan.deviceLayers}`, r.ms)
    }
    const encoding = performance.now()
    const frame = encodeFrame(
      {
        requestId,
        planId: plan.planId,
        model: plan.model,
        exit: plan.exit,
        deviceLayers: plan.deviceLayers,
        ...(sample !== null ? { sample } : {}),
        ...(label !== null ? { label } : {}),
        deviceMs,
        sentAt: Date.now(),
        ...(this.transferKbps ? { uplinkSampleKbps: this.transferKbps } : {})
      },
      dims,
      // u8: the raw image itself, preprocessed at the edge (edge-only plans)
      plan.codec === 'u8' && plan.deviceLayers === 0 ? Float32Array.from(pixels) : x,
      frameCodec(plan.codec, plan.deviceLayers, N)
    )
    const encodeMs = performance.now() - encoding
    // Reported once: a device-only run sends no activation and must not repeat a stale sample.
    this.transferKbps = null
    if (plan.deviceLayers >= N) {
      // Device-only: the result is here; the frame only reports it (not part of the latency).
      const e2eMs = performance.now() - t0
      const ackMs = await this.publishAcked(topics.activation(this.opts.id), frame)
      return { requestId, sample, label, deviceMs, ackMs, e2eMs, predictedLabel: argmax(x), uploadBytes: 0 }
    }
    if (plan.maxFrameBytes !== undefined && frame.length > plan.maxFrameBytes) {
      // The broker would drop the connection, and MQTT would resend the publish at every reconnect:
      // the device would never come back. Refused here, by name.
      this.opts.log.warn(
        { requestId, planId: plan.planId, frameBytes: frame.length, maxFrameBytes: plan.maxFrameBytes },
        'activation larger than the console accepts: not sent'
      )
      return { requestId, sample, label, deviceMs, ackMs: 0, e2eMs: performance.now() - t0, predictedLabel: -1, uploadBytes: frame.length, lost: true }
    }
    let receivedAt = 0
    const result = new Promise<ResultOrRefusal | null>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(requestId)
        resolve(null)
      }, this.opts.resultTimeoutMs ?? 30_000)
      this.waiting.set(requestId, (r, at) => {
        clearTimeout(timer)
        this.waiting.delete(requestId)
        receivedAt = at
        resolve(r)
      })
    })
    const probingBefore = this.probing
    const shaping = performance.now()
    await this.limitUplink(frame.length)
    const emulatedUplinkMs = performance.now() - shaping
    const sent = { called: 0, returned: 0 }
    const ackMs = await this.publishAcked(topics.activation(this.opts.id), frame, sent)
    this.observeTransfer(frame.length, ackMs, probingBefore || this.probing)
    const r = await result
    const resumed = performance.now()
    const e2eMs = resumed - t0
    if (r && 'refused' in r) this.opts.log.warn({ requestId, reason: r.refused }, 'the console refused this inference')
    else if (r?.error) this.opts.log.warn({ requestId, err: r.error }, 'the console could not answer this inference')
    if (!r || 'refused' in r || r.error) return { requestId, sample, label, deviceMs, ackMs, e2eMs, predictedLabel: -1, uploadBytes: frame.length, lost: true }
    const cs = r.stages
    const stages: Stages | undefined = cs && {
      preprocessMs: preprocessed - t0,
      deviceMs,
      deviceHandoffMs,
      encodeMs,
      emulatedUplinkMs,
      publishMs: sent.returned - sent.called,
      uplinkMs: cs.arrivedAt - (performance.timeOrigin + sent.returned),
      admitMs: cs.admitMs,
      queueMs: cs.queueMs,
      handoffMs: cs.handoffMs,
      edgeMs: cs.edgeMs,
      consoleMs: Math.max(0, cs.publishedAt - cs.arrivedAt),
      downlinkMs: performance.timeOrigin + receivedAt - cs.publishedAt,
      receiveMs: resumed - receivedAt,
      wireMs: receivedAt - sent.returned - Math.max(0, cs.publishedAt - cs.arrivedAt)
    }
    return { requestId, sample, label, deviceMs, ackMs, e2eMs, predictedLabel: r.label, uploadBytes: frame.length, ...(stages ? { stages } : {}) }
  }
}
