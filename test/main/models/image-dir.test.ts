/**
 * Labelled image folders as an import's labelled set (`--image-dir`, decoded by jimp): the shipped
 * 28×28 samples written as PNG files measure exactly the accuracy their idx files measure (PNG is
 * lossless, no resize); an ImageFolder layout at twice the size is resized to the input; more than 256
 * classes are kept as int32 labels; a bad labels line, an undecodable image and an empty folder are
 * one-line errors that write nothing.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Jimp } from 'jimp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readImageDir } from '../../../src/main/models/image-dir.js'
import { importModel, libraryDir } from '../../../src/main/models/library.js'
import { OrtExecutor } from '../../../src/main/runtime/executor.js'
import { loadManifest, readModelSamples, readShippedSamples } from '../../../src/main/runtime/files.js'
import { defaultModelDir } from '../../../src/main/runtime/paths.js'
import { shippedSubset } from '../../fixtures/samples.js'

const tmp = () => mkdtempSync(join(tmpdir(), 'edgent-imgdir-'))
const N = 120

/** A grey 28×28 sample as a PNG (upscaled `k` times by pixel repetition). */
async function png(pixels: Uint8Array, file: string, k = 1): Promise<void> {
  const side = 28 * k
  const rgba = Buffer.alloc(side * side * 4)
  for (let y = 0; y < side; y++)
    for (let x = 0; x < side; x++) {
      const v = pixels[Math.floor(y / k) * 28 + Math.floor(x / k)]!
      rgba.set([v, v, v, 255], 4 * (y * side + x))
    }
  writeFileSync(file, await Jimp.fromBitmap({ width: side, height: side, data: rgba }).getBuffer('image/png'))
}

describe('labelled image folders', () => {
  const ex = new OrtExecutor()
  const dataDir = tmp()
  const shipped = loadManifest(defaultModelDir())
  const samples = readShippedSamples(shipped)
  const p = shipped.manifest.preprocessing!
  const base = { file: join(shipped.dir, shipped.manifest.onnx), dataDir, preprocess: { scale: p.scale, mean: p.mean, std: p.std } }
  const sample = (k: number) => samples.images.subarray(k * 784, (k + 1) * 784)
  beforeAll(() => ex.start())
  afterAll(() => ex.stop())

  it('measures the same accuracy from PNG files with a labels file as from the idx files', async () => {
    const dir = tmp()
    const lines = ['file,label']
    for (let k = 0; k < N; k++) {
      await png(sample(k), join(dir, `s${k}.png`))
      lines.push(`s${k}.png,${samples.labels[k]}`)
    }
    writeFileSync(join(dir, 'labels.csv'), `${lines.join('\n')}\n`)
    const fromPng = await importModel({ ...base, id: 'from-png', imageDir: dir }, ex)
    const idx = shippedSubset(tmp(), N)
    const fromIdx = await importModel({ ...base, id: 'from-idx', images: idx.images, labels: idx.labels }, ex)
    expect(fromPng.manifest.exits.map((e) => [e.accuracy, e.accuracySource, e.testSamples])).toEqual(
      fromIdx.manifest.exits.map((e) => [e.accuracy, 'measured', N])
    )
    // The decoded pixels are the originals, kept beside the model as its samples.
    const kept = readModelSamples(loadManifest(fromPng.dir))
    expect(Buffer.from(kept.images).equals(Buffer.from(samples.images.subarray(0, N * 784)))).toBe(true)
  })

  it('reads an ImageFolder layout (a subfolder per class), resizing to the input', async () => {
    const dir = tmp()
    for (let k = 0; k < 12; k++) {
      const c = `class-${samples.labels[k]}`
      mkdirSync(join(dir, c), { recursive: true })
      await png(sample(k), join(dir, c, `${k}.png`), 2) // 56×56
    }
    const set = await readImageDir(dir, [1, 1, 28, 28])
    expect(set.count).toBe(12)
    const classes = [...new Set(Array.from({ length: 12 }, (_, k) => `class-${samples.labels[k]}`))].sort()
    // pixel-doubled images come back within rounding of the originals
    let worst = 0
    let exact = 0
    const order = classes.flatMap((c) =>
      readdirSync(join(dir, c))
        .sort()
        .map((f) => Number(f.replace('.png', '')))
    )
    for (const [i, k] of order.entries()) {
      expect(set.labels[i]).toBe(classes.indexOf(`class-${samples.labels[k]}`))
      const got = set.images.subarray(i * 784, (i + 1) * 784)
      for (let j = 0; j < 784; j++) {
        const d = Math.abs(got[j]! - sample(k)[j]!)
        worst = Math.max(worst, d)
        if (d === 0) exact++
      }
    }
    // Halving a pixel-doubled image gives the original back (jimp's bilinear resize, pinned version).
    expect(worst).toBeLessThanOrEqual(1)
    expect(exact / (12 * 784)).toBeGreaterThan(0.99)
  })

  it('keeps labels past 255 as int32', async () => {
    const dir = tmp()
    await png(sample(0), join(dir, 'a.png'))
    await png(sample(1), join(dir, 'b.png'))
    writeFileSync(join(dir, 'labels.txt'), 'a.png 999\nb.png 3\n')
    const set = await readImageDir(dir, [1, 1, 28, 28])
    expect(Array.from(set.labels)).toEqual([999, 3])
  })

  it('refuses a bad labels line, an undecodable image and an empty folder in one line each, writing nothing', async () => {
    const bad = tmp()
    await png(sample(0), join(bad, 'a.png'))
    writeFileSync(join(bad, 'labels.txt'), 'a.png cat\n')
    await expect(importModel({ ...base, id: 'bad1', imageDir: bad }, ex)).rejects.toThrow(
      /^imageDir: labels.txt:1: label "cat" is not a class index \(give classes to use names\)$/
    )
    writeFileSync(join(bad, 'labels.txt'), 'a.png 1\nmissing.png 2\n')
    await expect(importModel({ ...base, id: 'bad2', imageDir: bad }, ex)).rejects.toThrow(/^imageDir: labels.txt:2: no such image missing.png$/)
    writeFileSync(join(bad, 'junk.png'), 'not an image')
    writeFileSync(join(bad, 'labels.txt'), 'a.png 1\njunk.png 2\n')
    await expect(importModel({ ...base, id: 'bad3', imageDir: bad }, ex)).rejects.toThrow(/^imageDir: junk.png: cannot decode \(/)
    await expect(importModel({ ...base, id: 'bad4', imageDir: tmp() }, ex)).rejects.toThrow(/holds no labelled image/)
    await expect(importModel({ ...base, id: 'bad5', imageDir: bad, images: 'x', labels: 'y' }, ex)).rejects.toThrow(/give one labelled set/)
    expect(readdirSync(libraryDir(dataDir)).sort()).toEqual(['from-idx', 'from-png'])
    expect(readFileSync(join(libraryDir(dataDir), 'from-png', 'manifest.json'), 'utf8')).toContain('"accuracySource": "measured"')
  })
})
