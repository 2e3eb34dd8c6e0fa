/**
 * What a codec costs per value on this machine, measured: encoding where the device sends (the agent
 * announces its own figures in its hello), decoding where the edge receives (the console measures its
 * own). The planner charges a configuration the difference from f32's (codecs.ts; planner.ts).
 *
 * u8 carries the raw pixels: the device skips its preprocessing and the edge does it, so u8's decoding
 * is the preprocessing's arithmetic (scale, mean, std: preprocess.ts) on each value.
 */
import { median } from 'simple-statistics'
import { CODECS, decodePayload, encodeInto, payloadBytes, type Codec } from './codecs.js'
import { DEFAULT_MAX_CODEC_DROP_PTS, type CodecOptions } from './planner.js'
import { normalise } from './preprocess.js'

/** A typical preprocessing (scale to [0, 1], one mean and deviation) for timing u8's decoding. */
const U8_PREPROCESSING = { scale: 1 / 255, mean: [0.5], std: [0.25], layout: 'NCHW' as const }

export interface CodecCostsHere {
  /** ns per value to encode a tensor into a frame's payload. */
  encodeNs: Record<Codec, number>
  /** ns per value to decode a payload back into float32 (u8: to preprocess the pixels). */
  decodeNs: Record<Codec, number>
  values: number
  reps: number
}

/**
 * Times every codec's encoding and decoding of one activation-sized tensor (1×64×16×16 by default:
 * 16,384 values, a few milliseconds in all), median of `reps` after one warm-up.
 */
export function measureCodecCosts(reps = 5, dims: readonly number[] = [1, 64, 16, 16]): CodecCostsHere {
  const n = dims.reduce((a, b) => a * b, 1)
  const data = new Float32Array(n)
  const pixels = new Uint8Array(n)
  let x = 2018
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    pixels[i] = x >>> 24
    data[i] = ((x >>> 8) / 2 ** 24) * 4 - 2
  }
  const encodeNs = {} as Record<Codec, number>
  const decodeNs = {} as Record<Codec, number>
  for (const codec of CODECS) {
    const input = codec === 'u8' ? Float32Array.from(pixels) : data
    const out = new Uint8Array(payloadBytes(codec, dims))
    const enc: number[] = []
    const dec: number[] = []
    for (let r = 0; r <= reps; r++) {
      let t = performance.now()
      if (codec === 'u8')
        out.set(pixels) // the agent sends the pixels it read
      else encodeInto(codec, dims, input, out, 0)
      const e = performance.now() - t
      t = performance.now()
      decodePayload(codec, dims, out, true)
      // u8: the edge then preprocesses the pixels (preprocess.ts)
      if (codec === 'u8') normalise(U8_PREPROCESSING, dims[1] ?? 1, pixels)
      const d = performance.now() - t
      if (r > 0) {
        enc.push(e)
        dec.push(d)
      }
    }
    encodeNs[codec] = (median(enc) * 1e6) / n
    decodeNs[codec] = (median(dec) * 1e6) / n
  }
  return { encodeNs, decodeNs, values: n, reps }
}

/**
 * Codecs offered where no agent announces its costs (`edgent plan`, `model decisions`): encoding
 * and decoding as measured on this machine, the device's encoding `deviceFactor` times slower.
 * undefined (f32 only) when nothing but f32 is asked.
 */
export function offlineCodecOptions(codecs: readonly Codec[] | undefined, maxDropPts: number | undefined, deviceFactor = 1): CodecOptions | undefined {
  if (!codecs || codecs.every((c) => c === 'f32')) return undefined
  const here = measureCodecCosts()
  const device = Object.fromEntries(Object.entries(here.encodeNs).map(([k, v]) => [k, v * deviceFactor]))
  return { codecs, maxDropPts: maxDropPts ?? DEFAULT_MAX_CODEC_DROP_PTS, cost: { device, edge: here.decodeNs } }
}
