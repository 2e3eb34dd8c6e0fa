/**
 * The model library: the shipped models (resources/models) and the ones imported into a data
 * directory (`<data dir>/models/<id>/`: the ONNX file and its generated manifest, plus the labelled
 * samples it was measured on). Import analyses the graph (src/shared/onnx/onnx-graph.ts), runs it once in
 * onnxruntime for every tensor's shape, derives the manifest (src/shared/onnx/model-import.ts), measures
 * each exit's accuracy on the labelled set given (or records the user's figures as supplied), and
 * moves the finished folder into place: nothing half-written is ever in the library.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { TooLargeError, UserError, errorMessage, FieldError } from '../../shared/errors.js'
import { parseManifest, type Manifest } from '../../shared/contracts/manifest.js'
import { argmax, preprocess } from '../../shared/algorithms/preprocess.js'
import type { OrtExecutor } from '../runtime/executor.js'
import { loadManifest, readSampleSet, type SampleSet } from '../runtime/files.js'
import { offThread } from './off-thread.js'
import type { ImportReport } from './reports.js'
import { packageRoot } from '../runtime/paths.js'
import { safeText } from '../../shared/text.js'

/** Largest ONNX file an import accepts by default, bytes. */
export const DEFAULT_MAX_IMPORT_BYTES = 512 * 1024 * 1024
/** Labelled samples kept beside an imported model (what its agents co-infer on). */
const KEPT_SAMPLES = 2000

export interface LibraryEntry {
  id: string
  source: 'shipped' | 'imported'
  dir: string
  inputShape: number[]
  exits: { exit: number; layers: number; accuracy: number; accuracySource: 'measured' | 'supplied' }[]
  onnxBytes: number | null
  sha256: string | null
}

export const libraryDir = (dataDir: string): string => join(resolve(dataDir), 'models')
const shippedDir = (): string => join(packageRoot(), 'resources', 'models')

function entries(root: string, source: LibraryEntry['source']): LibraryEntry[] {
  if (!existsSync(root)) return []
  const out: LibraryEntry[] = []
  for (const name of readdirSync(root).sort()) {
    const dir = join(root, name)
    if (name.startsWith('.') || !existsSync(join(dir, 'manifest.json'))) continue
    const { manifest: m } = loadManifest(dir)
    out.push({
      id: m.id,
      source,
      dir,
      inputShape: [...m.input.shape],
      exits: m.exits.map((e) => ({ exit: e.exit, layers: e.layers.length, accuracy: e.accuracy, accuracySource: e.accuracySource })),
      onnxBytes: m.onnxBytes ?? null,
      sha256: m.sha256 ?? null
    })
  }
  return out
}

/** Every model: the shipped ones, then the data directory's. */
export function listModels(dataDir: string): LibraryEntry[] {
  return [...entries(shippedDir(), 'shipped'), ...entries(libraryDir(dataDir), 'imported')]
}

/** A library model's folder by id (imported or shipped), else a UserError naming the ids there are. */
export function modelDirById(id: string, dataDir: string): string {
  const all = listModels(dataDir)
  const hit = all.find((e) => e.id === id)
  if (!hit) throw new UserError(`no model "${id}" in the library (models: ${all.map((e) => e.id).join(', ') || 'none'})`)
  return hit.dir
}

/** A model by folder or manifest path, or by id in the library (imported or shipped). */
export function resolveModel(ref: string, dataDir: string): string {
  if (existsSync(ref)) return ref
  const all = listModels(dataDir)
  const hit = all.find((e) => e.id === ref)
  if (hit) return hit.dir
  throw new UserError(`no model "${ref}": not a folder or manifest, and not in the library (models: ${all.map((e) => e.id).join(', ') || 'none'})`)
}

export interface ImportModelOptions {
  file: string
  dataDir: string
  id?: string
  /** e.g. [1, 3, 224, 224]; required when the graph's input has a dynamic dimension. */
  inputShape?: number[]
  preprocess?: { scale?: number; mean?: number[]; std?: number[] }
  /** A text file, one class name per line. */
  classes?: string
  /** A labelled set in MNIST idx format: each exit's accuracy is measured on it. */
  images?: string
  labels?: string
  /** A labelled image folder (see image-dir.ts), resized to the input: each exit's accuracy is measured on it. */
  imageDir?: string
  /** A labelled set already read (e.g. the held-out frames of `model exits add`): each exit's accuracy is measured on it. */
  set?: SampleSet
  /** Each exit's accuracy in [0, 1] (in exit order), supplied by the user. */
  accuracy?: number[]
  /** How the model was trained, stored in its manifest (`training`). */
  training?: Record<string, unknown>
  maxBytes?: number
}

export type { ImportReport } from './reports.js'

/** The id a file would get: its name, lowercased, [a-z0-9-] only. */
export function idFromFileName(file: string): string {
  return basename(file)
    .replace(/\.onnx$/i, '')
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
}

function readClasses(file: string): string[] {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new FieldError(`{classes}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)})`)
  }
  return text
    .split(/\r?\n/)
    .map((l) => safeText(l.trim()))
    .filter(Boolean)
}

/**
 * Removes the half-written folders of imports whose process is gone (`.import-<id>-<pid>`: a SIGKILL
 * mid-import leaves one); those of a live process are another import at work. How many went.
 */
export function removeStaleImports(lib: string): number {
  if (!existsSync(lib)) return 0
  let removed = 0
  for (const name of readdirSync(lib)) {
    const m = /^\.import-.+-(\d+)$/.exec(name)
    if (!m || alive(Number(m[1]))) continue
    rmSync(join(lib, name), { recursive: true, force: true })
    removed++
  }
  return removed
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' // someone else's process: alive
  }
}

/** Imports an ONNX classifier into the data directory's library. */
export async function importModel(
  o: ImportModelOptions,
  ex: OrtExecutor,
  progress?: (done: number, total: number, what: string) => void,
  /** The file's name as the user knows it (an upload is stored under another). */
  displayName?: string
): Promise<ImportReport> {
  const file = resolve(o.file)
  const name = safeText(displayName ?? basename(file))
  let size: number
  try {
    const st = statSync(file)
    if (st.isDirectory()) throw new UserError(`import: ${file} is a folder, expected an .onnx file`)
    size = st.size
  } catch (err) {
    if (err instanceof UserError) throw err
    throw new UserError(`import: no such file ${file}`)
  }
  const cap = o.maxBytes ?? DEFAULT_MAX_IMPORT_BYTES
  const fmt = (n: number) => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`)
  if (size > cap) throw new TooLargeError(`import: ${name} is ${fmt(size)}, over the ${fmt(cap)} import cap (--max-mb)`)
  const id = o.id ?? idFromFileName(name)
  if (!/^[a-z0-9][a-z0-9-]*$/.test(id)) throw new FieldError(`import: model id "${id}" is not valid: use lowercase letters, digits and '-' ({id})`)
  if (listModels(o.dataDir).some((e) => e.id === id)) throw new UserError(`import: a model with id "${id}" exists already (choose another id)`)
  if ((o.images === undefined) !== (o.labels === undefined)) throw new FieldError('import: {images} and {labels} go together')
  if (o.images && o.imageDir) throw new FieldError('import: give one labelled set: {images}/{labels} or {imageDir}')
  if (!o.images && !o.imageDir && !o.set && !o.accuracy)
    throw new FieldError(
      'import: each exit needs an accuracy: give a labelled set ({images} and {labels}, or {imageDir}) to measure it, or {accuracy} a1,a2,… to supply it'
    )
  const classes = o.classes ? readClasses(o.classes) : undefined
  const lib = libraryDir(o.dataDir)
  mkdirSync(lib, { recursive: true })
  removeStaleImports(lib)
  const tmp = join(lib, `.import-${id}-${process.pid}`)
  rmSync(tmp, { recursive: true, force: true })
  mkdirSync(tmp)
  try {
    // Graph analysis and the shape probe run off this thread (it serves MQTT and the API).
    const { draft, inputShape } = await offThread('import-draft', {
      file,
      name,
      copyTo: join(tmp, 'model.onnx'),
      ...(o.inputShape ? { inputShape: o.inputShape } : {}),
      options: {
        id,
        onnx: 'model.onnx',
        preprocessing: { scale: o.preprocess?.scale ?? 1 / 255, mean: o.preprocess?.mean ?? [0], std: o.preprocess?.std ?? [1] },
        ...(classes ? { classes } : {}),
        source: name
      }
    })
    const exits = draft.manifest.exits
    if (o.accuracy && o.accuracy.length !== exits.length)
      throw new FieldError(`import: {accuracy} gives ${o.accuracy.length} values, the model has ${exits.length} exits (outputs)`)
    const set = o.set
      ? o.set
      : o.images
        ? readSampleSet(o.images, o.labels!)
        : o.imageDir
          ? await offThread('image-dir', { dir: o.imageDir, inputShape, ...(classes ? { classes } : {}) }, progress)
          : null
    if (set) {
      const [, c, h, w] = inputShape as [number, number, number, number]
      if (set.imageElements !== c * h * w) {
        throw new UserError(
          `import: the images have ${set.imageElements} pixels each, the model's input takes ${c}×${h}×${w} = ${c * h * w} (resizing is not supported: give images of the input's size)`
        )
      }
    }
    const withAccuracy = (acc: (i: number) => { accuracy: number; testSamples?: number; accuracySource: 'measured' | 'supplied' }) => ({
      ...draft.manifest,
      exits: exits.map((e, i) => ({ exit: e.exit, layers: e.layers, output: e.output, macs: e.macs, ...acc(i) })),
      ...(set ? { samples: { images: 'samples-images-idx3-ubyte', labels: 'samples-labels-idx1-ubyte', count: Math.min(set.count, KEPT_SAMPLES) } } : {}),
      ...(o.training ? { training: o.training } : {})
    })
    let doc = withAccuracy((i) => ({ accuracy: o.accuracy?.[i] ?? 0, accuracySource: 'supplied' }))
    if (set) {
      writeSamples(tmp, set, Math.min(set.count, KEPT_SAMPLES))
      const m = parseManifest(doc, `${name} (derived manifest)`)
      writeFileSync(join(tmp, 'manifest.json'), JSON.stringify(m, null, 2))
      const correct = await measureAccuracy(ex, tmp, m, set, progress)
      doc = withAccuracy((i) => ({ accuracy: correct[i]! / set.count, testSamples: set.count, accuracySource: 'measured' }))
    }
    const manifest = parseManifest(doc, `${name} (derived manifest)`)
    writeFileSync(join(tmp, 'manifest.json'), `${JSON.stringify(doc, null, 2)}\n`)
    const dir = join(lib, id)
    renameSync(tmp, dir)
    // The same file under another id is allowed (another preprocessing, another labelled set) but said.
    const twins = listModels(o.dataDir).filter((e) => e.id !== id && e.sha256 !== null && e.sha256 === manifest.sha256)
    const notes = twins.length
      ? [
          ...draft.notes,
          `the same ONNX file as library model${twins.length > 1 ? 's' : ''} ${twins.map((e) => e.id).join(', ')} (sha256 ${manifest.sha256?.slice(0, 12)}…)`
        ]
      : draft.notes
    return {
      id,
      dir,
      manifest,
      notes,
      cuts: draft.cuts.map((c) => ({ exit: exits.findIndex((e) => e.output === c.output) + 1, tensors: c.tensors })).sort((a, b) => a.exit - b.exit)
    }
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true })
    throw err
  }
}

/** Each exit's correct count on the set (whole exits, fused). */
async function measureAccuracy(
  ex: OrtExecutor,
  dir: string,
  m: Manifest,
  set: ReturnType<typeof readSampleSet>,
  progress?: (done: number, total: number, what: string) => void
): Promise<number[]> {
  await ex.openModel(dir)
  try {
    const correct = m.exits.map(() => 0)
    const total = set.count * m.exits.length
    let done = 0
    for (const [j, e] of m.exits.entries()) {
      for (let k = 0; k < set.count; k++) {
        const x = preprocess(m, set.images.subarray(k * set.imageElements, (k + 1) * set.imageElements))
        const r = await ex.runSegment(m.id, { exit: e.exit, from: 0, to: e.layers.length }, x)
        if (argmax(r.output) === set.labels[k]) correct[j]!++
        if (++done % 250 === 0 || done === total) progress?.(done, total, `accuracy, exit ${e.exit}`)
      }
    }
    return correct
  } finally {
    await ex.closeModel(m.id)
  }
}

/** The first `n` samples as idx files beside the model (what agents co-infer on). */
function writeSamples(dir: string, set: ReturnType<typeof readSampleSet>, n: number): void {
  const side = Math.round(Math.sqrt(set.imageElements))
  const square = side * side === set.imageElements
  const dims = square ? [n, side, side] : [n, set.imageElements]
  const head = Buffer.alloc(4 + 4 * dims.length)
  head[2] = 0x08
  head[3] = dims.length
  for (const [i, d] of dims.entries()) head.writeUInt32BE(d, 4 + 4 * i)
  writeFileSync(join(dir, 'samples-images-idx3-ubyte'), Buffer.concat([head, Buffer.from(set.images.subarray(0, n * set.imageElements))]))
  const lh = Buffer.alloc(8)
  lh[3] = 1
  lh.writeUInt32BE(n, 4)
  const labels = set.labels.subarray(0, n)
  let body: Buffer
  if (labels.every((l) => l >= 0 && l < 256)) {
    lh[2] = 0x08
    body = Buffer.from(Uint8Array.from(labels))
  } else {
    lh[2] = 0x0c // int32, big-endian: more than 256 classes
    body = Buffer.alloc(4 * n)
    for (let i = 0; i < n; i++) body.writeInt32BE(labels[i]!, 4 * i)
  }
  writeFileSync(join(dir, 'samples-labels-idx1-ubyte'), Buffer.concat([lh, body]))
}
