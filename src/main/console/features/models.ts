/**
 * The models this console serves: the default one (the console's `--model`, or the one `model use`
 * made the default), and those assigned to devices (`model use <id> --agent <id>`), each opened in
 * the edge runtime with its sample input and its package (the files an agent must hold, with their
 * SHA-256). Models are loaded when assigned and at start, so everything after is synchronous.
 */
import { createHash } from 'node:crypto'
import { openSync, readSync, closeSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { UserError, errorMessage } from '../../../shared/errors.js'
import type { Manifest } from '../../../shared/contracts/manifest.js'
import { MAX_CHUNK_BYTES, type ModelPackage } from '../../../shared/contracts/model-transfer.js'
import { libraryDir, removeStaleImports, resolveModel } from '../../models/library.js'
import type { OrtExecutor } from '../../runtime/executor.js'
import { loadManifest, readModelSamples } from '../../runtime/files.js'
import type { Store } from '../../store/store.js'

export interface ServedModel {
  id: string
  dir: string
  manifest: Manifest
  /** One sample's raw pixels: the input per-layer timing runs on. */
  samplePixels: Uint8Array
  /** What an agent must hold to run it. */
  package: ModelPackage
}

export interface ModelsDeps {
  /** The console's own model (`--model`): the default unless `model use` chose another. */
  modelDir: string
  dataDir: string
  executor: OrtExecutor
  store: Store
  log: Logger
}

const DEFAULT_MODEL_KEY = 'default_model'

function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

export class Models {
  private readonly loaded = new Map<string, ServedModel>()
  private baseId = ''
  private defaultId = ''

  constructor(private readonly deps: ModelsDeps) {}

  /** Loads the console's model, the stored default and every device's assigned model (a missing one is warned about and not used). */
  async start(): Promise<void> {
    const stale = removeStaleImports(libraryDir(this.deps.dataDir))
    if (stale) this.deps.log.info({ removed: stale }, `removed ${stale} half-written import folder(s) left by an import that was killed`)
    const base = await this.open(this.deps.modelDir)
    this.baseId = base.id
    this.defaultId = base.id
    const stored = this.deps.store.settings.get<string>(DEFAULT_MODEL_KEY)
    const wanted = new Set([...(stored ? [stored] : []), ...this.deps.store.devices.list().flatMap((d) => (d.model_id && !d.revoked_at ? [d.model_id] : []))])
    for (const id of wanted) {
      try {
        await this.load(id)
      } catch (err) {
        this.deps.log.warn({ model: id, err: errorMessage(err) }, `model ${id} is assigned but cannot be loaded: ${base.id} is used instead`)
      }
    }
    if (stored && this.loaded.has(stored)) this.defaultId = stored
  }

  /** The default model: what a device without an assignment is planned and served with. */
  get default(): ServedModel {
    const m = this.loaded.get(this.defaultId)
    if (!m) throw new Error('the served model is not loaded yet')
    return m
  }

  /** Forgets the loaded models (the edge runtime, stopped after, closes their sessions). */
  stop(): void {
    this.loaded.clear()
  }

  /** A loaded model by id (plans name only loaded models). */
  get(id: string): ServedModel {
    const m = this.loaded.get(id)
    if (!m) throw new UserError(`model "${id}" is not served by this console`)
    return m
  }

  has(id: string): boolean {
    return this.loaded.has(id)
  }

  /** The model a device is planned and served with: its assignment, else the default. */
  forDevice(agentId: string): ServedModel {
    const assigned = this.deps.store.devices.get(agentId)?.model_id
    return (assigned && this.loaded.get(assigned)) || this.default
  }

  /** Whether a device was assigned a model of its own (rather than following the default). */
  assignedTo(agentId: string): string | null {
    return this.deps.store.devices.get(agentId)?.model_id ?? null
  }

  /** Loads a library model (by id) or a model folder, once. */
  async load(ref: string): Promise<ServedModel> {
    const hit = this.loaded.get(ref)
    if (hit) return hit
    return this.open(resolveModel(ref, this.deps.dataDir))
  }

  /**
   * Assigns a model: to one device, or (agentId null) as the default of every device without its own
   * assignment. `null` model: back to the console's own model / the default.
   */
  async assign(agentId: string | null, ref: string | null): Promise<ServedModel> {
    const m = ref === null ? (agentId === null ? this.get(this.baseId) : this.default) : await this.load(ref)
    if (agentId === null) {
      this.deps.store.settings.set(DEFAULT_MODEL_KEY, ref === null ? null : m.id)
      this.defaultId = m.id
    } else {
      this.deps.store.devices.setModel(agentId, ref === null ? null : m.id)
    }
    return m
  }

  /** Every loaded model. */
  list(): ServedModel[] {
    return [...this.loaded.values()]
  }

  /**
   * Up to `length` bytes of one of a model's package files from `offset` (a fetch from an agent).
   * Only files of the package, never a path.
   */
  readChunk(id: string, file: string, offset: number, length: number): { data: Uint8Array; totalBytes: number } {
    const m = this.get(id)
    const f = m.package.files.find((x) => x.name === file)
    if (!f) throw new UserError(`model ${id} has no file "${file}" (files: ${m.package.files.map((x) => x.name).join(', ')})`)
    if (offset > f.bytes) throw new UserError(`offset ${offset} is past the end of ${id}/${file} (${f.bytes} bytes)`)
    const n = Math.min(length, MAX_CHUNK_BYTES, f.bytes - offset)
    const data = new Uint8Array(n)
    const fd = openSync(join(m.dir, file), 'r')
    try {
      let got = 0
      while (got < n) {
        const r = readSync(fd, data, got, n - got, offset + got)
        if (r === 0) break
        got += r
      }
      if (got !== n) throw new UserError(`model ${id}/${file} changed on disk while being sent`)
    } finally {
      closeSync(fd)
    }
    return { data, totalBytes: f.bytes }
  }

  private async open(dir: string): Promise<ServedModel> {
    const loaded = loadManifest(dir)
    const id = loaded.manifest.id
    const hit = this.loaded.get(id)
    if (hit) {
      if (hit.dir !== loaded.dir) throw new UserError(`two models have the id "${id}": ${hit.dir} and ${loaded.dir}`)
      return hit
    }
    const open = await this.deps.executor.openModel(loaded.dir)
    const samples = readModelSamples(loaded)
    const m = loaded.manifest
    const names = [m.onnx, 'manifest.json', ...(m.samples ? [m.samples.images, m.samples.labels] : [])]
    const files = names.map((name) => {
      const path = join(loaded.dir, name)
      return { name, bytes: statSync(path).size, sha256: name === m.onnx ? open.sha256 : sha256File(path) }
    })
    const served: ServedModel = {
      id,
      dir: loaded.dir,
      manifest: m,
      samplePixels: samples.images.subarray(0, samples.imageElements),
      package: { model: id, sha256: open.sha256, files }
    }
    this.loaded.set(id, served)
    this.deps.log.info({ model: id, sha256: open.sha256.slice(0, 12), bytes: open.onnxBytes }, 'model loaded')
    return served
  }
}
