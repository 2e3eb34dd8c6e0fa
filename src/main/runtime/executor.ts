/**
 * The executor: runs model segments on onnxruntime-node in a worker thread (lifecycle module with
 * start()/stop()). A plan's device prefix and edge suffix run as fused segments (one session each;
 * ORT fuses Conv+Relu inside a segment), sessions are cached, and every run is timed in the worker.
 */
import { workerEntry } from './worker-entry.js'
import { join } from 'node:path'
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { UserError } from '../../shared/errors.js'
import { exitPath, type Manifest } from '../../shared/contracts/manifest.js'
import { loadManifest } from './files.js'
import type { ProbedShape } from '../../shared/onnx/model-import.js'
import type { SessionOptions } from './ort.js'
import type { ChainResult, RunResult, TimeResult, WorkerInit, WorkerRequest, WorkerResponse } from './protocol.js'
import type { SegmentRef } from './segments.js'
import type { TimingRegime } from '../../shared/contracts/agent-api.js'

export interface ExecutorOptions extends SessionOptions {
  maxSessions?: number
  /** Model bytes whose sessions a worker keeps open (default DEFAULT_SESSION_BYTES). */
  maxSessionBytes?: number
  /**
   * ORT worker threads (each with its own session cache); runs go to a free one, queued fairly
   * across their owners when all are busy. Default 1 (an agent); the console sizes its pool to the
   * machine (edgeWorkers).
   */
  workers?: number
}

/** Sliced-model bytes a worker keeps sessions open for: 1 GiB (a big model's splits open and close as they are used). */
export const DEFAULT_SESSION_BYTES = 1024 ** 3

/** How long stop() waits for a worker to finish its runs and release its sessions before ending it anyway. */
const SHUTDOWN_WAIT_MS = 5000

/** The console's edge pool on this machine: one worker per core, at most 4 (runs use one intra-op thread each). */
export function edgeWorkers(): number {
  return Math.max(1, Math.min(4, availableParallelism()))
}

export interface OpenModel {
  manifest: Manifest
  dir: string
  onnxBytes: number
  sha256: string
}

export interface SplitRun {
  /** The exit's output (scores). */
  output: Float32Array
  /** The tensor crossing the link (the input itself for deviceLayers = 0); null when device-only. */
  activation: Float32Array | null
  deviceMs: number
  edgeMs: number
}

/** A segment run as the pool saw it. */
export interface PooledRun extends RunResult {
  /** Waiting for a free worker (behind other owners' runs), ms. */
  queuedMs: number
  /** From the hand-off to the worker until its answer, ms (the run itself included). */
  serviceMs: number
  /** The worker that ran it. */
  worker: number
  /** When it was handed to the worker (performance.now): the pool's dispatch order. */
  handedAt: number
}

/** Every run the pool finished, as it finished (the console's load monitor listens). */
export type RunObserver = (r: { owner: string; at: number; queuedMs: number; serviceMs: number; runMs: number; worker: number }) => void

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void }

interface Slot {
  index: number
  worker: Worker
  pending: Map<number, Pending>
  /** Segment runs in flight here (0 or 1: runs are handed only to a worker with none). */
  runs: number
  /** Other operations in flight here (opening, timing, probing). */
  others: number
  dead: boolean
}

interface QueuedRun {
  owner: string
  req: WithoutId<WorkerRequest>
  transfer: ArrayBuffer[]
  enqueued: number
  resolve: (r: PooledRun) => void
  reject: (e: Error) => void
}

export class OrtExecutor {
  private slots: Slot[] = []
  private nextId = 1
  private readonly models = new Map<string, OpenModel>()
  /** Runs waiting for a worker, per owner (first in, first out), served round robin across owners. */
  private readonly queues = new Map<string, QueuedRun[]>()
  private observer: RunObserver | null = null

  constructor(private readonly options: ExecutorOptions = {}) {}

  /** Worker threads in the pool. */
  get size(): number {
    return this.slots.filter((s) => !s.dead).length
  }

  /** Runs waiting for a worker now. */
  get queued(): number {
    let n = 0
    for (const q of this.queues.values()) n += q.length
    return n
  }

  /** Called with every finished run (one observer). */
  observe(fn: RunObserver | null): void {
    this.observer = fn
  }

  async start(): Promise<void> {
    if (this.slots.length) return
    const entry = workerEntry('ort-worker', import.meta.url)
    const init: WorkerInit = {
      session: { intraOpThreads: this.options.intraOpThreads ?? 1, optimize: this.options.optimize ?? true },
      maxSessions: this.options.maxSessions ?? 64,
      maxSessionBytes: this.options.maxSessionBytes ?? DEFAULT_SESSION_BYTES
    }
    const n = Math.max(1, Math.floor(this.options.workers ?? 1))
    for (let i = 0; i < n; i++) {
      const worker = typeof entry === 'string' ? new Worker(entry, { eval: true, workerData: init }) : new Worker(entry, { workerData: init })
      const slot: Slot = { index: i, worker, pending: new Map(), runs: 0, others: 0, dead: false }
      worker.on('message', (msg: WorkerResponse) => {
        const p = slot.pending.get(msg.id)
        if (!p) return
        slot.pending.delete(msg.id)
        if (msg.ok) p.resolve(msg.result)
        else p.reject(msg.error.user ? new UserError(msg.error.message) : new Error(msg.error.message))
      })
      worker.on('error', (err) => this.failSlot(slot, err))
      worker.on('exit', (code) => this.failSlot(slot, new Error(`ORT worker exited (code ${code})`)))
      this.slots.push(slot)
    }
  }

  async stop(): Promise<void> {
    const slots = this.slots
    this.slots = []
    this.models.clear()
    const stopping = new Error('executor stopped')
    for (const q of this.queues.values()) for (const r of q) r.reject(stopping)
    this.queues.clear()
    // Each worker finishes what it runs and releases its sessions before it is ended: ending a
    // thread inside a native run (or with live sessions) can abort the whole process.
    await Promise.all(
      slots.map(async (s) => {
        if (!s.dead) {
          const done = this.post(s, { op: 'shutdown' }).catch(() => undefined)
          await Promise.race([done, new Promise((r) => setTimeout(r, SHUTDOWN_WAIT_MS).unref())])
        }
        s.dead = true
        await s.worker.terminate()
      })
    )
  }

  private failSlot(slot: Slot, err: Error): void {
    slot.dead = true
    for (const p of slot.pending.values()) p.reject(err)
    slot.pending.clear()
    if (!this.slots.some((s) => !s.dead)) {
      for (const q of this.queues.values()) for (const r of q) r.reject(err)
      this.queues.clear()
    }
  }

  private post<T>(slot: Slot, req: WithoutId<WorkerRequest>, transfer: ArrayBuffer[] = []): Promise<T> {
    if (slot.dead) return Promise.reject(new Error('executor is not started'))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      slot.pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      slot.worker.postMessage({ ...req, id } as WorkerRequest, transfer)
    })
  }

  /** An operation other than a segment run: on the first live worker, beside whatever it runs. */
  private call<T>(req: WithoutId<WorkerRequest>, transfer: ArrayBuffer[] = []): Promise<T> {
    const slot = this.slots.find((s) => !s.dead)
    if (!slot) return Promise.reject(new Error('executor is not started'))
    slot.others++
    return this.post<T>(slot, req, transfer).finally(() => slot.others--)
  }

  /** The same operation on every worker (opening and closing models): the first one's answer. */
  private async everywhere<T>(req: WithoutId<WorkerRequest>): Promise<T> {
    const live = this.slots.filter((s) => !s.dead)
    if (!live.length) throw new Error('executor is not started')
    const all = await Promise.all(live.map((s) => this.post<T>(s, req)))
    return all[0]!
  }

  /** A free worker for a run: none running one, preferring one that is not timing or probing either. */
  private freeSlot(): Slot | undefined {
    let best: Slot | undefined
    for (const s of this.slots) {
      if (s.dead || s.runs > 0) continue
      if (s.others === 0) return s
      best ??= s
    }
    return best
  }

  /** Hands queued runs to free workers, one owner after another (round robin). */
  private drain(): void {
    for (let slot = this.freeSlot(); slot && this.queues.size; slot = this.freeSlot()) {
      const [owner, q] = this.queues.entries().next().value as [string, QueuedRun[]]
      const r = q.shift()!
      this.queues.delete(owner)
      if (q.length) this.queues.set(owner, q) // to the back of the round
      this.dispatch(slot, r)
    }
  }

  private dispatch(slot: Slot, r: QueuedRun): void {
    const handed = performance.now()
    slot.runs++
    this.post<RunResult>(slot, r.req, r.transfer).then(
      (res) => {
        slot.runs--
        const done = performance.now()
        const run: PooledRun = { ...res, queuedMs: handed - r.enqueued, serviceMs: done - handed, worker: slot.index, handedAt: handed }
        this.observer?.({ owner: r.owner, at: done, queuedMs: run.queuedMs, serviceMs: run.serviceMs, runMs: res.ms, worker: slot.index })
        r.resolve(run)
        this.drain()
      },
      (err: Error) => {
        slot.runs--
        r.reject(err)
        this.drain()
      }
    )
  }

  /** A segment run through the pool: now on a free worker, else queued behind other owners fairly. */
  private schedule(owner: string, req: WithoutId<WorkerRequest>, transfer: ArrayBuffer[]): Promise<PooledRun> {
    if (!this.slots.some((s) => !s.dead)) return Promise.reject(new Error('executor is not started'))
    return new Promise<PooledRun>((resolve, reject) => {
      const r: QueuedRun = { owner, req, transfer, enqueued: performance.now(), resolve, reject }
      const slot = this.queues.size ? undefined : this.freeSlot()
      if (slot) return this.dispatch(slot, r)
      const q = this.queues.get(owner)
      if (q) q.push(r)
      else this.queues.set(owner, [r])
    })
  }

  /** Opens a model folder (manifest.json + its ONNX file), checking the graph against the manifest. */
  async openModel(dirOrManifest: string): Promise<OpenModel> {
    const { manifest, dir } = loadManifest(dirOrManifest)
    const onnxPath = join(dir, manifest.onnx)
    const info = await this.everywhere<{ onnxBytes: number; sha256: string }>({
      op: 'open',
      modelId: manifest.id,
      onnxPath,
      manifest,
      ...(manifest.sha256 ? { expectedSha256: manifest.sha256 } : {})
    })
    const open = { manifest, dir, ...info }
    this.models.set(manifest.id, open)
    return open
  }

  model(id: string): OpenModel {
    const m = this.models.get(id)
    if (!m) throw new UserError(`unknown model "${id}" (open: ${[...this.models.keys()].join(', ') || 'none'})`)
    return m
  }

  /**
   * Runs layers [from, to) of an exit on a free worker (queued fairly behind other `owner`s' runs
   * when none is free). The input is copied, so the caller keeps it — unless `give`: then a tensor
   * that owns its whole buffer moves to the worker as a transferable (and is unusable here after).
   */
  runSegment(modelId: string, segment: SegmentRef, input: Float32Array, dims?: number[], o: { owner?: string; give?: boolean } = {}): Promise<PooledRun> {
    const owned = o.give && input.byteOffset === 0 && input.buffer instanceof ArrayBuffer && input.byteLength === input.buffer.byteLength
    const data = owned ? input : input.slice()
    return this.schedule(o.owner ?? '', { op: 'run', modelId, segment, input: data, ...(dims ? { dims } : {}) }, [data.buffer as ArrayBuffer])
  }

  /** Runs layers [from, to) one single-layer session at a time, timing each (per-layer profiling). */
  runChain(modelId: string, segment: SegmentRef, input: Float32Array): Promise<ChainResult> {
    const copy = input.slice()
    return this.call<ChainResult>({ op: 'chain', modelId, segment, input: copy }, [copy.buffer as ArrayBuffer])
  }

  /** A plan run in one place: the device prefix [0, p) then the edge suffix [p, N), as two fused segments. */
  async runSplit(modelId: string, exit: number, deviceLayers: number, input: Float32Array): Promise<SplitRun> {
    const n = exitPath(this.model(modelId).manifest, exit).length
    if (!Number.isInteger(deviceLayers) || deviceLayers < 0 || deviceLayers > n) {
      throw new UserError(`deviceLayers ${deviceLayers} is out of range 0..${n} for exit ${exit}`)
    }
    let x = input
    let deviceMs = 0
    let edgeMs = 0
    if (deviceLayers > 0) {
      const r = await this.runSegment(modelId, { exit, from: 0, to: deviceLayers }, x)
      x = r.output
      deviceMs = r.ms
    }
    const activation = deviceLayers < n ? x : null
    if (deviceLayers < n) {
      const r = await this.runSegment(modelId, { exit, from: deviceLayers, to: n }, x)
      x = r.output
      edgeMs = r.ms
    }
    return { output: x, activation, deviceMs, edgeMs }
  }

  /** Times a standalone model (a synthetic layer): its loading, then `reps` runs. */
  /** Times one standalone model (see timeModels). */
  async timeModel(bytes: Uint8Array, inputDims: number[], reps: number): Promise<TimeResult> {
    return (await this.timeModels([{ bytes, inputDims }], reps))[0]!
  }

  /** Times standalone models together, their repetitions interleaved (see the worker's `time`). */
  timeModels(models: { bytes: Uint8Array; inputDims: number[] }[], reps: number, regime: TimingRegime = 'warm'): Promise<TimeResult[]> {
    return this.call<TimeResult[]>({ op: 'time', models, reps, regime })
  }

  /** Every graph output's dims and type after one run of a whole model on `input` (optimisation off). */
  probeOutputs(bytes: Uint8Array, label: string, input: Float32Array, inputDims: number[]): Promise<Record<string, ProbedShape>> {
    return this.call<Record<string, ProbedShape>>({ op: 'probe', bytes, label, input, inputDims })
  }

  async closeModel(modelId: string): Promise<void> {
    this.models.delete(modelId)
    await this.everywhere({ op: 'close', modelId })
  }
}
