import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { loadManifest } from '../../src/main/runtime/files.js'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { runCli } from './cli-run.js'
import { defaultModelDir } from '../../src/main/runtime/paths.js'

const dir = defaultModelDir()
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'))

const run = runCli

/** idx bytes: magic, type 0x08, dims, data. */
function idx(dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length)
  head[2] = 0x08
  head[3] = dims.length
  for (const [i, d] of dims.entries()) head.writeUInt32BE(d, 4 + 4 * i)
  return Buffer.concat([head, Buffer.from(data)])
}

describe('edgent model info', () => {
  it('lists layers with shapes and bytes, and exits with accuracies', async () => {
    const r = await run('model', 'info', '--json')
    expect(r.code).toBe(0)
    const info = JSON.parse(r.out)
    expect(info.id).toBe('branchy-alexnet')
    expect(info.exits).toHaveLength(5)
    expect(info.inputBytes).toBe(28 * 28 * 4)
    const conv1 = info.layers.find((l: any) => l.id === 'conv1')
    expect(conv1).toMatchObject({ type: 'conv', inputShape: [1, 1, 28, 28], exits: [1, 2, 3, 4, 5] })
    const text = await run('model', 'info')
    expect(text.out).toMatch(/exit\s+layers\s+accuracy/)
    for (const e of manifest.exits) expect(text.out).toContain(`${(e.accuracy * 100).toFixed(2)} %`)
  })
})

describe('edgent model verify', () => {
  it('matches every exit on the 2,000 shipped samples within ±2 points and every split exactly', async () => {
    const r = await run('model', 'verify', '--json', '--split-samples', '2')
    expect(r.err).toBe('')
    const report = JSON.parse(r.out)
    expect(report.samples).toBe(2000)
    expect(report.exits).toHaveLength(5)
    for (const v of report.exits) {
      expect(Math.abs(v.deltaPoints), `exit ${v.exit}`).toBeLessThanOrEqual(2)
      expect(v.maxSplitAbsDiff).toBeLessThanOrEqual(1e-4)
      expect(v.splitsChecked).toBe(2 * (v.layers + 1))
    }
    expect(report.ok).toBe(true)
    expect(r.code).toBe(0)
  }, 180_000)

  it('measures every exit × cut × lossy codec with --codecs, stores it in the manifest, and measures it again the same', async () => {
    const copy = mkdtempSync(join(tmpdir(), 'edgent-codecs-'))
    cpSync(dir, copy, { recursive: true })
    const r = await run('model', 'verify', '--model', copy, '--samples', '20', '--split-samples', '1', '--codecs', '--json')
    // 20 samples may put an exit more than 2 points off the manifest's accuracy (exit code 1): the splits stay exact
    expect(r.err).toBe('')
    const report = JSON.parse(r.out)
    expect(r.code).toBe(report.ok ? 0 : 1)
    for (const v of report.exits) expect(v.maxSplitAbsDiff).toBeLessThanOrEqual(1e-4)
    expect(report.codecAccuracyStored).toBe(join(copy, 'manifest.json'))
    expect(report.codecAccuracy).toMatchObject({ samples: 20, source: expect.stringContaining('shipped samples') })
    for (const e of manifest.exits) {
      const m = report.codecAccuracy.exits.find((x: { exit: number }) => x.exit === e.exit)
      const own = report.exits.find((v: { exit: number }) => v.exit === e.exit).accuracy
      for (const codec of ['f16', 'int8', 'int8c']) {
        expect(m.byCodec[codec], `${codec}, exit ${e.exit}`).toHaveLength(e.layers.length)
        for (const a of m.byCodec[codec]) expect(a * 20).toBe(Math.round(a * 20)) // a count of 20
        // f16 changes no top-1 at any cut (executor.test.ts): its accuracy is the exit's own
        if (codec === 'f16') for (const a of m.byCodec[codec]) expect(a).toBe(own)
      }
    }
    // stored, valid against the schema, and the same when measured again (±0.5 points: here exactly, the runs are deterministic)
    const stored = JSON.parse(readFileSync(join(copy, 'manifest.json'), 'utf8'))
    expect(stored.codecAccuracy).toEqual(report.codecAccuracy)
    expect(loadManifest(copy).manifest.codecAccuracy).toEqual(report.codecAccuracy)
    const again = JSON.parse((await run('model', 'verify', '--model', copy, '--samples', '20', '--split-samples', '1', '--codecs', '--json')).out)
    expect(again.codecAccuracy).toEqual(report.codecAccuracy)
    const text = await run('model', 'verify', '--model', copy, '--samples', '20', '--split-samples', '1', '--codecs')
    expect(text.out).toMatch(/accuracy with the activation sent lossy, at every cut \(deviceLayers 0..N−1\), 20 samples:/)
    expect(text.out).toContain(`stored in ${join(copy, 'manifest.json')} (codecAccuracy)`)
  }, 240_000)

  it('reads a test set in MNIST idx format, gzipped', async () => {
    const images = readFileSync(join(dir, manifest.samples.images))
    const labels = readFileSync(join(dir, manifest.samples.labels))
    const n = 40
    const d = mkdtempSync(join(tmpdir(), 'edgent-idx-'))
    writeFileSync(join(d, 'img.gz'), gzipSync(idx([n, 28, 28], images.subarray(16, 16 + n * 784))))
    writeFileSync(join(d, 'lbl.gz'), gzipSync(idx([n], labels.subarray(8, 8 + n))))
    const r = await run('model', 'verify', '--images', join(d, 'img.gz'), '--labels', join(d, 'lbl.gz'), '--json', '--split-samples', '1')
    const report = JSON.parse(r.out)
    expect(report.samples).toBe(n)
    expect(report.source).toContain('img.gz')
    for (const v of report.exits) expect(v.correct).toBeGreaterThan(n / 2)
  }, 60_000)

  it('fails cleanly on a truncated or mismatched test set', async () => {
    const d = mkdtempSync(join(tmpdir(), 'edgent-idx-'))
    writeFileSync(join(d, 'img'), idx([10, 28, 28], new Uint8Array(784 * 9)))
    writeFileSync(join(d, 'lbl'), idx([10], new Uint8Array(10)))
    writeFileSync(join(d, 'lbl9'), idx([9], new Uint8Array(9)))
    const a = await run('model', 'verify', '--images', join(d, 'img'), '--labels', join(d, 'lbl'))
    expect(a.code).toBe(2)
    expect(a.err.trim()).toBe('edgent: images img: idx header declares 10×28×28 = 7840 bytes of data but the file holds 7056')
    writeFileSync(join(d, 'img'), idx([10, 28, 28], new Uint8Array(7840)))
    const b = await run('model', 'verify', '--images', join(d, 'img'), '--labels', join(d, 'lbl9'))
    expect(b.code).toBe(2)
    expect(b.err.trim()).toBe('edgent: img + lbl9: 10 images but 9 labels')
    const c = await run('model', 'verify', '--images', join(d, 'img'))
    expect(c.err.trim()).toBe('edgent: --images and --labels go together')
  })
})

describe('edgent model decisions', () => {
  it('times every layer here, scales the device, and plans over the grid', async () => {
    const r = await run('model', 'decisions', '--device-factor', '30', '--reps', '2', '--json')
    expect(r.code).toBe(0)
    const d = JSON.parse(r.out)
    expect(d.deviceFactor).toBe(30)
    expect(d.inputBytes).toBe(3136)
    expect(d.layers).toHaveLength(manifest.layers.length)
    for (const l of d.layers) {
      expect(l.edgeMs).toBeGreaterThan(0)
      expect(l.deviceMs).toBeCloseTo(l.edgeMs * 30, 9)
      expect(l.vsInput).toBeCloseTo(l.outputBytes / 3136, 12)
    }
    expect(d.grid).toHaveLength(36)
    expect(d.summary.edgeOnly + d.summary.deviceOnly + d.summary.middle).toBe(36)
    for (const e of d.exitEdgeMs) expect(e.fusedMs).toBeGreaterThan(0)
    const text = await run('model', 'decisions', '--reps', '1', '--bandwidths-kbps', '50,1500', '--latency-ms', '20,1000')
    expect(text.out).toMatch(/requirement\s+50 kbps\s+1500 kbps/)
    // every codec: a table per codec beside f32 and one with all; u8 (a quarter of the input's bytes) where edge-only wins
    const all = JSON.parse((await run('model', 'decisions', '--reps', '1', '--codecs', 'all', '--json')).out)
    expect(all.codecs).toEqual(['f32', 'f16', 'int8', 'int8c', 'u8'])
    expect(all.variants.map((v: { codecs: string[] }) => v.codecs.join('+'))).toEqual(['f32', 'f32+f16', 'f32+int8', 'f32+int8c', 'f32+u8'])
    for (const g of all.grid as { deviceLayers: number; layers: number; codec: string }[])
      if (g.deviceLayers > 0) expect(g.codec === 'f32' || g.deviceLayers < g.layers).toBe(true)
    const f32Only = all.variants[0].grid as { deviceLayers: number; codec: string }[]
    expect(f32Only.every((g) => g.codec === 'f32')).toBe(true)
    const withU8 = all.variants[4].grid as { deviceLayers: number; codec: string }[]
    expect(withU8.some((g) => g.deviceLayers === 0 && g.codec === 'u8')).toBe(true)
    const wrong = await run('model', 'decisions', '--codecs', 'f32,zip')
    expect(wrong.code).toBe(2)
    expect(wrong.err).toContain('unknown codec "zip" (known: f32, f16, int8, int8c, u8, or all)')
    const bad = await run('model', 'decisions', '--bandwidths-kbps', '50,,x')
    expect(bad.code).toBe(2)
    expect(bad.err.trim()).toBe(
      "edgent: option '--bandwidths-kbps <list>' argument '50,,x' is invalid. expected comma-separated positive numbers, e.g. 50,100,500."
    )
  }, 60_000)
})
