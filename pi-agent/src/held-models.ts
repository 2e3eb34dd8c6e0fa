/**
 * The models an agent holds: its own (--model-dir) and those fetched into its cache, each opened in
 * its ORT executor. A model it does not hold is fetched from the console (ModelCache: checked chunk
 * by chunk and whole, written atomically), then opened — which checks the ONNX file's SHA-256.
 */
import type { Logger } from 'pino'
import type { CommandReply } from '../../src/shared/contracts/agent-api.js'
import { UserError, errorMessage } from '../../src/shared/errors.js'
import type { Manifest } from '../../src/shared/contracts/manifest.js'
import type { OrtExecutor } from '../../src/main/runtime/executor.js'
import { loadManifest, readModelSamples, type SampleSet } from '../../src/main/runtime/files.js'
import { ModelCache } from './model-cache.js'

export interface HeldModel {
  manifest: Manifest
  dir: string
  sha256: string
  onnxBytes: number
  samples: SampleSet
}

export interface HeldModelsOptions {
  executor: OrtExecutor
  modelDir: string
  /** Where models fetched from the console are kept (one folder per model and checksum). */
  cacheDir: string
  /** ms to wait for a model chunk before asking again. */
  fetchTimeoutMs?: number
  log: Logger
  /** Sends a fetch request to the console. */
  publishFetch(payload: Uint8Array): void
  /** Says (in the hello) which models are held, after a new one is. */
  announce(): void
}

export class HeldModels {
  private readonly held = new Map<string, HeldModel>()
  private readonly loading = new Map<string, Promise<CommandReply<'load-model'>>>()
  private own!: HeldModel
  private cache!: ModelCache

  constructor(private readonly o: HeldModelsOptions) {}

  /** Opens its own model and every complete one in the cache (a cached model that does not load is removed). */
  async start(): Promise<void> {
    this.own = await this.open(this.o.modelDir)
    this.cache = new ModelCache({
      dir: this.o.cacheDir,
      log: this.o.log,
      publishFetch: (payload) => this.o.publishFetch(payload),
      ...(this.o.fetchTimeoutMs ? { timeoutMs: this.o.fetchTimeoutMs } : {})
    })
    for (const dir of this.cache.complete()) {
      try {
        await this.open(dir)
      } catch (err) {
        this.o.log.warn({ dir, err: errorMessage(err) }, 'cached model does not load: removed (it is fetched again when needed)')
        this.cache.remove(dir)
      }
    }
  }

  stop(): void {
    this.cache?.stop()
  }

  /** Its own model. */
  get ownModel(): HeldModel {
    return this.own
  }

  /** The models held (id, ONNX SHA-256 and size). */
  list(): { id: string; sha256: string; onnxBytes: number }[] {
    return [...this.held.values()].map((h) => ({ id: h.manifest.id, sha256: h.sha256, onnxBytes: h.onnxBytes }))
  }

  /** A held model by id (and checksum, when given). */
  holding(model: string, sha256?: string): HeldModel | null {
    const h = this.held.get(model)
    return h && (!sha256 || h.sha256 === sha256) ? h : null
  }

  /** A held model, else a UserError saying which are held and how far a fetch of it got. */
  get(name: string): HeldModel {
    const h = this.held.get(name)
    if (!h) {
      const fetching = this.cache.progress(name)
      throw new UserError(
        `model ${name} is not held by this agent${fetching ? ` (being fetched: ${fetching.bytes} of ${fetching.totalBytes} bytes)` : ''} (it holds ${[...this.held.keys()].join(', ')})`
      )
    }
    return h
  }

  /** How far a model's fetch got, while it runs. */
  progress(model: string): { bytes: number; totalBytes: number } | null {
    return this.cache.progress(model) ?? null
  }

  /** A chunk from the console, for the fetch that asked for it. */
  onChunk(payload: Buffer): void {
    this.cache.onChunk(payload)
  }

  /** After a reconnect: fetches cut by the dropped connection ask again. */
  reconnected(): void {
    this.cache.reconnected()
  }

  /**
   * Holds a model: already (its own, or cached), or fetched from the console now, then opened.
   * Concurrent calls for one model share one fetch.
   */
  async load(model: string, sha256: string): Promise<CommandReply<'load-model'>> {
    const t0 = performance.now()
    const h = this.holding(model, sha256)
    if (h) return { model, sha256, source: h === this.own ? 'local' : 'cache', fetchedBytes: 0, resumedBytes: 0, refusedChunks: 0, ms: 0 }
    const key = `${model}@${sha256}`
    let p = this.loading.get(key)
    if (!p) {
      p = (async () => {
        const got = await this.cache.fetch(model, sha256)
        const opened = await this.open(got.dir)
        if (opened.sha256 !== sha256) throw new UserError(`model ${model}: fetched ONNX file has SHA-256 ${opened.sha256}, the console named ${sha256}`)
        this.o.log.info({ model, sha256: sha256.slice(0, 12), ...got.stats }, 'model fetched and loaded')
        this.o.announce()
        return { model, sha256, source: 'fetched' as const, ...got.stats, ms: performance.now() - t0 }
      })()
      this.loading.set(key, p)
      p.finally(() => this.loading.delete(key)).catch(() => undefined)
    }
    return p
  }

  /** Opens a model folder in the runtime and holds it. */
  private async open(dir: string): Promise<HeldModel> {
    const loaded = loadManifest(dir)
    const open = await this.o.executor.openModel(loaded.dir)
    const h: HeldModel = { manifest: loaded.manifest, dir: loaded.dir, sha256: open.sha256, onnxBytes: open.onnxBytes, samples: readModelSamples(loaded) }
    this.held.set(h.manifest.id, h)
    return h
  }
}
