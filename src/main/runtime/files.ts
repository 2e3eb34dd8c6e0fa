/** Loading user-named files with one clear error line for each way they can be wrong. */
import { closeSync, constants, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { basename, dirname, join, resolve } from 'node:path'
import { UserError } from '../../shared/errors.js'
import { parseManifest, type Manifest } from '../../shared/contracts/manifest.js'
import { pairImagesLabels, parseIdx, type IdxArray } from '../../shared/contracts/idx.js'
import { BUILTIN_PROFILES, parseProfile, type CalibrationProfile } from '../../shared/algorithms/latency.js'

/** Largest JSON file read by default (manifests, calibration exports), bytes. */
export const MAX_JSON_BYTES = 256 * 1024 * 1024

/**
 * A regular file's text, read at most `maxBytes`. Anything else is refused at once, by what it is: a
 * device such as /dev/zero would be read until the cap, and a FIFO with no writer would never answer.
 */
export function readTextBounded(path: string, what: string, maxBytes: number): string {
  let fd: number
  try {
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer, forever.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new UserError(`${what}: no such file ${path}`)
    throw new UserError(`${what}: cannot read ${path} (${code ?? String(err)})`)
  }
  try {
    const st = fstatSync(fd)
    if (st.isDirectory()) throw new UserError(`${what}: ${path} is a folder, expected a file`)
    if (!st.isFile()) throw new UserError(`${what}: ${path} is not a regular file (a FIFO, a device or a socket): give a file`)
    const cap = `${what}: ${path} is over the ${Math.round(maxBytes / 2 ** 20)} MiB limit`
    if (st.isFile() && st.size > maxBytes) throw new UserError(cap)
    const chunks: Buffer[] = []
    let total = 0
    const buf = Buffer.allocUnsafe(1 << 20)
    for (;;) {
      let n: number
      try {
        n = readSync(fd, buf, 0, buf.length, null)
      } catch (err) {
        throw new UserError(`${what}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`)
      }
      if (n === 0) break
      total += n
      if (total > maxBytes) throw new UserError(cap)
      chunks.push(Buffer.from(buf.subarray(0, n)))
    }
    return Buffer.concat(chunks, total).toString('utf8')
  } finally {
    closeSync(fd)
  }
}

export function readJsonFile(path: string, what: string, maxBytes = MAX_JSON_BYTES): unknown {
  const text = readTextBounded(path, what, maxBytes)
  try {
    return JSON.parse(text) as unknown
  } catch (err) {
    throw new UserError(`${what}: ${path} is not valid JSON (${(err as Error).message})`)
  }
}

export interface LoadedManifest {
  manifest: Manifest
  /** Absolute path of manifest.json. */
  path: string
  /** The folder holding the manifest, its ONNX file and samples. */
  dir: string
}

/** A model by its manifest.json or the folder holding one. */
export function loadManifest(pathOrDir: string): LoadedManifest {
  let path = resolve(pathOrDir)
  let isDir = false
  try {
    isDir = statSync(path).isDirectory()
  } catch {
    throw new UserError(`model: no such file or folder ${pathOrDir} (expected a manifest.json or a model folder)`)
  }
  if (isDir) path = join(path, 'manifest.json')
  const manifest = parseManifest(readJsonFile(path, 'model'), `${basename(dirname(path))}/${basename(path)}`)
  return { manifest, path, dir: dirname(path) }
}

/**
 * A profile: built-in by name (`paper-2018`), a stored one by id (looked up by `stored`), a
 * calibration profile file, or one profile of an `edgent export` file (`file.json#<profile id>`,
 * or just the file when it holds one profile).
 */
export function loadProfile(nameOrPath: string, stored?: (id: string) => CalibrationProfile | null): CalibrationProfile {
  const builtin = BUILTIN_PROFILES[nameOrPath]
  if (builtin) return builtin
  if (!/[/\\.]/.test(nameOrPath)) {
    const found = stored?.(nameOrPath)
    if (found) return found
    throw new UserError(
      `profile: unknown profile "${nameOrPath}" (built-in: ${Object.keys(BUILTIN_PROFILES).join(', ')}; a stored profile id; or a calibration .json file)`
    )
  }
  const [file, fragment] = nameOrPath.split('#') as [string, string | undefined]
  const json = readJsonFile(file, 'profile') as { format?: string; profiles?: { id: string; profile: unknown }[] }
  if (json && json.format === 'edgent-calibration-export') {
    const list = json.profiles ?? []
    const pick = fragment ? list.find((p) => p.id === fragment) : list.length === 1 ? list[0] : undefined
    if (!pick)
      throw new UserError(`profile: ${basename(file)} holds profiles ${list.map((p) => p.id).join(', ') || '(none)'}: name one as ${basename(file)}#<id>`)
    return parseProfile(pick.profile, `${basename(file)}#${pick.id}`)
  }
  return parseProfile(json, basename(file))
}

/** An idx file (MNIST format), gzipped or not. */
export function readIdxFile(path: string, what: string): IdxArray {
  let bytes: Buffer
  try {
    bytes = readFileSync(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new UserError(code === 'ENOENT' ? `${what}: no such file ${path}` : `${what}: cannot read ${path} (${code ?? String(err)})`)
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes)
    } catch (err) {
      throw new UserError(`${what}: ${path} is a corrupt gzip file (${(err as Error).message})`)
    }
  }
  return parseIdx(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), `${what} ${basename(path)}`)
}

export interface SampleSet {
  count: number
  images: Uint8Array
  /** Class indices (bytes in MNIST-style idx files; int32 when a model has more than 256 classes). */
  labels: Uint8Array | Int32Array
  imageElements: number
  source: string
  /** False for generated inputs (a model imported without a labelled set): `labels` mean nothing. */
  labelled?: boolean
}

/** A labelled image set from two idx files. */
export function readSampleSet(imagesPath: string, labelsPath: string): SampleSet {
  const images = readIdxFile(imagesPath, 'images')
  const labels = readIdxFile(labelsPath, 'labels')
  return { ...pairImagesLabels(images, labels, `${basename(imagesPath)} + ${basename(labelsPath)}`), source: `${imagesPath} + ${labelsPath}` }
}

/** Generated inputs for a model without samples. */
export const RANDOM_SAMPLES = 64

/** `n` images of uniform random pixels from a fixed seed, unlabelled: the same on every machine. */
export function randomSamples(m: Manifest, n: number): SampleSet {
  const imageElements = m.input.shape.reduce((a, b) => a * b, 1)
  const images = new Uint8Array(n * imageElements)
  let x = 2018
  for (let i = 0; i < images.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    images[i] = x >>> 24
  }
  return { count: n, images, labels: new Uint8Array(n), imageElements, source: 'random inputs (no labelled set)', labelled: false }
}

/**
 * The inputs a model's agents co-infer on: the samples it ships, or (a model imported without a
 * labelled set) RANDOM_SAMPLES random images, unlabelled — the console and its agents agree on them.
 */
export function readModelSamples(model: LoadedManifest): SampleSet {
  return model.manifest.samples ? { ...readShippedSamples(model), labelled: true } : randomSamples(model.manifest, RANDOM_SAMPLES)
}

/** The sample set a model ships (manifest.samples), which the agent uses as its input source. */
export function readShippedSamples(model: LoadedManifest): SampleSet {
  const s = model.manifest.samples
  if (!s) throw new UserError(`model ${model.manifest.id} ships no samples (manifest.samples is missing)`)
  return readSampleSet(join(model.dir, s.images), join(model.dir, s.labels))
}
