/**
 * Co-inference, the console's half: an agent's activation frame is checked against the plan it
 * names, the edge runs the rest of the exit and publishes the result; a batch (`infer`) pushes the
 * plan, has the agent run its samples (`run-batch`), joins each of the agent's rows with the
 * console's half, learns the online correction from the batch and stores it in one transaction.
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { quantileSorted } from 'simple-statistics'
import { batchPageRows, type AgentRequest, type InferenceRecord } from '../../../shared/contracts/agent-api.js'
import type { InferRow, InferSummary } from '../../../shared/contracts/console-api.js'
import { UserError, errorMessage } from '../../../shared/errors.js'
import { decodeFrameData, readFrameHead } from '../../../shared/contracts/frame.js'
import { cutShape, exitOutput, exitPath } from '../../../shared/contracts/manifest.js'
import { earlyResultProblem, exitSchedule, runWithPolicy, type HeadOutcome } from '../../../shared/algorithms/exit-paths.js'
import { SCHEMA, encodeJson, type RefusalMessage, type ResultMessage } from '../../../shared/contracts/messages.js'
import { argmax, preprocess } from '../../../shared/algorithms/preprocess.js'
import { topics } from '../../../shared/contracts/topics.js'
import { checkPercentile } from '../../../shared/algorithms/tail.js'
import { frameCodec, type Codec } from '../../../shared/algorithms/codecs.js'
import { stageMedians, type ConsoleStages } from '../../../shared/contracts/stages.js'
import type { Store } from '../../store/store.js'
import type { Emit } from '../api/events.js'
import type { Fleet } from './fleet.js'
import type { LinkMonitor } from './link-monitor.js'
import type { LatencySources } from './latency-sources.js'
import type { Planning } from './planning.js'
import type { Models } from './models.js'
import type { Workers } from './workers.js'
import { LogLimiter, kindOf } from '../broker/log-limit.js'
import { AGENT_RATES, MAX_ACTIVATIONS_IN_FLIGHT, RateLimiter } from '../broker/rate-limit.js'

/** The console's half of one inference, kept until the agent's batch reply arrives. */
interface PendingHalf {
  at: number
  agentId: string
  planId: string
  sample: number | null
  label: number | null
  predictedLabel: number
  deviceMs: number
  edgeMs: number
  edgeTotalMs: number
  uploadBytes: number
  codec: Codec
  /** Under a policy: the exit that answered and on which side. */
  left?: { exit: number; side: 'device' | 'edge'; confidence: number }
  /** An audited frame: what every exit on its path said (device's then edge's). */
  heads?: HeadOutcome[]
  /** The result as published, sent again (not recomputed) when the same request id comes back. */
  result: Uint8Array | null
}

/** Console halves kept at most (oldest dropped first): bounds memory whatever agents send. */
const MAX_HALVES = 20_000
const MAX_SEEN = 100_000
/** Refused activations answered per agent and second (the rest are dropped unanswered). */
const REFUSAL_ANSWERS = { perSecond: 20, burst: 20 }

export interface InferOptions {
  agent: string
  count: number
  latencyMs: number
  /** Plan for this uplink rate, kbit/s, fixed (default: the live estimate). */
  uplinkKbps?: number
  plan?: { exit: number; deviceLayers: number; codec?: Codec; policy?: number }
  campaignId?: string
  /** false: a measurement-only batch (a baseline) that does not move the online correction. */
  learn?: boolean
  /** The requirement holds at this percentile of inferences (tail-aware planning, 50–99.9); absent: at the typical one. */
  percentile?: number
  /** Stored with the run (validated by the API: annotations.ts). */
  tags?: string[]
  note?: string
  /** Start at this sample of the agent's set (default 0). */
  offset?: number
  /** This batch continues that run (the Live page's batches make one run): its rows join it, its summary covers them all. */
  continues?: string
}

export interface CoInferenceDeps {
  store: Store
  /** Where the edge's runs go: the console's own pool or an edge worker (workers.ts). */
  edge: Pick<Workers, 'runSegment'>
  models: Models
  fleet: Fleet
  monitor: LinkMonitor
  planning: Planning
  /** The device's measured tables (timed before its first batch). */
  sources: LatencySources
  emit: Emit
  /** True when someone observes raw activation frames (the `frame` event). */
  observingFrames(): boolean
  /** Every admitted frame of a device (the edge's load and load-aware replanning). */
  onFrame?(agentId: string): void
  /** An audited frame's record: what each exit on its path said, and the final exit it was run to (label-free audits). */
  onAudit?(agentId: string, planId: string, heads: readonly HeadOutcome[]): void
  log: Logger
  request: AgentRequest
  publish(topic: string, payload: Uint8Array): void
  /** Largest activation payload accepted, bytes. */
  maxPayloadBytes: number
}

function startNow<T>(run: () => Promise<T>): Promise<T> {
  try {
    return run()
  } catch (err) {
    return Promise.reject(err)
  }
}

function quantile(sorted: number[], q: number): number {
  return sorted.length ? quantileSorted(sorted, q) : NaN
}

/** Where a policy's frames left: per exit and side, their share of the rows and their mean latency. */
function leftAt(rows: readonly InferRow[]): NonNullable<InferSummary['leftAt']> {
  const groups = new Map<string, InferRow[]>()
  for (const r of rows) {
    const k = `${r.exit}/${r.side ?? 'edge'}`
    const g = groups.get(k)
    if (g) g.push(r)
    else groups.set(k, [r])
  }
  return [...groups.values()]
    .map((g) => ({
      exit: g[0]!.exit,
      side: g[0]!.side ?? ('edge' as const),
      share: g.length / rows.length,
      meanMs: g.reduce((a, r) => a + r.e2eMs, 0) / g.length
    }))
    .sort((a, b) => a.exit - b.exit || a.side.localeCompare(b.side))
}

/** Request ids are the agent's: keyed by agent, one agent cannot claim or answer another's. */
const halfKey = (agentId: string, requestId: string): string => `${agentId}/${requestId}`

export class CoInference {
  private readonly halves = new Map<string, PendingHalf>()
  /** Activations admitted and not yet answered, per agent, by request id. */
  private readonly inFlight = new Map<string, Set<string>>()
  /** The tail of each agent's edge runs (inLane). */
  private readonly lanes = new Map<string, Promise<void>>()
  private readonly rates = new RateLimiter()
  private readonly limiter: LogLimiter
  /** Request ids admitted lately (bounded): a replay after its batch took the half is still ignored. */
  private readonly seen = new Set<string>()

  constructor(private readonly deps: CoInferenceDeps) {
    this.limiter = new LogLimiter(deps.log)
  }

  start(): void {}

  stop(): void {
    this.halves.clear()
    this.inFlight.clear()
    this.limiter.close()
  }

  /**
   * Admission of a decoded frame (DESIGN.md, "Hardening"): a request id already answered gets its
   * result again without a second run; one in flight is ignored; past the agent's rate or its
   * in-flight cap the frame is refused with a reason. Returns the refusal, or null when admitted.
   */
  private admit(agentId: string, requestId: string): string | 'duplicate' | null {
    const key = halfKey(agentId, requestId)
    const done = this.halves.get(key)
    if (done) {
      this.limiter.warn(`replay:${agentId}`, { agentId, requestId }, 'replayed request id: result sent again, not recomputed')
      if (done.result) this.deps.publish(topics.result(agentId), done.result)
      return 'duplicate'
    }
    const flying = this.inFlight.get(agentId)
    if (flying?.has(requestId)) return 'duplicate'
    if (this.seen.has(key)) {
      this.limiter.warn(`replay:${agentId}`, { agentId, requestId }, 'replayed request id of a finished batch: ignored')
      return 'duplicate'
    }
    this.seen.add(key)
    if (this.seen.size > MAX_SEEN) this.seen.delete(this.seen.values().next().value as string)
    if (!this.rates.take(`${agentId}/activation`, AGENT_RATES.activation)) return `over the per-agent rate of ${AGENT_RATES.activation.perSecond} activations/s`
    if (flying && flying.size >= MAX_ACTIVATIONS_IN_FLIGHT)
      return `${flying.size} activations of this agent are already at the edge (limit ${MAX_ACTIVATIONS_IN_FLIGHT})`
    return null
  }

  async onActivation(agentId: string, payload: Buffer): Promise<void> {
    const arrived = performance.now()
    const arrivedAt = performance.timeOrigin + arrived
    const { planning, models } = this.deps
    let requestId: string | undefined
    let admitted: Set<string> | null = null
    try {
      // The head first: a frame that does not match its plan is refused before its tensor is decoded.
      const head = readFrameHead(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), { maxPayloadBytes: this.deps.maxPayloadBytes })
      const h = head.header
      requestId = h.requestId
      const refusal = this.admit(agentId, h.requestId)
      if (refusal === 'duplicate') return
      if (refusal) {
        this.limiter.warn(`refused:${agentId}`, { agentId, reason: refusal }, 'refused activation')
        // Told, so that it does not wait 30 s — at a bounded rate: an agent far over its rate is not a
        // well-behaved one, and answering every frame would double what a flood costs.
        if (this.rates.take(`${agentId}/refusal-answer`, REFUSAL_ANSWERS)) this.publishRefusal(agentId, requestId, refusal)
        return
      }
      const flying = this.inFlight.get(agentId) ?? new Set<string>()
      this.inFlight.set(agentId, flying)
      flying.add(h.requestId)
      admitted = flying
      const plan = planning.plan(h.planId)
      if (!plan || plan.agentId !== agentId) throw new UserError(`unknown plan "${h.planId}" for agent ${agentId}`)
      const m = models.get(plan.model).manifest
      if (h.model !== m.id || h.exit !== plan.exit || h.deviceLayers !== plan.deviceLayers) {
        throw new UserError(`frame (model ${h.model}, exit ${h.exit}, deviceLayers ${h.deviceLayers}) does not match plan ${plan.planId}`)
      }
      const path = exitPath(m, h.exit)
      if (h.left) {
        // A frame that left on the device: its exit's scores, a report checked against the plan's policy.
        if (!plan.policy) throw new UserError(`frame reports an early exit, but plan ${plan.planId} is static (no confidence exits)`)
        const problem = earlyResultProblem(m, plan, { exit: h.left.exit, confidence: h.left.confidence, side: 'device' })
        if (problem) throw new UserError(`early result refused: ${problem}`)
      } else if (plan.policy && h.deviceLayers >= path.length)
        throw new UserError(`plan ${plan.planId} runs its final exit on the device: a frame must report the exit it left at`)
      // A device-only frame (or an early result) only reports the scores (f32); an activation crosses as its plan says.
      const codec = h.left ? 'f32' : frameCodec(plan.codec, h.deviceLayers, path.length)
      if (head.codec !== codec) throw new UserError(`frame codec ${head.codec} does not match plan ${plan.planId}, which sends ${codec}`)
      // the boundary tensor (deviceLayers is the plan's: 0..N, N being the scores a device-only plan reports), or the early exit's scores
      const expected = h.left ? exitOutput(m, h.left.exit).outputShape : cutShape(m, path, h.deviceLayers)
      if (head.dims.length !== expected.length || head.dims.some((d, i) => d !== expected[i])) {
        throw new UserError(
          h.left
            ? `frame dims [${head.dims.join(', ')}] do not match exit ${h.left.exit}'s scores ([${expected.join(', ')}])`
            : `frame dims [${head.dims.join(', ')}] do not match the boundary tensor of deviceLayers ${h.deviceLayers} ([${expected.join(', ')}])`
        )
      }
      const frame = decodeFrameData(head)
      this.deps.onFrame?.(agentId)
      if (this.deps.observingFrames()) this.deps.emit('frame', { agentId, header: h, dims: frame.dims, data: frame.data.slice() })
      if (h.uplinkSampleKbps) this.deps.monitor.addSample(agentId, h.uplinkSampleKbps, 'activation', payload.length)
      // a raw image (u8, edge-only plans): the edge does the model's preprocessing
      const input = frame.codec === 'u8' ? preprocess(m, frame.pixels!) : frame.data
      let scores = input
      let edgeMs = 0
      const asked = performance.now()
      let started = asked
      let pooledMs = 0
      const runsHere = h.deviceLayers < path.length && !h.left
      let left: PendingHalf['left'] = h.left ? { ...h.left, side: 'device' } : undefined
      let heads: HeadOutcome[] | undefined = h.left && h.audit ? h.heads : undefined
      if (runsHere && plan.policy) {
        // Under a policy: the rest of the trunk, the exits past the cut evaluated on the way (exit-paths.ts).
        const policy = plan.policy
        const r = await this.inLane(agentId, () => {
          started = performance.now()
          return runWithPolicy({
            m,
            policy,
            steps: exitSchedule(m, h.deviceLayers).edge,
            from: h.deviceLayers,
            to: path.length,
            input,
            dims: frame.dims,
            audit: h.audit === true,
            run: async (seg, x, dims) => {
              const out = await this.deps.edge.runSegment(m.id, seg, x, dims, { owner: agentId })
              pooledMs += out.queuedMs
              return { output: out.output, dims: out.dims, ms: out.ms }
            }
          })
        })
        scores = r.left!.scores
        edgeMs = r.ms
        left = { exit: r.left!.exit, side: 'edge', confidence: r.left!.confidence }
        if (h.audit) heads = [...(h.heads ?? []), ...r.heads]
      } else if (runsHere) {
        const r = await this.inLane(agentId, () => {
          started = performance.now()
          return this.deps.edge.runSegment(m.id, { exit: h.exit, from: h.deviceLayers, to: path.length }, input, frame.dims, {
            owner: agentId,
            give: frame.codec === 'u8'
          })
        })
        scores = r.output
        edgeMs = r.ms
        pooledMs = r.queuedMs
      }
      const back = performance.now()
      const label = argmax(scores)
      const edgeTotalMs = performance.now() - arrived
      const stages: ConsoleStages = {
        arrivedAt,
        admitMs: asked - arrived,
        // the device's own previous frame (its lane), then other devices' runs (the pool's queue)
        queueMs: Math.max(0, started - asked) + pooledMs,
        handoffMs: Math.max(0, back - started - pooledMs - edgeMs),
        edgeMs,
        publishedAt: performance.timeOrigin + performance.now()
      }
      let result: Uint8Array | null = null
      if (runsHere) {
        // JSON has no NaN or Inf (they would arrive as null, which the agent refuses): say so instead.
        const finite = scores.every((v) => Number.isFinite(v))
        result = this.publishResult(agentId, {
          requestId: h.requestId,
          planId: h.planId,
          exit: left?.exit ?? h.exit,
          label: finite ? label : 0,
          scores: finite ? Array.from(scores) : [],
          edgeMs,
          edgeTotalMs,
          stages,
          ...(finite ? {} : { error: `the edge output of model ${m.id}, exit ${h.exit} holds NaN or Inf: check the model and its input` })
        })
      }
      this.dropStaleHalves()
      this.halves.set(halfKey(agentId, h.requestId), {
        at: Date.now(),
        agentId,
        planId: h.planId,
        sample: h.sample ?? null,
        label: h.label ?? null,
        predictedLabel: label,
        deviceMs: h.deviceMs,
        edgeMs,
        edgeTotalMs,
        uploadBytes: runsHere ? payload.length : 0,
        codec: frame.codec,
        ...(left ? { left } : {}),
        ...(heads ? { heads } : {}),
        result
      })
      if (heads) this.deps.onAudit?.(agentId, plan.planId, heads)
    } catch (err) {
      const message = errorMessage(err)
      this.limiter.warn(`rejected:${agentId}:${kindOf(message)}`, { agentId, bytes: payload.length, err: message }, 'rejected activation')
      if (requestId && err instanceof UserError) this.publishRefusal(agentId, requestId, message)
    } finally {
      if (admitted && requestId) admitted.delete(requestId)
    }
  }

  /**
   * One edge run per agent at a time: an agent's next frame waits for its previous one, so the
   * executor's queue holds at most one frame of each agent and a busy agent cannot stand between
   * another and the edge for more than one run (round robin, in effect).
   */
  private inLane<T>(agentId: string, run: () => Promise<T>): Promise<T> {
    const before = this.lanes.get(agentId)
    // A free lane starts now, in this tick (not a microtask later, after the broker's own work on the frame).
    const mine = before ? before.then(run, run) : startNow(run)
    const tail = mine.then(
      () => undefined,
      () => undefined
    )
    this.lanes.set(agentId, tail)
    void tail.then(() => {
      if (this.lanes.get(agentId) === tail) this.lanes.delete(agentId)
    })
    return mine
  }

  private publishResult(agentId: string, r: Omit<ResultMessage, 'schema'>): Uint8Array {
    const payload = encodeJson({ schema: SCHEMA, ...r })
    this.deps.publish(topics.result(agentId), payload)
    return payload
  }

  /** Tells an agent its activation was refused, and why (a refusal, not a result: no plan ran). */
  private publishRefusal(agentId: string, requestId: string, reason: string): void {
    const refusal: RefusalMessage = { schema: SCHEMA, requestId, refused: reason.slice(0, 2000) }
    this.deps.publish(topics.result(agentId), encodeJson(refusal))
  }

  /**
   * The console's half of an inference waits for the agent's batch response; inferences outside a
   * batch (the agent's library API) never get one, so halves older than ten minutes are dropped.
   */
  private dropStaleHalves(): void {
    const cutoff = Date.now() - 10 * 60_000
    for (const [k, h] of this.halves) {
      if (h.at >= cutoff && this.halves.size < MAX_HALVES) break // insertion order is arrival order
      this.halves.delete(k)
    }
  }

  async infer(opts: InferOptions, signal?: AbortSignal): Promise<{ summary: InferSummary; rows: InferRow[] }> {
    const { fleet, planning, sources, monitor, store } = this.deps
    const id = fleet.online(opts.agent)
    if (!Number.isInteger(opts.count) || opts.count < 1) throw new UserError(`count must be a positive integer, got ${opts.count}`)
    const codec = opts.plan?.codec
    if (codec && codec !== 'f32' && !(fleet.view(id).hello?.codecs ?? []).includes(codec))
      throw new UserError(
        `agent ${id} does not announce codec ${codec} (an agent from before codecs sends f32 only): update it, or pin the plan without a codec`
      )
    await sources.deviceTable(id)
    const kbps = opts.uplinkKbps ?? (await monitor.ensureEstimate(id))
    if (opts.percentile !== undefined) checkPercentile(opts.percentile)
    const percentile = opts.percentile !== undefined && opts.percentile !== 50 ? opts.percentile : undefined
    // The dispersion the plans are chosen with (before this batch adds to it).
    const tail = percentile !== undefined ? planning.tail(id, percentile) : null
    planning.setIntent(id, {
      latencyMs: opts.latencyMs,
      fixedKbps: opts.uplinkKbps ?? null,
      pinned: !!opts.plan,
      ...(percentile !== undefined ? { percentile } : {})
    })
    const reason = opts.plan
      ? `pinned by the user: ${opts.plan.policy !== undefined ? `policy ${opts.plan.policy} (final exit ${opts.plan.exit})` : `exit ${opts.plan.exit}`}, ${opts.plan.deviceLayers} device layers`
      : opts.uplinkKbps
        ? `bandwidth fixed at ${kbps} kbps by the user`
        : `uplink estimate ${Math.round(kbps)} kbps`
    const first = await planning.pushPlan(id, opts.latencyMs, kbps, reason, opts.plan, percentile)
    const { tags, note, continues, ...params } = opts
    let runId: string
    let previous: InferSummary | null = null
    if (continues) {
      const prev = store.runs.view(continues)
      if (!prev || prev.agentId !== id) throw new UserError(`infer: no run "${continues}" of ${id} to continue`)
      if (prev.campaignId || prev.status !== 'done' || !prev.summary)
        throw new UserError(`infer: run "${continues}" cannot be continued (${prev.campaignId ? "a campaign's run" : prev.status})`)
      runId = prev.id
      previous = prev.summary
      store.runs.setStatus(runId, 'running')
    } else {
      runId = randomUUID()
      store.runs.start({
        runId,
        agentId: id,
        params,
        campaignId: opts.campaignId ?? null,
        model: this.deps.models.forDevice(id).manifest.id,
        tags: tags ?? [],
        note: note ?? ''
      })
    }
    const plansBefore = new Set(planning.planIds(id))
    // A caller that goes away (a closed API connection, a stopped CLI) ends the batch after the
    // inference in flight: the agent answers with the rows done, stored as any batch's.
    let cancelled: string | null = null
    const stop = () => {
      cancelled = 'the caller went away'
      this.deps.request(id, 'stop-batch', { runId }, 10_000).catch(() => undefined)
    }
    signal?.addEventListener('abort', stop, { once: true })
    try {
      // The agent answers in pages a slow uplink carries in seconds: one reply of thousands of rows
      // (~1 KB each) would take longer than the broker's keepalive grace on a 250 kbps link.
      const pageRows = batchPageRows(Math.min(kbps, monitor.estimateKbps(id) ?? kbps))
      const done: InferenceRecord[] = []
      while (done.length < opts.count && !cancelled) {
        const count = Math.min(pageRows, opts.count - done.length)
        const offset = (opts.offset ?? 0) + done.length
        const page = await this.deps.request(id, 'run-batch', { runId, count, offset }, 60_000 + count * 10_000)
        done.push(...page.rows)
        if (page.rows.length < count) break // stopped by the agent (stop-batch)
      }
      const rows: InferRow[] = []
      let lost = 0
      for (const r of done) {
        const half = this.halves.get(halfKey(id, r.requestId))
        this.halves.delete(halfKey(id, r.requestId))
        const plan = half && half.agentId === id ? planning.plan(half.planId) : undefined
        if (r.lost || !half || !plan) {
          lost++
          continue
        }
        const transferMs = Math.max(0, r.e2eMs - half.deviceMs - half.edgeTotalMs)
        // under a policy: the component of the predicted mixture where this frame left
        const component = half.left && plan.mixture?.find((x) => x.exit === half.left!.exit && x.side === half.left!.side)
        const leftOnDevice = half.left?.side === 'device'
        rows.push({
          requestId: r.requestId,
          sample: half.sample,
          label: half.label,
          predictedLabel: r.predictedLabel,
          correct: half.label === null ? null : r.predictedLabel === half.label,
          exit: half.left?.exit ?? plan.exit,
          deviceLayers: plan.deviceLayers,
          planId: plan.planId,
          predictedMs: component ? component.ms : plan.predictedMs,
          predicted: component ? component.breakdown : plan.breakdown,
          deviceMs: half.deviceMs,
          transferMs: plan.deviceLayers >= plan.layers || leftOnDevice ? 0 : transferMs,
          edgeMs: half.edgeMs,
          e2eMs: r.e2eMs,
          met: r.e2eMs <= opts.latencyMs,
          uplinkKbps: plan.uplinkKbps,
          uploadBytes: half.uploadBytes,
          ...(half.codec !== 'f32' && !leftOnDevice ? { codec: half.codec } : {}),
          ...(half.left ? { side: half.left.side, confidence: half.left.confidence } : {}),
          ...(r.stages ? { stages: r.stages } : {})
        })
      }
      const prediction = planning.learn(id, rows, opts.learn !== false, monitor.estimateKbps(id))
      const e2e = rows.map((r) => r.e2eMs).sort((x, y) => x - y)
      const labelled = rows.filter((r) => r.correct !== null)
      const summary: InferSummary = {
        runId,
        agentId: id,
        count: opts.count,
        completed: rows.length,
        lost,
        latencyMs: opts.latencyMs,
        uplinkKbps: kbps,
        bandwidthSource: opts.uplinkKbps ? 'fixed' : 'estimate',
        plan: {
          planId: first.planId,
          exit: first.exit,
          deviceLayers: first.deviceLayers,
          layers: first.layers,
          predictedMs: first.predictedMs,
          ...(first.predictedPercentileMs !== undefined ? { predictedPercentileMs: first.predictedPercentileMs } : {}),
          ...(first.codec ? { codec: first.codec } : {}),
          ...(first.policy
            ? { policy: first.policy.index, mixture: (first.mixture ?? []).map(({ exit, side, share, ms }) => ({ exit, side, share, ms })) }
            : {}),
          ...(opts.plan ? { pinned: true as const } : {}),
          feasible: first.feasible
        },
        percentile: percentile ?? null,
        tail,
        percentileMs: percentile !== undefined && e2e.length ? quantile(e2e, percentile / 100) : null,
        ...(first.policy ? { leftAt: leftAt(rows) } : {}),
        p50Ms: quantile(e2e, 0.5),
        p95Ms: quantile(e2e, 0.95),
        accuracy: labelled.length ? labelled.filter((r) => r.correct).length / labelled.length : null,
        metShare: rows.length ? rows.filter((r) => r.met).length / rows.length : 0,
        planChanges: planning.planIds(id).filter((k) => !plansBefore.has(k)).length,
        prediction,
        stagesMedianMs: stageMedians(rows.flatMap((r) => (r.stages ? [r.stages] : []))),
        ...(cancelled ? { stopped: `${cancelled} after ${done.length} of ${opts.count} inferences` } : {})
      }
      store.runs.finish(runId, id, first.model, rows, summary, previous)
      this.deps.emit('inferences', { id, summary })
      return { summary, rows }
    } catch (err) {
      // A continued run keeps what its earlier batches stored: it is done, without this batch.
      if (previous) store.runs.setStatus(runId, 'done')
      else store.runs.fail(runId, errorMessage(err))
      for (const [k, h] of this.halves) if (h.agentId === id) this.halves.delete(k)
      throw err
    } finally {
      signal?.removeEventListener('abort', stop)
    }
  }
}
