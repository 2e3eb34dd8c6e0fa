/**
 * The admin worker (off-thread.ts): runs the one job it was started for and posts its result, its
 * progress on the way, or its error with its kind (a UserError stays one across the thread).
 */
import { parentPort, workerData } from 'node:worker_threads'
import { FieldError, TooLargeError, UserError, errorMessage } from '../../shared/errors.js'
import { draftImport } from './draft.js'
import { decodeImageDir } from './image-dir.js'
import { addExits } from './exits.js'
import { withExecutor } from './verify.js'
import type { AdminCommand, AdminJobs, AdminMessage, SerializedError } from './admin-jobs.js'

const post = (m: AdminMessage, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(m, transfer)
const progress = (done: number, total: number, what: string) => post({ type: 'progress', done, total, what })

function serialize(err: unknown): SerializedError {
  if (err instanceof FieldError) return { kind: 'field', message: err.message, template: err.template }
  if (err instanceof TooLargeError) return { kind: 'too-large', message: err.message }
  if (err instanceof UserError) return { kind: 'user', message: err.message }
  return { kind: 'internal', message: errorMessage(err) }
}

async function run(): Promise<void> {
  const job = workerData as { [K in keyof AdminJobs]: { kind: K; args: AdminJobs[K]['args'] } }[keyof AdminJobs]
  try {
    if (job.kind === 'import-draft') post({ type: 'done', result: await draftImport(job.args) })
    else if (job.kind === 'exits-add') {
      const cancel = new AbortController()
      const listen = (m: AdminCommand) => m.type === 'cancel' && cancel.abort()
      parentPort!.on('message', listen)
      try {
        const args = job.args
        post({ type: 'done', result: await withExecutor(undefined, (ex) => addExits({ ...args, signal: cancel.signal }, ex, progress)) })
      } finally {
        parentPort!.off('message', listen) // nothing then keeps the thread alive: it ends by itself
      }
    } else {
      const set = await decodeImageDir(job.args, progress)
      post({ type: 'done', result: set }, [set.images.buffer as ArrayBuffer, set.labels.buffer as ArrayBuffer])
    }
  } catch (err) {
    post({ type: 'error', error: serialize(err) })
  }
}

void run()
