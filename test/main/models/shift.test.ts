/** `edgent drift`'s shifted frames: a copy of a model whose samples moved, the source untouched. */
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { shiftModelSamples } from '../../../src/main/models/shift.js'
import { loadManifest, readShippedSamples } from '../../../src/main/runtime/files.js'
import { defaultModelDir } from '../../../src/main/runtime/paths.js'

describe('shifted samples', () => {
  it('brightens, lowers contrast and adds noise to every frame of a copy, deterministically, leaving the source alone', () => {
    const src = loadManifest(defaultModelDir())
    const before = readFileSync(join(src.dir, src.manifest.samples!.images))
    const out = (name: string) => join(mkdtempSync(join(tmpdir(), 'edgent-shift-')), name)
    const a = shiftModelSamples({ model: src.dir, out: out('a'), contrast: 1, brightness: 60, noise: 0 })
    const orig = readShippedSamples(src)
    const moved = readShippedSamples(loadManifest(a.dir))
    expect(moved.count).toBe(orig.count)
    for (let i = 0; i < 5000; i++) expect(moved.images[i]).toBe(Math.min(255, orig.images[i]! + 60))
    expect(Array.from(moved.labels)).toEqual(Array.from(orig.labels))
    expect(loadManifest(a.dir).manifest.samples!.source).toMatch(/brightness \+60/)
    const b = shiftModelSamples({ model: src.dir, out: out('b'), contrast: 0.5, noise: 20, seed: 7 })
    const c = shiftModelSamples({ model: src.dir, out: out('c'), contrast: 0.5, noise: 20, seed: 7 })
    expect(readFileSync(join(b.dir, src.manifest.samples!.images)).equals(readFileSync(join(c.dir, src.manifest.samples!.images)))).toBe(true)
    expect(b.meanChange).toBeGreaterThan(10)
    expect(readFileSync(join(src.dir, src.manifest.samples!.images)).equals(before)).toBe(true)
  })

  it('refuses out-of-range shifts and a folder that is not empty, by name', () => {
    const dir = defaultModelDir()
    expect(() => shiftModelSamples({ model: dir, out: mkdtempSync(join(tmpdir(), 'x-')), contrast: 0, noise: 0 })).toThrow(
      '--contrast must be in (0, 4], got 0'
    )
    expect(() => shiftModelSamples({ model: dir, out: mkdtempSync(join(tmpdir(), 'x-')), contrast: 1, noise: 500 })).toThrow('--noise must be in [0, 128]')
    expect(() => shiftModelSamples({ model: dir, out: dir, contrast: 1, noise: 0 })).toThrow('exists and is not empty')
  })
})
