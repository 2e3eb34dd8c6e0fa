/**
 * The executor: runs model segments on onnxruntime-node in a worker thread (lifecycle module with
 * start()/stop()). A plan's device prefix and edge suffix run as fused segments (one session each;
 * ORT fuses Conv+Relu inside a segment), sessions are cached, and every run is timed in the worker.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { UserError } from '../../shared/errors.js'
import { exitPath, type Manifest } from '../../shared/manifest.js'
import { loadManifest } from './files.js'
import type { ProbedShape } from '../../shared/model-import.js'
import type { SessionOptions } from './ort.js'
import type { ChainResult, RunResult, TimeResult, WorkerInit, WorkerRequest, WorkerResponse } from './protocol.js'
import type { SegmentRef } from './segments.js'
import type { TimingRegime } from '../../shared/agent-api.js'

export interface ExecutorOptions extends SessionOptions {
  maxSessions?: number
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

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void }

/** Where the worker's code is: beside this file when built (out/main), or the .ts source under tsx/vitest. */
function workerEntry(): URL | string {
  if (import.meta.url.endsWith('.ts')) {
    // Running from source (vitest, tsx): the worker registers tsx's loader, then imports the .ts file.
    const src = new URL('./ort-worker.ts', import.meta.url).href
    return `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(src)}) })`
  }
  // Built: out/main/ort-worker.js, beside the entry or one level above a shared chunk.
  for (const rel of ['./ort-worker.js', '../ort-worker.js']) {
    const built = new URL(rel, import.meta.url)
    if (existsSync(built)) return built
  }
  throw new Error(`ORT worker (ort-worker.js) not found near ${import.meta.url}`)
}

export class OrtExecutor {
  private worker: Worker | null = null
  private nextId = 1
  private readonly pending = new Map<number, Pending>()
  private readonly models = new Map<string, OpenModel>()

  constructor(private readonly options: ExecutorOptions = {}) {}

  async start(): Promise<void> {
    if (this.worker) return
    const entry = workerEntry()
    const init: WorkerInit = {
      session: { intraOpThreads: this.options.intraOpThreads ?? 1, optimize: this.options.optimize ?? true },
      maxSessions: this.options.maxSessions ?? 64
    }
    const worker = typeof entry === 'string' ? new Worker(entry, { eval: true, workerData: init }) : new Worker(entry, { workerData: init })
    worker.on('message', (msg: WorkerResponse) => {
      const p = this.pending.get(msg.id)
      if (!p) return
      this.pending.delete(msg.id)
      if (msg.ok) p.resolve(msg.result)
      else p.reject(msg.error.user ? new UserError(msg.error.message) : new Error(msg.error.message))
    })
    worker.on('error', (err) => this.failAll(err))
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = null
      this.failAll(new Error(`ORT worker exited (code ${code})`))
    })
    this.worker = worker
  }

  async stop(): Promise<void> {
    const w = this.worker
    this.worker = null
    this.models.clear()
    if (w) await w.terminate()
  }

  private failAll(err: Error): void {
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
  }

  private call<T>(req: WithoutId<WorkerRequest>, transfer: ArrayBuffer[] = []): Promise<T> {
    const w = this.worker
    if (!w) return Promise.reject(new Error('executor is not started'))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      w.postMessage({ ...req, id } as WorkerRequest, transfer)
    })
  }

  /** Opens a model folder (manifest.json + its ONNX file), checking the graph against the manifest. */
  async openModel(dirOrManifest: string): Promise<OpenModel> {
    const { manifest, dir } = loadManifest(dirOrManifest)
    const onnxPath = join(dir, manifest.onnx)
    const info = await this.call<{ onnxBytes: number; sha256: string }>({
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

  /** Runs layers [from, to) of an exit. The input buffer is copied, so the caller keeps it. */
  runSegment(modelId: string, segment: SegmentRef, input: Float32Array, dims?: number[]): Promise<RunResult> {
    const copy = input.slice()
    return this.call<RunResult>({ op: 'run', modelId, segment, input: copy, ...(dims ? { dims } : {}) }, [copy.buffer as ArrayBuffer])
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
    await this.call({ op: 'close', modelId })
  }
}
