/**
 * Admin work off the thread that serves MQTT and the API: graph analysis and shape probing of an
 * import, image decoding. Each job runs in a worker thread of its own (admin-worker.ts), started for
 * it and ended with it, with a bounded JavaScript heap: a hostile file costs that worker, never the
 * broker's event loop, and a crash or an out-of-memory there is one job's error.
 */
import { Worker } from 'node:worker_threads'
import { FieldError, TooLargeError, UserError } from '../../shared/errors.js'
import type { AdminCommand, AdminJobs, AdminMessage, SerializedError } from './admin-jobs.js'
import { workerEntry } from '../runtime/worker-entry.js'

/** The JavaScript heap an admin job may use, MiB (native buffers and onnxruntime's arena aside). */
export const ADMIN_HEAP_MB = 1024

/** Jobs that stop themselves when asked (they hold onnxruntime sessions: ending them under a run can abort the process). */
const COOPERATIVE = new Set<keyof AdminJobs>(['exits-add'])
const COOPERATIVE_STOP_MS = 30_000

/** How long a worker that answered may take to end by itself before it is ended. */
const LINGER_MS = 10_000

export type Progress = (done: number, total: number, what: string) => void

export function revive(e: SerializedError): Error {
  if (e.kind === 'field') return new FieldError(e.template ?? e.message)
  if (e.kind === 'too-large') return new TooLargeError(e.message)
  if (e.kind === 'user') return new UserError(e.message)
  return new Error(e.message)
}

/** Runs one admin job in a worker of its own; rejects with the job's error (a UserError stays one). */
export function offThread<K extends keyof AdminJobs>(
  kind: K,
  args: AdminJobs[K]['args'],
  progress?: Progress,
  signal?: AbortSignal
): Promise<AdminJobs[K]['result']> {
  return new Promise((resolve, reject) => {
    const entry = workerEntry('admin-worker', import.meta.url)
    const data = { kind, args }
    const opts = { workerData: data, resourceLimits: { maxOldGenerationSizeMb: ADMIN_HEAP_MB } }
    const worker = typeof entry === 'string' ? new Worker(entry, { eval: true, ...opts }) : new Worker(entry, opts)
    let settled = false
    // After its answer the worker ends by itself (nothing keeps its loop alive): ending it from
    // here while onnxruntime still tears down can abort the process, so it is only ended when it
    // lingers, or when the job is cancelled.
    const finish = (fn: () => void, end: 'now' | 'linger' = 'linger') => {
      if (settled) return
      settled = true
      signal?.removeEventListener('abort', abort)
      fn()
      if (end === 'now') void worker.terminate()
      else setTimeout(() => void worker.terminate(), LINGER_MS).unref()
    }
    // A cooperative job is asked to stop (it releases onnxruntime itself, then answers), and ended
    // only if it has not answered after COOPERATIVE_STOP_MS; the others are ended at once.
    const abort = () => {
      if (!COOPERATIVE.has(kind)) return finish(() => reject(new UserError(`${kind}: cancelled`)), 'now')
      worker.postMessage({ type: 'cancel' } satisfies AdminCommand)
      setTimeout(() => finish(() => reject(new UserError(`${kind}: cancelled`)), 'now'), COOPERATIVE_STOP_MS).unref()
    }
    signal?.addEventListener('abort', abort, { once: true })
    worker.on('message', (m: AdminMessage) => {
      if (m.type === 'progress') progress?.(m.done, m.total, m.what)
      else if (m.type === 'done') finish(() => resolve(m.result as AdminJobs[K]['result']))
      else finish(() => reject(revive(m.error)))
    })
    worker.on('error', (err) => {
      const oom = /heap|memory/i.test(err.message)
      finish(() => reject(oom ? new TooLargeError(`${kind}: ran out of its ${ADMIN_HEAP_MB} MiB heap (${err.message})`) : err))
    })
    worker.on('exit', (code) => finish(() => reject(new Error(`${kind}: worker exited (code ${code}) before answering`))))
  })
}
