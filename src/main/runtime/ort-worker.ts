/**
 * The ORT worker thread: opens models, slices segments on demand, caches their sessions (LRU) and
 * runs them, timing each `session.run`. Nothing here blocks the thread that serves the broker or UI.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parentPort, workerData } from 'node:worker_threads'
import type { TimingRegime } from '../../shared/contracts/agent-api.js'
import { UserError, errorMessage } from '../../shared/errors.js'
import type { Manifest } from '../../shared/contracts/manifest.js'
import { checkGraphAgainstManifest, parseOnnx, sliceModel, type ModelProto } from '../../shared/onnx/onnx-slicer.js'
import { OrtSession, probeOutputs } from './ort.js'
import type { ChainResult, RunResult, TimeResult, WorkerInit, WorkerRequest, WorkerResponse } from './protocol.js'
import { segmentBounds, type SegmentRef } from './segments.js'

const init = workerData as WorkerInit
const models = new Map<string, { manifest: Manifest; proto: ModelProto; file: string }>()
const sessions = new Map<string, Promise<OrtSession>>()
/** The sliced model's size of every cached session, and their sum (the byte bound, WorkerInit.maxSessionBytes). */
const sessionBytes = new Map<string, number>()
let openBytes = 0

function forget(key: string): void {
  openBytes -= sessionBytes.get(key) ?? 0
  sessionBytes.delete(key)
  sessions.delete(key)
}
/** Sessions with a run under way (how many), and those evicted or closed meanwhile: released when their last run ends. */
const busy = new Map<OrtSession, number>()
const retired = new Set<OrtSession>()
/** Requests being handled: a shutdown waits for them (a session is never released under a run). */
let inFlight = 0

/** Releases a session once no run uses it (releasing under a run can abort the whole process). */
function retire(p: Promise<OrtSession>): Promise<void> {
  return p.then(
    (x) => {
      if (busy.has(x)) retired.add(x)
      else return x.release().catch(() => undefined)
    },
    () => undefined
  )
}

async function open(modelId: string, onnxPath: string, manifest: Manifest, expectedSha256?: string): Promise<{ onnxBytes: number; sha256: string }> {
  const file = basename(onnxPath)
  let bytes: Buffer
  try {
    bytes = readFileSync(onnxPath)
  } catch (err) {
    throw new UserError(`model ${modelId}: cannot read ${onnxPath} (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex')
  if (expectedSha256 && sha256 !== expectedSha256) {
    throw new UserError(
      `model ${modelId}: ${file} does not match the manifest's sha256 (file ${sha256.slice(0, 12)}…, manifest ${expectedSha256.slice(0, 12)}…): truncated or replaced`
    )
  }
  const proto = parseOnnx(bytes, file)
  checkGraphAgainstManifest(proto, manifest, file)
  await close(modelId)
  models.set(modelId, { manifest, proto, file })
  return { onnxBytes: bytes.length, sha256 }
}

async function close(modelId: string): Promise<void> {
  models.delete(modelId)
  for (const [key, s] of sessions) {
    if (key.startsWith(`${modelId}\u0000`)) {
      forget(key)
      await retire(s)
    }
  }
}

function session(modelId: string, segment: SegmentRef): Promise<OrtSession> {
  const model = models.get(modelId)
  if (!model) throw new UserError(`model ${modelId} is not open in the executor`)
  const b = segmentBounds(model.manifest, segment)
  // Keyed by boundary tensors: exits share their trunk, so equal prefixes share one session.
  const key = `${modelId}\u0000${b.input.name}\u0000${b.output.name}`
  let s = sessions.get(key)
  if (s) {
    sessions.delete(key) // re-insert: most recently used last
    sessions.set(key, s)
    return s
  }
  const label = `${model.file} [${b.layers[0]}..${b.layers[b.layers.length - 1]}]`
  const bytes = sliceModel(model.proto, b.input, b.output)
  s = OrtSession.open(bytes, label, b.input.dims, init.session)
  sessions.set(key, s)
  sessionBytes.set(key, bytes.length)
  openBytes += bytes.length
  const opened = s
  s.catch(() => {
    if (sessions.get(key) === opened) forget(key)
  })
  while (sessions.size > 1 && (sessions.size > init.maxSessions || openBytes > init.maxSessionBytes)) {
    const [oldKey, old] = sessions.entries().next().value as [string, Promise<OrtSession>]
    forget(oldKey)
    void retire(old)
  }
  return s
}

async function run(modelId: string, segment: SegmentRef, input: Float32Array, dims?: number[]): Promise<RunResult> {
  const s = await session(modelId, segment)
  busy.set(s, (busy.get(s) ?? 0) + 1)
  const t0 = performance.now()
  let out: Awaited<ReturnType<OrtSession['run']>>
  try {
    out = await s.run(input, dims)
  } finally {
    const left = busy.get(s)! - 1
    if (left) busy.set(s, left)
    else {
      busy.delete(s)
      if (retired.delete(s)) void s.release().catch(() => undefined)
    }
  }
  const ms = performance.now() - t0
  // Transferred to the caller's thread: as it is when the tensor owns its whole buffer, else a copy that does.
  const d = out.data
  const owned = d.byteOffset === 0 && d.buffer instanceof ArrayBuffer && d.byteLength === d.buffer.byteLength
  return { output: owned ? d : d.slice(), dims: out.dims, ms }
}

async function chain(modelId: string, segment: SegmentRef, input: Float32Array): Promise<ChainResult> {
  const model = models.get(modelId)
  if (!model) throw new UserError(`model ${modelId} is not open in the executor`)
  const layers = segmentBounds(model.manifest, segment).layers
  const layerMs: number[] = []
  let x = input
  let dims: number[] = []
  for (let j = segment.from; j < segment.to; j++) {
    const r = await run(modelId, { exit: segment.exit, from: j, to: j + 1 }, x)
    const expected = model.manifest.layers.find((l) => l.id === layers[j - segment.from])!.outputShape
    if (r.dims.length !== expected.length || r.dims.some((d, i) => d !== expected[i])) {
      throw new UserError(`${model.file}: layer "${layers[j - segment.from]}" outputs [${r.dims.join(', ')}] but the manifest says [${expected.join(', ')}]`)
    }
    layerMs.push(r.ms)
    x = r.output
    dims = r.dims
  }
  return { output: x, dims, layerMs, layers }
}

/**
 * Times standalone models one after another: for each, a fresh session (its creation is `loadMs`),
 * a warm-up (≥ 3 runs and ≥ 5 ms: the first runs after a new session are several times slower),
 * then `reps` runs back to back (warm
 * caches, as the paper's per-layer benchmarks) — or, in the `cold` regime, each run after the
 * caches were flushed (coldCaches) and the thread idled COLD_IDLE_MS, as a plan's segment runs once
 * per inference in co-inference. A layers campaign calls this in several passes over its grid (see
 * the campaign runner), which is what makes it robust to this machine's noise.
 */
async function time(models: { bytes: Uint8Array; inputDims: number[] }[], reps: number, regime: TimingRegime = 'warm'): Promise<TimeResult[]> {
  const out: TimeResult[] = []
  for (const m of models) {
    const x = new Float32Array(m.inputDims.reduce((a, b) => a * b, 1)).fill(0.5)
    const t0 = performance.now()
    const s = await OrtSession.open(m.bytes, 'synthetic layer', m.inputDims, init.session)
    const loadMs = performance.now() - t0
    try {
      const warm = performance.now()
      for (let r = 0; r < 3 || performance.now() - warm < 5; r++) await s.run(x)
      const runMs: number[] = []
      for (let r = 0; r < reps; r++) {
        if (regime === 'cold') {
          coldCaches()
          await sleep(COLD_IDLE_MS)
        }
        const t = performance.now()
        await s.run(x)
        runMs.push(performance.now() - t)
      }
      out.push({ loadMs, runMs })
    } finally {
      await s.release()
    }
  }
  return out
}

/** The idle before each cold run, ms: the other side's work and the messaging between two of a worker's runs in co-inference. */
const COLD_IDLE_MS = 2
let flushBuffer: Float64Array | null = null

/** This machine's largest CPU cache, bytes (Linux sysfs; 8 MiB when it does not say). */
function largestCacheBytes(): number {
  let best = 0
  for (let i = 0; i < 8; i++) {
    try {
      const text = readFileSync(`/sys/devices/system/cpu/cpu0/cache/index${i}/size`, 'utf8').trim()
      const m = /^(\d+)([KMG]?)$/.exec(text)
      if (m) best = Math.max(best, Number(m[1]) * ({ '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 } as Record<string, number>)[m[2]!]!)
    } catch {
      break
    }
  }
  return best || 8 * 1024 ** 2
}

/** Evicts the caches: writes one word per 64-byte line over twice the largest cache (at most 128 MiB). */
function coldCaches(): void {
  flushBuffer ??= new Float64Array(Math.min(2 * largestCacheBytes(), 128 * 1024 ** 2) / 8)
  for (let i = 0; i < flushBuffer.length; i += 8) flushBuffer[i]! += 1
}

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case 'open':
      return open(req.modelId, req.onnxPath, req.manifest, req.expectedSha256)
    case 'run':
      return run(req.modelId, req.segment, req.input, req.dims)
    case 'chain':
      return chain(req.modelId, req.segment, req.input)
    case 'close':
      return close(req.modelId)
    case 'time':
      return time(req.models, req.reps, req.regime)
    case 'probe':
      return probeOutputs(req.bytes, req.label, req.input, req.inputDims)
    case 'shutdown':
      return shutdown()
  }
}

/** Waits for the requests under way, then releases every session: the thread can then end cleanly. */
async function shutdown(): Promise<void> {
  while (inFlight > 1) await sleep(5)
  const all = [...sessions.values()]
  sessions.clear()
  sessionBytes.clear()
  openBytes = 0
  models.clear()
  await Promise.all(all.map(retire))
}

parentPort!.on('message', (req: WorkerRequest) => {
  inFlight++
  handle(req)
    .finally(() => inFlight--)
    .then(
      (result) => {
        const output = result && typeof result === 'object' ? (result as Partial<RunResult>).output : undefined
        if (!(output instanceof Float32Array)) return parentPort!.postMessage({ id: req.id, ok: true, result } satisfies WorkerResponse)
        try {
          parentPort!.postMessage({ id: req.id, ok: true, result } satisfies WorkerResponse, [output.buffer as ArrayBuffer])
        } catch {
          // a buffer the runtime will not let go (not detachable): sent as a copy instead
          const copy = output.slice()
          parentPort!.postMessage({ id: req.id, ok: true, result: { ...(result as RunResult), output: copy } } satisfies WorkerResponse, [copy.buffer])
        }
      },
      (err: unknown) => {
        const user = err instanceof UserError
        parentPort!.postMessage({ id: req.id, ok: false, error: { message: errorMessage(err), user } } satisfies WorkerResponse)
      }
    )
})
