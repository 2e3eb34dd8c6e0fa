/**
 * Long work on the model library started from the console (the Models page, the API): adding early
 * exits to a model. Each job runs in an admin worker of its own (models/off-thread.ts) with a private
 * onnxruntime executor, so neither the broker's thread nor the edge pool that serves devices does
 * its work; its progress is kept for `modelJobs`, and a cancel asks it to stop at its next frame or
 * epoch. The uploads it reads are held until it ends, then removed.
 */
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { ArgsOf, ModelJobView } from '../../../shared/contracts/console-api.js'
import { UserError, errorMessage } from '../../../shared/errors.js'
import { resolveModel } from '../../models/library.js'
import { offThread } from '../../models/off-thread.js'
import type { Uploads } from '../api/uploads.js'

/** Jobs kept for `modelJobs` (the oldest finished ones go first). */
const KEPT = 20
/** Jobs at once: each holds a worker, an onnxruntime session set and its frames. */
const AT_ONCE = 1

export interface ModelJobsDeps {
  dataDir: string
  uploads: Uploads
  log: Logger
  /** Told when a job has added a model to the library. */
  onModel: (id: string) => void
}

export class ModelJobs {
  private readonly jobs = new Map<string, { view: ModelJobView; cancel: AbortController; done: Promise<void> }>()

  constructor(private readonly deps: ModelJobsDeps) {}

  list(): ModelJobView[] {
    return [...this.jobs.values()].map((j) => ({ ...j.view })).reverse()
  }

  get(id: string): ModelJobView {
    const j = this.jobs.get(id)
    if (!j) throw new UserError(`unknown model job "${id}"`)
    return { ...j.view }
  }

  /** Starts adding exits; refused when a job is running. */
  exitsAdd(a: ArgsOf<'modelExitsAdd'>): ModelJobView {
    const running = [...this.jobs.values()].filter((j) => j.view.state === 'running')
    if (running.length >= AT_ONCE) throw new UserError(`a model job is running (${running[0]!.view.id}): wait for it or cancel it`)
    if ((a.testImages === undefined) !== (a.testLabels === undefined)) throw new UserError('modelExitsAdd: testImages and testLabels go together')
    const { uploads, dataDir } = this.deps
    const ids = [a.images, a.labels, a.testImages, a.testLabels].filter((u): u is string => !!u)
    const model = resolveModel(a.model, dataDir)
    const paths = ids.map((u) => uploads.path(u)) // an unknown or expired upload is refused here, by name
    const release = uploads.hold(ids)
    const view: ModelJobView = {
      id: randomUUID().slice(0, 12),
      kind: 'exits-add',
      model: a.model,
      newModel: a.id ?? `${a.model}-exits`,
      state: 'running',
      startedAt: Date.now(),
      endedAt: null,
      progress: null,
      error: null,
      result: null
    }
    const cancel = new AbortController()
    const [images, labels, testImages, testLabels] = [paths[0]!, paths[1]!, a.testImages ? paths[2] : undefined, a.testLabels ? paths[3] : undefined]
    const done = offThread(
      'exits-add',
      {
        model,
        dataDir,
        images,
        labels,
        ...(testImages && testLabels ? { testImages, testLabels } : {}),
        ...(a.at ? { at: a.at } : {}),
        ...(a.count !== undefined ? { count: a.count } : {}),
        id: view.newModel,
        ...(a.epochs !== undefined ? { epochs: a.epochs } : {}),
        ...(a.seed !== undefined ? { seed: a.seed } : {}),
        ...(a.codecs ? { codecs: true } : {})
      },
      (d, t, what) => {
        view.progress = { done: d, total: t, what }
      },
      cancel.signal
    ).then(
      (r) => {
        const byOutput = new Map(r.added.map((x) => [x.output, x]))
        view.result = {
          id: r.import.id,
          trainFrames: r.trainSamples,
          heldOutFrames: r.heldOut.samples,
          seconds: r.seconds,
          exits: r.import.manifest.exits.map((e) => ({
            exit: e.exit,
            after: byOutput.get(e.output)?.after ?? null,
            accuracy: e.accuracy,
            trainAccuracy: byOutput.get(e.output)?.trainAccuracy ?? null
          }))
        }
        view.state = 'done'
        this.deps.log.info({ job: view.id, model: r.import.id, seconds: r.seconds }, 'exits added')
        this.deps.onModel(r.import.id)
      },
      (err: unknown) => {
        view.state = cancel.signal.aborted ? 'cancelled' : 'failed'
        view.error = errorMessage(err)
        this.deps.log.info({ job: view.id, state: view.state, error: view.error }, 'model job ended')
      }
    )
    const settled = done.finally(() => {
      view.endedAt = Date.now()
      release()
      for (const u of ids) uploads.remove(u)
    })
    this.jobs.set(view.id, { view, cancel, done: settled })
    for (const [id, j] of this.jobs) if (this.jobs.size > KEPT && j.view.state !== 'running') this.jobs.delete(id)
    return { ...view }
  }

  cancel(id: string): ModelJobView {
    const j = this.jobs.get(id)
    if (!j) throw new UserError(`unknown model job "${id}"`)
    if (j.view.state === 'running') j.cancel.abort()
    return { ...j.view }
  }

  /** Cancels what runs and waits for it (the console's stop). */
  async stop(): Promise<void> {
    for (const j of this.jobs.values()) if (j.view.state === 'running') j.cancel.abort()
    await Promise.all([...this.jobs.values()].map((j) => j.done))
  }
}
