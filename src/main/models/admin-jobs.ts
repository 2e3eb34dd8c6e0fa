/** The admin worker's jobs (off-thread.ts) and its messages. */
import type { SampleSet } from '../runtime/files.js'
import type { DraftArgs, DraftResult } from './draft.js'
import type { ImageDirArgs } from './image-dir.js'
import type { AddExitsOptions, AddExitsReport } from './reports.js'

export interface AdminJobs {
  'import-draft': { args: DraftArgs; result: DraftResult }
  'image-dir': { args: ImageDirArgs; result: SampleSet }
  /** Cancelled cooperatively (a `cancel` message): it stops at its next frame or epoch and releases onnxruntime itself. */
  'exits-add': { args: Omit<AddExitsOptions, 'signal'>; result: AddExitsReport }
}

/** What the parent may send a running job. */
export type AdminCommand = { type: 'cancel' }

export interface SerializedError {
  kind: 'user' | 'field' | 'too-large' | 'internal'
  message: string
  template?: string
}

export type AdminMessage =
  | { type: 'progress'; done: number; total: number; what: string }
  | { type: 'done'; result: unknown }
  | { type: 'error'; error: SerializedError }
