/**
 * A labelled image folder (`--image-dir`), decoded by jimp (PNG, JPEG, BMP, GIF, TIFF): either a
 * labels file in the folder (`labels.txt` or `labels.csv`: one `<file> <label>` per line, comma or
 * whitespace separated, the label a class index or a class name from `--classes`), or torchvision's
 * ImageFolder layout (one subfolder per class, classes in sorted order). Each image is resized to the
 * model's input (bilinear), converted to grey (ITU-R BT.601 luma) or RGB as the input has 1 or 3
 * channels, and laid out planar (CHW) as uint8 — the raw pixels the manifest's preprocessing expects.
 *
 * Decoding runs in the admin worker (runtime/off-thread.ts). What is read stays inside the folder:
 * real paths are compared (a symlink or `..` that leads elsewhere is refused by name), and an image
 * whose header declares more than MAX_IMAGE_PIXELS is refused before it is decoded (a decompression
 * bomb of a few kilobytes would otherwise cost gigabytes).
 */
import { existsSync, lstatSync, readFileSync, readdirSync, realpathSync, statSync } from 'node:fs'
import { basename, join, relative, resolve, sep } from 'node:path'
import { imageSize } from 'image-size'
import { Jimp } from 'jimp'
import { errorMessage, FieldError } from '../../shared/errors.js'
import type { SampleSet } from '../runtime/files.js'

/** Largest image decoded, pixels (a 24-megapixel photo fits; 100 MB of RGBA while it is resized). */
export const MAX_IMAGE_PIXELS = 25_000_000

export interface ImageDirArgs {
  dir: string
  inputShape: readonly number[]
  classes?: string[]
}

const IMAGE_RE = /\.(png|jpe?g|bmp|gif|tiff?)$/i
const LABEL_FILES = ['labels.txt', 'labels.csv']

interface Entry {
  file: string
  label: number
}

function entriesFromLabels(dir: string, labelsFile: string, classes: string[] | undefined): Entry[] {
  const out: Entry[] = []
  const lines = readFileSync(labelsFile, 'utf8').split(/\r?\n/)
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const parts = line.split(/\s*[,\t]\s*|\s+/)
    const where = `${relative(dir, labelsFile)}:${i + 1}`
    if (parts.length !== 2) throw new FieldError(`{imageDir}: ${where}: expected "<file> <label>", got "${line}"`)
    const [file, label] = parts as [string, string]
    if (i === 0 && /^(file|image|path)/i.test(file) && /^(label|class)/i.test(label)) continue // a header
    const n = /^\d+$/.test(label) ? Number(label) : (classes?.indexOf(label) ?? -1)
    if (n < 0)
      throw new FieldError(
        `{imageDir}: ${where}: label "${label}" is not a class index${classes ? ' or a class name of {classes}' : ' (give {classes} to use names)'}`
      )
    const path = resolve(dir, file)
    if (!existsSync(path)) throw new FieldError(`{imageDir}: ${where}: no such image ${file}`)
    out.push({ file: inside(dir, path, where), label: n })
  }
  return out
}

/**
 * A path of the folder's as a real path inside it (the folder itself a real path); a symlink, or a
 * name that leads outside, is a FieldError naming it.
 */
function inside(root: string, path: string, where: string, kind: 'file' | 'folder' = 'file'): string {
  const shown = relative(root, path) || path
  if (lstatSync(path).isSymbolicLink()) throw new FieldError(`{imageDir}: ${where}: "${shown}" is a symbolic link (give the image itself)`)
  const real = realpathSync(path)
  if (!real.startsWith(root + sep)) throw new FieldError(`{imageDir}: ${where}: "${shown}" is outside the folder`)
  const st = statSync(real)
  if (kind === 'file' ? !st.isFile() : !st.isDirectory())
    throw new FieldError(`{imageDir}: ${where}: "${shown}" is not a ${kind === 'file' ? 'regular file' : 'folder'}`)
  return real
}

function entriesFromFolders(dir: string): Entry[] {
  const classes = readdirSync(dir, { withFileTypes: true })
    .filter((d) => !d.name.startsWith('.') && (d.isDirectory() || d.isSymbolicLink()))
    .map((d) => d.name)
    .sort()
  const out: Entry[] = []
  for (const [label, c] of classes.entries()) {
    inside(dir, join(dir, c), c, 'folder') // a class folder that is a link is refused like an image
    for (const f of readdirSync(join(dir, c)).sort()) if (IMAGE_RE.test(f)) out.push({ file: inside(dir, join(dir, c, f), `${c}/${f}`), label })
  }
  return out
}

/** The image's pixels by its header, refused past the cap before anything is decoded. */
function checkPixels(bytes: Uint8Array, shown: string): void {
  let size: { width: number; height: number }
  try {
    size = imageSize(bytes)
  } catch (err) {
    throw new FieldError(`{imageDir}: ${shown}: cannot decode (${errorMessage(err)})`)
  }
  const pixels = size.width * size.height
  if (pixels > MAX_IMAGE_PIXELS)
    throw new FieldError(
      `{imageDir}: ${shown}: ${size.width}×${size.height} is ${pixels.toLocaleString('en')} pixels, over the cap of ${MAX_IMAGE_PIXELS.toLocaleString('en')}`
    )
}

/** Reads a labelled image folder as a sample set of the input's size ([1, C, H, W], C = 1 or 3). In the admin worker. */
export async function decodeImageDir(
  { dir, inputShape, classes }: ImageDirArgs,
  progress?: (done: number, total: number, what: string) => void
): Promise<SampleSet> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new FieldError(`{imageDir}: no such folder ${dir}`)
  const root = realpathSync(resolve(dir))
  const [, c, h, w] = inputShape as [number, number, number, number]
  if (inputShape.length !== 4 || (c !== 1 && c !== 3)) {
    throw new FieldError(`{imageDir}: the model's input ${inputShape.join('×')} is not an image (expected 1×1×H×W or 1×3×H×W)`)
  }
  const labelsFile = LABEL_FILES.map((n) => join(root, n)).find((p) => existsSync(p))
  const entries = labelsFile ? entriesFromLabels(root, inside(root, labelsFile, basename(labelsFile)), classes) : entriesFromFolders(root)
  if (!entries.length) {
    throw new FieldError(`{imageDir}: ${dir} holds no labelled image (expected labels.txt with "<file> <label>" lines, or one subfolder of images per class)`)
  }
  const plane = h * w
  const images = new Uint8Array(entries.length * c * plane)
  const labels = new Int32Array(entries.length)
  for (const [k, e] of entries.entries()) {
    let image: Awaited<ReturnType<typeof Jimp.read>>
    const bytes = readFileSync(e.file)
    checkPixels(bytes, relative(root, e.file))
    try {
      image = await Jimp.read(bytes)
    } catch (err) {
      throw new FieldError(`{imageDir}: ${relative(root, e.file)}: cannot decode (${errorMessage(err)})`)
    }
    if (image.bitmap.width !== w || image.bitmap.height !== h) image.resize({ w, h })
    const rgba = image.bitmap.data
    const base = k * c * plane
    for (let p = 0; p < plane; p++) {
      const r = rgba[4 * p]!
      const g = rgba[4 * p + 1]!
      const b = rgba[4 * p + 2]!
      if (c === 1) images[base + p] = Math.round(0.299 * r + 0.587 * g + 0.114 * b)
      else {
        images[base + p] = r
        images[base + plane + p] = g
        images[base + 2 * plane + p] = b
      }
    }
    labels[k] = e.label
    if ((k + 1) % 100 === 0 || k + 1 === entries.length) progress?.(k + 1, entries.length, 'decoding images')
  }
  return { count: entries.length, images, labels, imageElements: c * plane, source: root, labelled: true }
}
