/**
 * Labelled image folders as an import's labelled set (`--image-dir`, decoded by jimp): the shipped
 * 28×28 samples written as PNG files measure exactly the accuracy their idx files measure (PNG is
 * lossless, no resize); an ImageFolder layout at twice the size is resized to the input; more than 256
 * classes are kept as int32 labels; a bad labels line, an undecodable image and an empty folder are
 * one-line errors that write nothing. Hostile folders (issue 30, item 5 and 8): a symlinked image, class
 * folder or labels file, a labels line leading to a sibling folder whose name shares the prefix
 * (`../set1-evil/`), and a 35 KB PNG declaring 6000×6000 pixels are each refused by name before
 * any pixel outside the folder, or of the bomb, is decoded.
 */
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { deflateSync } from 'node:zlib'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Jimp } from 'jimp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_IMAGE_PIXELS, decodeImageDir } from '../../../src/main/models/image-dir.js'
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
    const set = await decodeImageDir({ dir, inputShape: [1, 1, 28, 28] })
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
    const set = await decodeImageDir({ dir, inputShape: [1, 1, 28, 28] })
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

  it('refuses links, escapes and decompression bombs by name, before decoding them', async () => {
    const parent = tmp()
    const set = join(parent, 'set1')
    const evil = join(parent, 'set1-evil')
    mkdirSync(set)
    mkdirSync(evil)
    await png(sample(0), join(set, 'a.png'))
    await png(sample(1), join(evil, 'secret.png'))
    const decode = () => decodeImageDir({ dir: set, inputShape: [1, 1, 28, 28] })
    // A lexical prefix check let this through (set1-evil starts with set1).
    writeFileSync(join(set, 'labels.txt'), 'a.png 1\n../set1-evil/secret.png 2\n')
    await expect(decode()).rejects.toThrow(/^imageDir: labels.txt:2: "\.\.\/set1-evil\/secret.png" is outside the folder$/)
    symlinkSync(join(evil, 'secret.png'), join(set, 'link.png'))
    writeFileSync(join(set, 'labels.txt'), 'a.png 1\nlink.png 2\n')
    await expect(decode()).rejects.toThrow(/^imageDir: labels.txt:2: "link.png" is a symbolic link/)
    const other = tmp()
    writeFileSync(join(other, 'labels.txt'), 'a.png 1\n')
    const linked = tmp()
    await png(sample(0), join(linked, 'a.png'))
    symlinkSync(join(other, 'labels.txt'), join(linked, 'labels.txt'))
    await expect(decodeImageDir({ dir: linked, inputShape: [1, 1, 28, 28] })).rejects.toThrow(/^imageDir: labels.txt: "labels.txt" is a symbolic link/)
    // ImageFolder layout: a class folder that links elsewhere.
    const folders = tmp()
    mkdirSync(join(folders, 'cat'))
    await png(sample(0), join(folders, 'cat', 'a.png'))
    symlinkSync(evil, join(folders, 'dog'))
    await expect(decodeImageDir({ dir: folders, inputShape: [1, 1, 28, 28] })).rejects.toThrow(/^imageDir: dog: "dog" is a symbolic link/)
    // A decompression bomb: 6000×6000 grey pixels of zeros, a few tens of kilobytes.
    const bomb = tmp()
    writeFileSync(join(bomb, 'labels.txt'), 'bomb.png 0\n')
    writeFileSync(join(bomb, 'bomb.png'), greyPng(6000, 6000))
    expect(6000 * 6000).toBeGreaterThan(MAX_IMAGE_PIXELS)
    const before = process.memoryUsage().rss
    await expect(decodeImageDir({ dir: bomb, inputShape: [1, 1, 28, 28] })).rejects.toThrow(
      /^imageDir: bomb.png: 6000×6000 is 36,000,000 pixels, over the cap of 25,000,000$/
    )
    expect(process.memoryUsage().rss - before).toBeLessThan(100 * 2 ** 20) // decoding it costs 144 MB of RGBA
    // Through the import (the admin worker): the same refusal, nothing in the library.
    await expect(importModel({ ...base, id: 'bomb', imageDir: bomb }, ex)).rejects.toThrow(/over the cap of 25,000,000/)
    expect(readdirSync(libraryDir(dataDir)).sort()).toEqual(['from-idx', 'from-png'])
  })
})

/** A valid 8-bit greyscale PNG of zeros (IHDR, one IDAT, IEND). */
function greyPng(w: number, h: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    return c >>> 0
  })
  const crc = (b: Buffer) => {
    let c = 0xffffffff
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8)
    return (c ^ 0xffffffff) >>> 0
  }
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
    const c = Buffer.alloc(4)
    c.writeUInt32BE(crc(body))
    return Buffer.concat([len, body, c])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(w, 0)
  ihdr.writeUInt32BE(h, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 0 // greyscale
  const raw = Buffer.alloc((w + 1) * h) // filter byte 0 then zeros, each row
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0))
  ])
}
