/**
 * Shifted frames (issue 31's drift experiment): a copy of a model folder whose samples are the same
 * frames at another contrast and brightness, with added noise — a distribution the model was not trained on, for
 * showing what fixed exit thresholds and audit-tuned ones do when the data drifts.
 */
import { cpSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { UserError } from '../../shared/errors.js'
import { loadManifest } from '../runtime/files.js'

export interface ShiftOptions {
  /** The model folder whose samples are shifted. */
  model: string
  /** The new folder (must not exist, or be empty). */
  out: string
  /** Pixels move towards mid-grey: 128 + contrast × (p − 128); 1 leaves them. */
  contrast: number
  /** Added to every pixel, grey levels (an over- or under-exposed camera); default 0. */
  brightness?: number
  /** Gaussian noise added per pixel, its standard deviation in grey levels (0: none). */
  noise: number
  seed?: number
}

/** A seeded standard normal (Box–Muller over a 32-bit LCG): the same frames on every machine. */
function normals(seed: number): () => number {
  let x = seed >>> 0 || 1
  const u = () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    return (x + 1) / 4294967297
  }
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u())
}

/** Writes the shifted copy; returns its folder and the samples' mean absolute pixel change. */
export function shiftModelSamples(o: ShiftOptions): { dir: string; frames: number; meanChange: number } {
  if (!(o.contrast > 0 && o.contrast <= 4)) throw new UserError(`--contrast must be in (0, 4], got ${o.contrast}`)
  const brightness = o.brightness ?? 0
  if (!(Math.abs(brightness) <= 255)) throw new UserError(`--brightness must be in [-255, 255] grey levels, got ${brightness}`)
  if (!(o.noise >= 0 && o.noise <= 128)) throw new UserError(`--noise must be in [0, 128] grey levels, got ${o.noise}`)
  const loaded = loadManifest(o.model)
  const s = loaded.manifest.samples
  if (!s) throw new UserError(`model ${loaded.manifest.id} keeps no samples to shift`)
  const out = resolve(o.out)
  if (existsSync(out) && readdirSync(out).length) throw new UserError(`--out ${out} exists and is not empty`)
  cpSync(loaded.dir, out, { recursive: true })
  let bytes = readFileSync(join(loaded.dir, s.images))
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes)
  const header = 4 + 4 * bytes[3]!
  const next = normals(o.seed ?? 2018)
  let change = 0
  for (let i = header; i < bytes.length; i++) {
    const p = bytes[i]!
    const v = Math.min(255, Math.max(0, Math.round(128 + o.contrast * (p - 128) + brightness + (o.noise ? o.noise * next() : 0))))
    change += Math.abs(v - p)
    bytes[i] = v
  }
  writeFileSync(join(out, s.images), bytes)
  const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'))
  m.samples = {
    ...m.samples,
    source: `${m.samples.source ?? 'the model samples'}, shifted: contrast ×${o.contrast}, brightness ${brightness >= 0 ? '+' : ''}${brightness}, noise σ ${o.noise} grey levels (edgent model shift)`
  }
  writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(m, null, 2)}\n`)
  const pixels = bytes.length - header
  return { dir: out, frames: s.count ?? 0, meanChange: pixels ? change / pixels : 0 }
}
