/**
 * Codecs for the tensor that crosses the link (issue 18; the frame carries the codec, frame.ts):
 *
 *   f32    float32 little-endian, 4 bytes a value (exact; frame version 1, as before)
 *   f16    IEEE half precision, 2 bytes a value, round to nearest even (NaN and ±Inf kept)
 *   int8   affine, per tensor: q = clamp(round(v / scale) + zeroPoint, −128, 127), v ≈ (q − zeroPoint)·scale;
 *          8 bytes of parameters (scale float32, zero point int8, 3 bytes 0) then 1 byte a value
 *   int8c  the same per channel (axis 1 of a tensor of 3 or more dims, NCHW; per tensor otherwise):
 *          8 bytes of parameters a channel, then 1 byte a value
 *   u8     the raw image itself, 1 byte a pixel, for edge-only plans (deviceLayers 0): the edge does
 *          the model's preprocessing (exact: the same arithmetic, moved)
 *
 * Half-precision conversion is done here, bit for bit the same on every runtime (an agent on Node 22
 * has no Float16Array). Decoding checks the parameters (finite, positive scale; zero point in range)
 * and the payload's exact length before it allocates.
 */
import { UserError } from '../errors.js'

export const CODECS = ['f32', 'f16', 'int8', 'int8c', 'u8'] as const
export type Codec = (typeof CODECS)[number]
/** The frame's codec byte (frame version 2). */
export const CODEC_CODES: Record<Codec, number> = { f32: 1, f16: 2, int8: 3, int8c: 4, u8: 5 }
export const CODEC_BY_CODE: Record<number, Codec> = { 1: 'f32', 2: 'f16', 3: 'int8', 4: 'int8c', 5: 'u8' }
const PARAM_BYTES = 8
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** The codecs that change what the edge computes (f32 and u8 are exact): their accuracy is measured. */
export const LOSSY_CODECS = ['f16', 'int8', 'int8c'] as const satisfies readonly Codec[]
export type LossyCodec = (typeof LOSSY_CODECS)[number]

/**
 * The codec a plan's frames carry — the one rule the agent (encoding), the console (checking what
 * arrives) and planning (pinning) share: the plan's codec when the device sends an activation
 * (fewer device layers than the exit's path), f32 otherwise (a device-only frame only reports the
 * exit's scores). Absent: f32.
 */
export function frameCodec(codec: Codec | null | undefined, deviceLayers: number, pathLength: number): Codec {
  return deviceLayers < pathLength && codec ? codec : 'f32'
}

export function isCodec(x: unknown): x is Codec {
  return typeof x === 'string' && (CODECS as readonly string[]).includes(x)
}

/** The channels int8c quantises separately: dims[1] of a tensor of 3 or more dims (NCHW), else one (a vector has no channels). */
export function channelsOf(dims: readonly number[]): { channels: number; inner: number } {
  if (dims.length >= 3) return { channels: dims[1]!, inner: dims.slice(2).reduce((a, b) => a * b, 1) }
  return { channels: 1, inner: dims.reduce((a, b) => a * b, 1) }
}

/** The payload bytes a tensor of `dims` takes under a codec. */
export function payloadBytes(codec: Codec, dims: readonly number[]): number {
  const n = dims.reduce((a, b) => a * b, 1)
  switch (codec) {
    case 'f32':
      return 4 * n
    case 'f16':
      return 2 * n
    case 'int8':
      return PARAM_BYTES + n
    case 'int8c':
      return PARAM_BYTES * channelsOf(dims).channels + n
    case 'u8':
      return n
  }
}

// ------------------------------------------------------------------ half precision

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** float32 → binary16 bits, round to nearest even (what Float16Array does where it exists). */
export function toHalfBits(v: number): number {
  f32[0] = v
  const x = u32[0]!
  const sign = (x >>> 16) & 0x8000
  const e = (x >>> 23) & 0xff
  let mant = x & 0x7fffff
  if (e === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0)
  const exp = e - 127 + 15
  if (exp >= 0x1f) return sign | 0x7c00
  if (exp <= 0) {
    if (exp < -10) return sign
    mant |= 0x800000
    const shift = 14 - exp
    let half = mant >>> shift
    const rem = mant & ((1 << shift) - 1)
    const mid = 1 << (shift - 1)
    if (rem > mid || (rem === mid && half & 1)) half++
    return sign | half
  }
  let half = sign | (exp << 10) | (mant >>> 13)
  const rem = mant & 0x1fff
  // a carry out of the mantissa moves to the next exponent (or to Inf): still the right rounding
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++
  return half
}

let halfTable: Float32Array | null = null
/** binary16 bits → float32, through a 65,536-entry table made on first use (256 KiB). */
function halves(): Float32Array {
  if (halfTable) return halfTable
  const t = new Float32Array(65536)
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1
    const exp = (h >> 10) & 0x1f
    const mant = h & 0x3ff
    t[h] = exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? (mant ? Number.NaN : sign * Number.POSITIVE_INFINITY) : sign * (1 + mant / 1024) * 2 ** (exp - 15)
  }
  halfTable = t
  return t
}

export function fromHalfBits(h: number): number {
  return halves()[h & 0xffff]!
}

// ------------------------------------------------------------------ int8

interface Affine {
  scale: number
  zeroPoint: number
}

/** The affine parameters that map [min, max] (widened to hold 0) onto −128..127. */
function affineOf(min: number, max: number): Affine {
  const lo = Math.min(0, min)
  const hi = Math.max(0, max)
  const scale = hi > lo ? (hi - lo) / 255 : 1
  const zeroPoint = Math.max(-128, Math.min(127, Math.round(-128 - lo / scale)))
  return { scale: Math.fround(scale), zeroPoint }
}

function quantise(v: number, a: Affine): number {
  return Math.max(-128, Math.min(127, Math.round(v / a.scale) + a.zeroPoint))
}

function checkFinite(data: Float32Array, codec: Codec): void {
  for (let i = 0; i < data.length; i++)
    if (!Number.isFinite(data[i]!)) throw new UserError(`${codec}: the tensor holds ${data[i]} at index ${i}, which an int8 code cannot carry (use f32 or f16)`)
}

// ------------------------------------------------------------------ encode / decode

/** Writes `data` under `codec` into `out` at `offset` (which has payloadBytes(codec, dims) bytes free). */
export function encodeInto(codec: Codec, dims: readonly number[], data: Float32Array, out: Uint8Array, offset: number): void {
  const v = new DataView(out.buffer, out.byteOffset + offset, payloadBytes(codec, dims))
  const n = data.length
  if (codec === 'f32') {
    // a little-endian host's float32 bytes are the wire's: one copy
    if (LITTLE_ENDIAN_HOST) out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset)
    else for (let i = 0; i < n; i++) v.setFloat32(4 * i, data[i]!, true)
    return
  }
  if (codec === 'f16') {
    for (let i = 0; i < n; i++) v.setUint16(2 * i, toHalfBits(data[i]!), true)
    return
  }
  if (codec === 'u8') {
    for (let i = 0; i < n; i++) {
      const p = data[i]!
      if (!(Number.isInteger(p) && p >= 0 && p <= 255))
        throw new UserError(`u8: value ${p} at index ${i} is not a pixel (an integer 0..255): u8 carries the raw image only`)
      v.setUint8(i, p)
    }
    return
  }
  checkFinite(data, codec)
  const { channels, inner } = codec === 'int8' ? { channels: 1, inner: n } : channelsOf(dims)
  const outer = n / (channels * inner)
  const params: Affine[] = []
  for (let c = 0; c < channels; c++) {
    let min = Number.POSITIVE_INFINITY
    let max = Number.NEGATIVE_INFINITY
    for (let o = 0; o < outer; o++) {
      const base = (o * channels + c) * inner
      for (let i = 0; i < inner; i++) {
        const x = data[base + i]!
        if (x < min) min = x
        if (x > max) max = x
      }
    }
    const a = affineOf(min, max)
    params.push(a)
    v.setFloat32(PARAM_BYTES * c, a.scale, true)
    v.setInt8(PARAM_BYTES * c + 4, a.zeroPoint)
  }
  const body = PARAM_BYTES * channels
  for (let o = 0; o < outer; o++)
    for (let c = 0; c < channels; c++) {
      const a = params[c]!
      const base = (o * channels + c) * inner
      for (let i = 0; i < inner; i++) v.setInt8(body + base + i, quantise(data[base + i]!, a))
    }
}

/**
 * Reads a payload of `codec` for a tensor of `dims` (its length already checked against
 * payloadBytes): the parameters first (a scale must be finite and positive), then the values.
 * f32 aligned on 4 bytes is returned as a view; everything else in a new array.
 */
export function decodePayload(codec: Codec, dims: readonly number[], bytes: Uint8Array, littleEndianHost: boolean): Float32Array {
  const n = dims.reduce((a, b) => a * b, 1)
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (codec === 'f32') {
    if (littleEndianHost && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n)
    const out = new Float32Array(n)
    for (let i = 0; i < n; i++) out[i] = v.getFloat32(4 * i, true)
    return out
  }
  if (codec === 'f16') {
    const t = halves()
    const out = new Float32Array(n)
    for (let i = 0; i < n; i++) out[i] = t[v.getUint16(2 * i, true)]!
    return out
  }
  // the raw pixels' values (the edge preprocesses them: Frame.pixels)
  if (codec === 'u8') return Float32Array.from(bytes.subarray(0, n))
  const { channels, inner } = codec === 'int8' ? { channels: 1, inner: n } : channelsOf(dims)
  const params: Affine[] = []
  for (let c = 0; c < channels; c++) {
    const scale = v.getFloat32(PARAM_BYTES * c, true)
    const zeroPoint = v.getInt8(PARAM_BYTES * c + 4)
    if (!Number.isFinite(scale) || !(scale > 0))
      throw new UserError(`frame: ${codec} scale ${scale}${channels > 1 ? ` of channel ${c}` : ''} is not a finite positive number`)
    params.push({ scale, zeroPoint })
  }
  const outer = n / (channels * inner)
  const body = PARAM_BYTES * channels
  const out = new Float32Array(n)
  for (let o = 0; o < outer; o++)
    for (let c = 0; c < channels; c++) {
      const { scale, zeroPoint } = params[c]!
      const base = (o * channels + c) * inner
      for (let i = 0; i < inner; i++) out[base + i] = (v.getInt8(body + base + i) - zeroPoint) * scale
    }
  return out
}

/** Encoded and decoded again, as the edge would see it (tests, accuracy checks, the planner's measured codecs). */
export function roundTrip(codec: Codec, dims: readonly number[], data: Float32Array): Float32Array {
  const out = new Uint8Array(payloadBytes(codec, dims))
  encodeInto(codec, dims, data, out, 0)
  return decodePayload(codec, dims, out, true)
}
