/**
 * Edge workers (issue 34): headless edge processes on other machines (`edgent worker`), reached
 * through the broker, among which the console spreads the edge's runs. The console's own pool is one
 * worker among them (unless `localEdge` is off).
 *
 * - Pairing: a worker has an id and a token of its own (stored hashed, as agents'); it logs in as
 *   `worker:{id}` and may only publish its hello, heartbeat and answers, and read its jobs (broker.ts).
 * - Routing by load: each run goes to the worker whose answer is expected first — its jobs in flight
 *   (counted here, exact) over its threads, times its measured service time, plus its measured round
 *   trip — among the live ones holding the model at the console's digest. No shared subscription is
 *   relied on (aedes has none); per-worker topics carry the jobs.
 * - Failure: a worker whose heartbeat stops for WORKER_DEAD_MS (killed, cut off, stopped) is dead; its
 *   jobs in flight are sent again to another worker at once, and so is a job unanswered for
 *   JOB_TIMEOUT_MS. Each job is answered once: an answer to a job the worker was not given (or that was
 *   taken back from it) is refused by name, as is a malformed one.
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { UserError, errorMessage } from '../../../shared/errors.js'
import { checkAgentId, workerTopics } from '../../../shared/contracts/topics.js'
import { decodeFrameData, encodeTensorMessage, readTensorHead } from '../../../shared/contracts/frame.js'
import { cutShape, exitPath } from '../../../shared/contracts/manifest.js'
import { parsePayload } from '../../../shared/contracts/messages.js'
import {
  AnswerHeaderSchema,
  WORKER_DEAD_MS,
  WorkerHealthSchema,
  WorkerHelloSchema,
  type WorkerHealth,
  type WorkerHello
} from '../../../shared/contracts/worker-api.js'
import type { OrtExecutor } from '../../runtime/executor.js'
import type { SegmentRef } from '../../runtime/segments.js'
import type { Store } from '../../store/store.js'
import { checkPairedToken, hashToken, newToken } from '../broker/tokens.js'
import { LogLimiter, kindOf } from '../broker/log-limit.js'
import type { Emit } from '../api/events.js'
import type { Models } from './models.js'
import type { WorkerView } from '../../../shared/contracts/console-api.js'

/** A job not answered within this is sent to another worker (its late answer then refused). */
export const JOB_TIMEOUT_MS = 10_000
/** A worker that answered a job wrongly (an error, a malformed or misshapen answer) is sent nothing for this long. */
export const BENCH_MS = 10_000
/** Times a job is sent before it fails. */
const MAX_TRIES = 3
/** The console's own pool, in routing and in the workers' list. */
export const LOCAL_WORKER = 'console'

/** One run on whichever worker took it. */
export interface EdgeRun {
  output: Float32Array
  dims: number[]
  /** The session's run, ms (on the worker that answered). */
  ms: number
  /** Waiting for a thread (and, remote, the round trip), ms. */
  queuedMs: number
  /** Who answered: LOCAL_WORKER or a worker id. */
  worker: string
}

export type Routing = 'load-aware' | 'round-robin'

export interface WorkersDeps {
  store: Store
  /** The console's own pool. */
  executor: OrtExecutor
  models: Models
  publish(topic: string, payload: Uint8Array): void
  /** Drops a worker's connection (after unpairing); false when it was not connected. */
  disconnect(workerId: string): boolean
  emit: Emit
  log: Logger
  /** The console's own pool serves edge runs too (default true). */
  localEdge?: boolean
  routing?: Routing
  /** Every remote run answered (the edge's load model counts them with the local pool's). */
  onRun?(r: { owner: string; at: number; queuedMs: number; serviceMs: number; runMs: number }): void
}

interface Job {
  jobId: string
  modelId: string
  segment: SegmentRef
  input: Float32Array
  dims: number[]
  owner: string
  worker: string
  sentAt: number
  tries: number
  resolve(r: EdgeRun): void
  reject(err: Error): void
}

interface Remote {
  id: string
  hello: WorkerHello | null
  health: WorkerHealth | null
  /** performance.now() of its last heartbeat (or hello). */
  seenAt: number
  dead: boolean
  /** performance.now() until which it is sent nothing (it answered a job wrongly). */
  benchedUntil: number
  /** Jobs sent to it and not answered, by job id. */
  inFlight: Map<string, Job>
  /** Smoothed session time and round-trip overhead (answer − sent − session − queue), ms; null before its first answer. */
  serviceMs: number | null
  tripMs: number | null
  answered: number
  refused: number
  deaths: number
}

const EWMA = 0.2
const ewma = (prev: number | null, x: number) => (prev === null ? x : prev + EWMA * (x - prev))

export class Workers {
  private readonly remotes = new Map<string, Remote>()
  private readonly limiter: LogLimiter
  private sweep: NodeJS.Timeout | null = null
  private localInFlight = 0
  private localServiceMs: number | null = null
  private turn = 0
  /** Jobs sent again after their worker died or timed out, and answers refused. */
  readonly counts = { resent: 0, refused: 0, local: 0, remote: 0 }

  constructor(private readonly deps: WorkersDeps) {
    this.limiter = new LogLimiter(deps.log)
  }

  start(): void {
    this.sweep = setInterval(() => this.check(), Math.max(50, WORKER_DEAD_MS / 5))
    this.sweep.unref()
  }

  stop(): void {
    if (this.sweep) clearInterval(this.sweep)
    this.sweep = null
    for (const w of this.remotes.values()) {
      for (const j of w.inFlight.values()) j.reject(new Error('console stopping'))
      w.inFlight.clear()
    }
    this.limiter.close()
  }

  // ------------------------------------------------------------------ pairing

  /** Issues a token for a worker id (a paired one only with `force`: the old token dies at once). */
  pair(id: string, o: { force?: boolean } = {}): { id: string; token: string; replaced: boolean } {
    checkAgentId(id)
    const row = this.deps.store.workers.get(id)
    const live = !!row && !row.revoked_at
    if (live && !o.force)
      throw new UserError(
        `worker "${id}" is already paired: pairing it again issues a new token and the old one stops working at once — pair with force to do so`
      )
    const token = newToken()
    this.deps.store.workers.pair(id, hashToken(token))
    if (live) this.deps.disconnect(id)
    this.deps.log.info({ workerId: id, replaced: live }, live ? 'worker re-paired: the old token is dead' : 'worker paired')
    this.deps.emit('devices', { reason: `worker ${id} paired` })
    return { id, token, replaced: live }
  }

  /** Revokes a worker's token and drops it; its jobs in flight go to others. */
  unpair(id: string): { id: string; revoked: boolean; disconnected: boolean } {
    checkAgentId(id)
    const revoked = this.deps.store.workers.revoke(id)
    if (!revoked && !this.deps.store.workers.get(id)) throw new UserError(`unknown worker "${id}"`)
    const disconnected = this.deps.disconnect(id)
    const w = this.remotes.get(id)
    if (w) this.kill(w, 'unpaired')
    this.remotes.delete(id)
    this.deps.log.info({ workerId: id, revoked, disconnected }, 'worker unpaired')
    return { id, revoked, disconnected }
  }

  /** The broker's login check: a paired, unrevoked worker's token (the same work for unknown ids). */
  checkToken(id: string, token: string): Promise<boolean> {
    return checkPairedToken(this.deps.store.workers.get(id), token)
  }

  /** The edge's threads: the console's own pool's (when it serves) and every live worker's. */
  capacity(): number {
    let n = this.deps.localEdge === false ? 0 : this.deps.executor.size
    for (const w of this.remotes.values()) if (!w.dead && w.hello) n += w.hello.pool
    return n
  }

  list(): WorkerView[] {
    const now = performance.now()
    const views: WorkerView[] = this.deps.store.workers
      .list()
      .filter((r) => !r.revoked_at)
      .map((r) => {
        const w = this.remotes.get(r.id)
        return {
          id: r.id,
          state: !w ? 'unknown' : w.dead ? 'dead' : 'online',
          version: w?.hello?.version ?? null,
          pool: w?.hello?.pool ?? null,
          models: w?.hello?.models.map((m) => m.id) ?? [],
          inFlight: w?.inFlight.size ?? 0,
          queued: w?.health?.queued ?? null,
          serviceMs: w?.serviceMs ?? null,
          tripMs: w?.tripMs ?? null,
          answered: w?.answered ?? 0,
          refused: w?.refused ?? 0,
          deaths: w?.deaths ?? 0,
          lastSeenMsAgo: w ? Math.round(now - w.seenAt) : null
        }
      })
    if (this.deps.localEdge !== false)
      views.unshift({
        id: LOCAL_WORKER,
        state: 'online',
        version: null,
        pool: this.deps.executor.size,
        models: [],
        inFlight: this.localInFlight,
        queued: this.deps.executor.queued,
        serviceMs: this.localServiceMs,
        tripMs: 0,
        answered: this.counts.local,
        refused: 0,
        deaths: 0,
        lastSeenMsAgo: 0
      })
    return views
  }

  // ------------------------------------------------------------------ messages from workers

  /** A paired worker's record (the store asked once, when first heard of: unpairing drops the record and the connection). */
  private remote(id: string): Remote | null {
    let w = this.remotes.get(id)
    if (!w) {
      const row = this.deps.store.workers.get(id)
      if (!row || row.revoked_at) return null
      w = {
        id,
        hello: null,
        health: null,
        seenAt: performance.now(),
        dead: true,
        benchedUntil: 0,
        inFlight: new Map(),
        serviceMs: null,
        tripMs: null,
        answered: 0,
        refused: 0,
        deaths: 0
      }
      this.remotes.set(id, w)
    }
    return w
  }

  private alive(w: Remote, why: string): void {
    w.seenAt = performance.now()
    if (w.dead && w.hello) {
      w.dead = false
      this.deps.log.info({ workerId: w.id, why }, 'worker online')
      this.deps.emit('devices', { reason: `worker ${w.id} online` })
    }
  }

  onHello(id: string, payload: Buffer): void {
    const w = this.remote(id)
    if (!w || payload.length === 0) return
    try {
      w.hello = parsePayload(WorkerHelloSchema, payload, workerTopics.hello(id))
      if (w.hello.workerId !== id) throw new UserError(`hello names worker "${w.hello.workerId}", published by "${id}"`)
    } catch (err) {
      w.hello = null
      this.limiter.warn(`hello:${id}`, { workerId: id, err: errorMessage(err) }, 'refused a malformed worker hello')
    }
    // not alive yet: a retained hello outlives its worker; a heartbeat says it runs
  }

  onHealth(id: string, payload: Buffer): void {
    const w = this.remote(id)
    if (!w) return
    try {
      w.health = parsePayload(WorkerHealthSchema, payload, workerTopics.health(id))
    } catch (err) {
      this.limiter.warn(`health:${id}`, { workerId: id, err: errorMessage(err) }, 'refused a malformed worker heartbeat')
      return
    }
    this.alive(w, 'heartbeat')
  }

  /** A worker's answer: taken only for a job it holds; anything else refused by name. */
  onDone(id: string, payload: Buffer): void {
    const w = this.remote(id)
    if (!w) return
    let job: Job | undefined
    try {
      const head = readTensorHead(
        new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength),
        { maxPayloadBytes: 1 << 30 },
        AnswerHeaderSchema,
        'worker answer'
      )
      job = w.inFlight.get(head.header.jobId)
      if (!job) throw new UserError(`answer to job "${head.header.jobId.slice(0, 64)}", which worker ${id} was not given (or that was taken back from it)`)
      w.inFlight.delete(job.jobId)
      if (head.header.error) throw new UserError(`worker ${id} could not run job ${job.jobId}: ${head.header.error}`)
      // the segment's output, as the model says it is shaped: anything else is not an answer to it
      const m = this.deps.models.get(job.modelId).manifest
      const expected = cutShape(m, exitPath(m, job.segment.exit), job.segment.to)
      if (head.dims.length !== expected.length || head.dims.some((d, i) => d !== expected[i]))
        throw new UserError(`worker ${id} answered job ${job.jobId} with dims [${head.dims.join(', ')}], not the segment's output [${expected.join(', ')}]`)
      const out = decodeFrameData({ ...head, header: head.header as never })
      const tripMs = performance.now() - job.sentAt
      w.serviceMs = ewma(w.serviceMs, head.header.ms)
      w.tripMs = ewma(w.tripMs, Math.max(0, tripMs - head.header.ms - head.header.queuedMs))
      w.answered++
      this.counts.remote++
      w.seenAt = performance.now()
      this.deps.onRun?.({ owner: job.owner, at: performance.now(), queuedMs: head.header.queuedMs, serviceMs: head.header.ms, runMs: head.header.ms })
      job.resolve({ output: out.data, dims: out.dims, ms: head.header.ms, queuedMs: Math.max(0, tripMs - head.header.ms), worker: id })
    } catch (err) {
      w.refused++
      this.counts.refused++
      // one log line per kind of refusal and burst, whatever the job ids (a flood of bogus answers is not a flood of lines)
      const kind = kindOf(errorMessage(err).replace(/job "?[^\s",]+"?/g, 'job …'))
      this.limiter.warn(`done:${id}:${kind}`, { workerId: id, err: errorMessage(err) }, 'refused a worker answer')
      // a job it answered wrongly goes to another worker, and it gets nothing for a while
      if (job) {
        w.benchedUntil = performance.now() + BENCH_MS
        this.dispatch(job, new Set([id]))
      }
    }
  }

  // ------------------------------------------------------------------ routing

  /** Live workers holding `modelId` at the console's digest. */
  private candidates(modelId: string, exclude: ReadonlySet<string>): Remote[] {
    let sha: string
    try {
      sha = this.deps.models.get(modelId).package.sha256
    } catch {
      return []
    }
    const now = performance.now()
    return [...this.remotes.values()].filter(
      (w) => !w.dead && w.benchedUntil <= now && !exclude.has(w.id) && w.hello?.models.some((m) => m.id === modelId && m.sha256 === sha)
    )
  }

  /** Runs layers [from, to) of a segment on the worker expected to answer first (the console's own pool among them). */
  runSegment(
    modelId: string,
    segment: SegmentRef,
    input: Float32Array,
    dims: number[] | undefined,
    o: { owner?: string; give?: boolean } = {}
  ): Promise<EdgeRun> {
    const remotes = this.candidates(modelId, new Set())
    if (remotes.length === 0 && this.deps.localEdge !== false) return this.runLocal(modelId, segment, input, dims, o)
    const m = this.deps.models.get(modelId).manifest
    const shape = dims ?? [...cutShape(m, exitPath(m, segment.exit), segment.from)]
    return new Promise<EdgeRun>((resolve, reject) => {
      const job: Job = {
        jobId: randomUUID(),
        modelId,
        segment,
        // kept until answered: sent again if its worker dies
        input: o.give ? input : input.slice(),
        dims: shape,
        owner: o.owner ?? '',
        worker: '',
        sentAt: 0,
        tries: 0,
        resolve,
        reject
      }
      this.dispatch(job, new Set())
    })
  }

  private async runLocal(
    modelId: string,
    segment: SegmentRef,
    input: Float32Array,
    dims: number[] | undefined,
    o: { owner?: string; give?: boolean }
  ): Promise<EdgeRun> {
    this.localInFlight++
    try {
      const r = await this.deps.executor.runSegment(modelId, segment, input, dims, o)
      this.localServiceMs = ewma(this.localServiceMs, r.ms)
      this.counts.local++
      return { output: r.output, dims: r.dims, ms: r.ms, queuedMs: r.queuedMs, worker: LOCAL_WORKER }
    } finally {
      this.localInFlight--
    }
  }

  /** When a job sent to `w` now is expected to be answered, ms from now. */
  private expectedMs(w: Remote): number {
    // never answered yet (new, or back): tried first, once — its speed is only known from a run
    if (w.serviceMs === null) return w.inFlight.size ? Number.POSITIVE_INFINITY : 0
    const service = w.serviceMs
    const pool = w.hello?.pool ?? 1
    return ((w.inFlight.size + 1) / pool) * service + (w.tripMs ?? 1)
  }

  private expectedLocalMs(): number {
    const service = this.localServiceMs ?? 1
    return ((this.localInFlight + this.deps.executor.queued + 1) / Math.max(1, this.deps.executor.size)) * service
  }

  /** Sends a job to the best worker not in `exclude` (or runs it here); fails it after MAX_TRIES. */
  private dispatch(job: Job, exclude: Set<string>): void {
    if (job.tries >= MAX_TRIES) {
      job.reject(new UserError(`no edge worker answered this run after ${MAX_TRIES} tries`))
      return
    }
    const remotes = this.candidates(job.modelId, exclude)
    const local = this.deps.localEdge !== false
    let target: Remote | null = null
    if (this.deps.routing === 'round-robin') {
      const n = remotes.length + (local ? 1 : 0)
      const k = n ? this.turn++ % n : -1
      target = k >= 0 && k < remotes.length ? remotes[k]! : null
    } else {
      let best = local ? this.expectedLocalMs() : Number.POSITIVE_INFINITY
      for (const w of remotes) {
        const t = this.expectedMs(w)
        if (t < best) {
          best = t
          target = w
        }
      }
    }
    if (!target) {
      if (!local) {
        job.reject(new UserError(`no live edge worker holds model ${job.modelId}${exclude.size ? ` (tried: ${[...exclude].join(', ')})` : ''}`))
        return
      }
      job.tries++
      this.runLocal(job.modelId, job.segment, job.input, job.dims, { owner: job.owner, give: true }).then(job.resolve, job.reject)
      return
    }
    job.tries++
    job.worker = target.id
    job.sentAt = performance.now()
    target.inFlight.set(job.jobId, job)
    const sha = this.deps.models.get(job.modelId).package.sha256
    const frame = encodeTensorMessage(
      { jobId: job.jobId, model: job.modelId, sha256: sha, exit: job.segment.exit, from: job.segment.from, to: job.segment.to },
      job.dims,
      job.input
    )
    this.deps.publish(workerTopics.job(target.id), frame)
  }

  /** Declares a worker dead: every job it holds goes to another worker. */
  private kill(w: Remote, why: string): void {
    if (!w.dead) {
      w.dead = true
      w.deaths++
      this.deps.log.warn({ workerId: w.id, why, inFlight: w.inFlight.size }, 'worker lost: its jobs go to other workers')
      this.deps.emit('devices', { reason: `worker ${w.id} lost (${why})` })
    }
    const jobs = [...w.inFlight.values()]
    w.inFlight.clear()
    for (const j of jobs) {
      this.counts.resent++
      this.dispatch(j, new Set([w.id]))
    }
  }

  /** The sweep: silent workers are dead; jobs unanswered too long go elsewhere. */
  private check(): void {
    const now = performance.now()
    for (const w of this.remotes.values()) {
      if (!w.dead && now - w.seenAt > WORKER_DEAD_MS) this.kill(w, `no heartbeat for ${Math.round(now - w.seenAt)} ms`)
      for (const j of [...w.inFlight.values()]) {
        if (now - j.sentAt <= JOB_TIMEOUT_MS) continue
        w.inFlight.delete(j.jobId)
        this.counts.resent++
        this.limiter.warn(`timeout:${w.id}`, { workerId: w.id, jobId: j.jobId }, `a job unanswered for ${JOB_TIMEOUT_MS} ms goes to another worker`)
        this.dispatch(j, new Set([w.id]))
      }
    }
  }
}
