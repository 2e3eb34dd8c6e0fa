/** Messages between the executor (any thread) and its ORT worker thread. */
import type { TimingRegime } from '../../shared/contracts/agent-api.js'
import type { Manifest } from '../../shared/contracts/manifest.js'
import type { SegmentRef } from './segments.js'
import type { SessionOptions } from './ort.js'

export type WorkerRequest =
  | { id: number; op: 'open'; modelId: string; onnxPath: string; manifest: Manifest; expectedSha256?: string }
  | { id: number; op: 'run'; modelId: string; segment: SegmentRef; input: Float32Array; dims?: number[] }
  | { id: number; op: 'chain'; modelId: string; segment: SegmentRef; input: Float32Array }
  | { id: number; op: 'close'; modelId: string }
  | { id: number; op: 'shutdown' }
  | { id: number; op: 'time'; models: { bytes: Uint8Array; inputDims: number[] }[]; reps: number; regime?: TimingRegime }
  | { id: number; op: 'probe'; bytes: Uint8Array; label: string; input: Float32Array; inputDims: number[] }

export type WorkerResponse = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: { message: string; user: boolean } }

export interface WorkerInit {
  session: SessionOptions
  /** Sessions kept open at once (least recently used are released first). */
  maxSessions: number
  /**
   * Bytes of sliced models whose sessions are kept open at once (a session holds its weights: 64
   * slices of a 346 MB ViT would hold gigabytes); the newest session is always kept.
   */
  maxSessionBytes: number
}

export interface RunResult {
  output: Float32Array
  dims: number[]
  /** Time of `session.run` for this segment, measured in the worker, milliseconds. */
  ms: number
}

export interface TimeResult {
  /** Session creation from the model bytes (model loading), ms. */
  loadMs: number
  /** Each timed run after the warm-up, in order, ms. */
  runMs: number[]
}

export interface ChainResult {
  output: Float32Array
  dims: number[]
  /** Per layer: `session.run` of its single-layer slice, milliseconds. */
  layerMs: number[]
  layers: string[]
}
