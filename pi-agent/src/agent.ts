/**
 * The device agent: connects to the console's broker with a last will (link.ts), announces itself
 * (retained hello and state, periodic health), follows its retained plan, runs the plan's device
 * prefix on its sample inputs and publishes activation frames (pipeline.ts); answers the console's
 * commands through one handler table. It holds its own model and the models in its cache
 * (held-models.ts); a plan or a `load-model` naming a model it does not hold makes it fetch the model
 * from the console, and a plan is followed only once its model is held. An emulated device (the
 * console's local one, the testbed) is given its emulation (emulation.ts); a real Pi gets none.
 */
import { arch, cpus, platform, totalmem } from 'node:os'
import type { Logger } from 'pino'
import { dispatchCommand, type AgentHandlers, type InferenceRecord } from '../../src/shared/contracts/agent-api.js'
import { measureCodecCosts } from '../../src/shared/algorithms/codec-cost.js'
import { CODECS, type Codec } from '../../src/shared/algorithms/codecs.js'
import { UserError, errorMessage } from '../../src/shared/errors.js'
import { exitPath } from '../../src/shared/contracts/manifest.js'
import { HelloSchema, PlanSchema, RequestSchema, ResultOrRefusalSchema, SCHEMA, parsePayload, type PlanMessage } from '../../src/shared/contracts/messages.js'
import { parseTopic, topics } from '../../src/shared/contracts/topics.js'
import { OrtExecutor } from '../../src/main/runtime/executor.js'
import { readHealth } from '../../src/main/runtime/health.js'
import { measureLayers } from '../../src/main/runtime/layer-timer.js'
import { describeMachine } from '../../src/main/runtime/machine.js'
import { timeSynthetic } from '../../src/main/runtime/synthetic.js'
import { ORT_PACKAGE_VERSION, appVersion } from '../../src/main/runtime/version.js'
import { NO_EMULATED_UPLINK, type Emulation } from './emulation.js'
import { HeldModels, type HeldModel } from './held-models.js'
import { AgentLink } from './link.js'
import { InferencePipeline } from './pipeline.js'

export { Emulation } from './emulation.js'
export type { InferenceRecord } from '../../src/shared/contracts/agent-api.js'

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
  /** How this device is emulated (an emulated uplink, a slower CPU); absent on a real device. */
  emulation?: Emulation
  /** The codecs it offers to send (default every one it implements); the console plans with these only. */
  codecs?: Codec[]
  /** ms to wait for the edge's result before counting an inference as lost. */
  resultTimeoutMs?: number
  /** ms between health reports (temperature, throttling, frequency, load, memory); default 10 s, EDGENT_HEALTH_MS. */
  healthMs?: number
  log: Logger
}

export class EdgentAgent {
  private readonly executor = new OrtExecutor()
  private readonly link: AgentLink
  private readonly held: HeldModels
  private readonly pipeline: InferencePipeline
  private healthTimer: NodeJS.Timeout | null = null
  private readonly startedAt = new Date().toISOString()
  private encodeCosts: Record<string, number> | null = null

  /** The console's commands (src/shared/contracts/agent-api.ts), one handler each. */
  private readonly handlers: AgentHandlers = {
    'run-batch': (a) => this.pipeline.runBatch(a.count, a.runId, a.offset),
    probe: (a) => this.pipeline.probe(a.bytes),
    'profile-layers': (a) => this.profileLayers(a.reps, a.model),
    'load-model': (a) => this.held.load(a.model, a.sha256),
    'time-layers': (a) => timeSynthetic(this.executor, a.specs, a.reps, this.opts.emulation?.slowdown ?? 1, a.regime),
    'set-uplink': (a) => {
      if (!this.opts.emulation) throw new UserError(NO_EMULATED_UPLINK)
      return this.opts.emulation.setUplink(a.kbps)
    },
    'stop-batch': (a) => this.pipeline.stopBatch(a.runId)
  }

  constructor(private readonly opts: AgentOptions) {
    this.link = new AgentLink(
      { brokerUrl: opts.brokerUrl, id: opts.id, token: opts.token, ...(opts.ca ? { ca: opts.ca } : {}), log: opts.log },
      {
        connected: () => this.onConnected(),
        message: (topic, payload) =>
          void this.onMessage(topic, payload).catch((err: unknown) => opts.log.error({ err: errorMessage(err), topic }, 'message handling failed'))
      }
    )
    this.held = new HeldModels({
      executor: this.executor,
      modelDir: opts.modelDir,
      cacheDir: opts.cacheDir,
      ...(opts.fetchTimeoutMs ? { fetchTimeoutMs: opts.fetchTimeoutMs } : {}),
      log: opts.log,
      publishFetch: (payload) => this.link.publish(topics.fetch(opts.id), payload, { qos: 1 }),
      announce: () => this.publishHello()
    })
    this.pipeline = new InferencePipeline({
      id: opts.id,
      executor: this.executor,
      models: this.held,
      link: this.link,
      ...(opts.emulation ? { emulation: opts.emulation } : {}),
      ...(opts.resultTimeoutMs ? { resultTimeoutMs: opts.resultTimeoutMs } : {}),
      log: opts.log,
      stateChanged: () => this.publishState()
    })
  }

  get currentPlan(): PlanMessage | null {
    return this.pipeline.plan
  }

  /** The models this agent holds (id and ONNX SHA-256). */
  get models(): { id: string; sha256: string }[] {
    return this.held.list().map(({ id, sha256 }) => ({ id, sha256 }))
  }

  async start(): Promise<void> {
    await this.executor.start()
    await this.held.start()
    this.link.start()
    const every = this.opts.healthMs ?? (Number(process.env['EDGENT_HEALTH_MS']) || 10_000)
    this.healthTimer = setInterval(() => this.publishHealth(), every)
    this.healthTimer.unref()
  }

  async stop(): Promise<void> {
    if (this.healthTimer) clearInterval(this.healthTimer)
    this.healthTimer = null
    this.held.stop()
    await this.link.stop()
    await this.executor.stop()
  }

  /** Library API: one co-inference of the caller's own image under the current plan (pipeline.ts). */
  infer(pixels: Uint8Array, label?: number): Promise<InferenceRecord> {
    return this.pipeline.infer(pixels, label)
  }

  /** An uplink probe, as the console's `probe` command runs it (pipeline.ts). */
  probe(bytes: number) {
    return this.pipeline.probe(bytes)
  }

  /** Connected (again): presence, then fetches the lost connection cut ask again (after the subscription, in order). */
  private onConnected(): void {
    this.publishHello()
    this.publishState()
    this.publishHealth()
    this.held.reconnected()
  }

  // ------------------------------------------------------------------ presence

  private publishHello(): void {
    if (!this.link.connected) return
    const hello = HelloSchema.parse({
      schema: SCHEMA,
      agentId: this.opts.id,
      arch: arch(),
      platform: platform(),
      cpus: cpus().length,
      memoryBytes: totalmem(),
      versions: { node: process.versions.node, onnxruntime: ORT_PACKAGE_VERSION, agent: appVersion() },
      models: this.held.list(),
      ...(this.opts.emulation?.description ? { emulation: this.opts.emulation.description } : {}),
      codecs: [...(this.opts.codecs ?? CODECS)],
      policies: true,
      codecEncodeNs: this.codecEncodeNs(),
      startedAt: this.startedAt,
      machine: describeMachine()
    })
    this.link.publishJson(topics.hello(this.opts.id), hello, { qos: 1, retain: true })
  }

  private publishState(): void {
    const plan = this.pipeline.plan
    const state = { schema: SCHEMA, state: this.pipeline.busy ? 'busy' : 'online', at: new Date().toISOString(), ...(plan ? { planId: plan.planId } : {}) }
    this.link.publishJson(topics.state(this.opts.id), state, { qos: 1, retain: true })
  }

  /** Publishes one health report (qos 0: the next one follows in a few seconds). */
  private publishHealth(): void {
    void readHealth().then((h) => {
      if (this.link.connected) this.link.publishJson(topics.health(this.opts.id), h, { qos: 0 })
    })
  }

  /** This device's encoding cost per codec (measured once, a few ms): announced in the hello for the planner. */
  private codecEncodeNs(): Record<string, number> {
    this.encodeCosts ??= measureCodecCosts().encodeNs
    return this.encodeCosts
  }

  // ------------------------------------------------------------------ messages

  private async onMessage(topic: string, payload: Buffer): Promise<void> {
    const t = parseTopic(topic)
    if (!t || t.agentId !== this.opts.id) return
    if (t.kind === 'plan') return this.onPlan(payload, topic)
    if (t.kind === 'chunk') return this.held.onChunk(payload)
    if (t.kind === 'result') return this.pipeline.onResult(parsePayload(ResultOrRefusalSchema, payload, topic), performance.now())
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

  /** A retained plan: followed at once when its model is held; else the model is fetched first. */
  private async onPlan(payload: Buffer, topic: string): Promise<void> {
    const pipeline = this.pipeline
    if (payload.length === 0) {
      pipeline.plan = null
      return
    }
    const plan = parsePayload(PlanSchema, payload, topic)
    const h = this.held.holding(plan.model, plan.modelSha256)
    if (h) return this.applyPlan(plan, h)
    // Never run a plan for a model not held: fetch it, follow the plan once it is here.
    pipeline.plan = null
    pipeline.pending = plan
    this.publishState()
    if (!plan.modelSha256)
      throw new UserError(`plan ${plan.planId} is for model ${plan.model}, which this agent does not hold (and the plan names no checksum to fetch it by)`)
    this.opts.log.info({ planId: plan.planId, model: plan.model }, 'plan for a model this agent does not hold: fetching it')
    const held = await this.held.load(plan.model, plan.modelSha256)
    if (pipeline.pending === plan) this.applyPlan(plan, this.held.holding(held.model, held.sha256)!)
  }

  private applyPlan(plan: PlanMessage, h: HeldModel): void {
    exitPath(h.manifest, plan.exit) // throws on an unknown exit
    this.pipeline.plan = plan
    this.pipeline.pending = null
    this.pipeline.warm(plan, h)
    this.opts.log.info({ planId: plan.planId, model: plan.model, exit: plan.exit, deviceLayers: plan.deviceLayers, reason: plan.reason }, 'plan received')
    this.publishState()
  }

  private respond(verb: string, body: unknown): void {
    this.link.publishJson(topics.response(this.opts.id, verb), body, { qos: 1 })
  }

  // ------------------------------------------------------------------ commands

  /** Times every layer of a model (the one named, else the current plan's, else its own), as the emulated device would. */
  private async profileLayers(reps: number, model?: string) {
    if (!Number.isInteger(reps) || reps < 1 || reps > 1000) throw new UserError(`reps must be 1..1000, got ${reps}`)
    const h = this.held.get(model ?? this.pipeline.plan?.model ?? this.held.ownModel.manifest.id)
    const emulation = this.opts.emulation
    // emulated: each frame starts after the slowdown's idle (none without one), and the policy pieces are timed so
    const pacing = emulation ? { idle: (ms: number) => emulation.idleAfter(ms) } : {}
    const t = await measureLayers(this.executor, h.manifest, h.samples.images.subarray(0, h.samples.imageElements), reps, undefined, pacing)
    return emulation ? emulation.scaleTable(t) : t
  }
}
