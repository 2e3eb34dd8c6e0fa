/**
 * What the model library's long work reports (import, exits added): plain data, shared by the
 * modules that do the work and the admin worker that carries it across a thread.
 */
import type { Manifest } from '../../shared/contracts/manifest.js'

export interface ImportReport {
  id: string
  dir: string
  manifest: Manifest
  notes: string[]
  /** The cut points of every exit (tensor names, input first). */
  cuts: { exit: number; tensors: string[] }[]
}

export interface AddExitsOptions {
  /** The source model's folder or manifest (resolved by the caller). */
  model: string
  dataDir: string
  /** The labelled training frames (idx), in the model's input size. */
  images: string
  labels: string
  /** Held-out labelled frames for every exit's accuracy; without them the last fifth of the training set is held out. */
  testImages?: string
  testLabels?: string
  /** Exit points: ids of layers on the final exit's path (an exit after each); default: proposed. */
  at?: string[]
  /** How many exits to propose (default 3). */
  count?: number
  /** Also measure every exit × cut × lossy codec's accuracy on (up to `codecSamples`, default 500) held-out frames, stored in the manifest. */
  codecs?: boolean
  codecSamples?: number
  /** The new model's id (default `<source>-exits`). */
  id?: string
  /** Training passes over the frames (default 30). */
  epochs?: number
  seed?: number
  signal?: AbortSignal
}

export interface AddedExit {
  /** The layer the exit follows, its cut (deviceLayers on the final exit's path) and share of its compute. */
  after: string
  cut: number
  computeShare: number
  featureShape: number[]
  pool: { kernel: number; stride: number; grid: [number, number] }
  features: number
  trainAccuracy: number
  output: string
}

export interface AddExitsReport {
  import: ImportReport
  source: string
  added: AddedExit[]
  trainSamples: number
  heldOut: { samples: number; source: string }
  /** The appended heads as onnxruntime runs them against the heads as trained, on held-out frames: the largest score difference. */
  check: { frames: number; maxAbsDiff: number }
  /** With `codecs`: every exit × cut × lossy codec's accuracy, as `model verify --codecs` stores it. */
  codecAccuracy?: NonNullable<Manifest['codecAccuracy']>
  seconds: number
}
