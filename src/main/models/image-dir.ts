/**
 * A labelled image folder (`--image-dir`), decoded by jimp (PNG, JPEG, BMP, GIF, TIFF): either a
 * labels file in the folder (`labels.txt` or `labels.csv`: one `<file> <label>` per line, comma or
 * whitespace separated, the label a class index or a class name from `--classes`), or torchvision's
 * ImageFolder layout (one subfolder per class, classes in sorted order). Each image is resized to the
 * model's input (bilinear), converted to grey (ITU-R BT.601 luma) or RGB as the input has 1 or 3
 * channels, and laid out planar (CHW) as uint8 — the raw pixels the manifest's preprocessing expects.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { Jimp } from 'jimp'
import { errorMessage, FieldError } from '../../shared/errors.js'
import type { SampleSet } from '../runtime/files.js'

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
    if (!path.startsWith(resolve(dir))) throw new FieldError(`{imageDir}: ${where}: "${file}" is outside the folder`)
    if (!existsSync(path)) throw new FieldError(`{imageDir}: ${where}: no such image ${file}`)
    out.push({ file: path, label: n })
  }
  return out
}

function entriesFromFolders(dir: string): Entry[] {
  const classes = readdirSync(dir)
    .filter((n) => !n.startsWith('.') && statSync(join(dir, n)).isDirectory())
    .sort()
  const out: Entry[] = []
  for (const [label, c] of classes.entries()) {
    for (const f of readdirSync(join(dir, c)).sort()) if (IMAGE_RE.test(f)) out.push({ file: join(dir, c, f), label })
  }
  return out
}

/** Reads a labelled image folder as a sample set of the input's size ([1, C, H, W], C = 1 or 3). */
export async function readImageDir(
  dir: string,
  inputShape: readonly number[],
  classes?: string[],
  progress?: (done: number, total: number, what: string) => void
): Promise<SampleSet> {
  const root = resolve(dir)
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new FieldError(`{imageDir}: no such folder ${dir}`)
  const [, c, h, w] = inputShape as [number, number, number, number]
  if (inputShape.length !== 4 || (c !== 1 && c !== 3)) {
    throw new FieldError(`{imageDir}: the model's input ${inputShape.join('×')} is not an image (expected 1×1×H×W or 1×3×H×W)`)
  }
  const labelsFile = LABEL_FILES.map((n) => join(root, n)).find((p) => existsSync(p))
  const entries = labelsFile ? entriesFromLabels(root, labelsFile, classes) : entriesFromFolders(root)
  if (!entries.length) {
    throw new FieldError(`{imageDir}: ${dir} holds no labelled image (expected labels.txt with "<file> <label>" lines, or one subfolder of images per class)`)
  }
  const plane = h * w
  const images = new Uint8Array(entries.length * c * plane)
  const labels = new Int32Array(entries.length)
  for (const [k, e] of entries.entries()) {
    let image: Awaited<ReturnType<typeof Jimp.read>>
    try {
      image = await Jimp.read(readFileSync(e.file))
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
