import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CODECS, channelsOf, frameCodec, fromHalfBits, payloadBytes, roundTrip, toHalfBits } from '../../../src/shared/algorithms/codecs.js'
import { decodeFrame, encodeFrame, type FrameHeader } from '../../../src/shared/contracts/frame.js'

const header: FrameHeader = { requestId: 'r-1', planId: 'p-1', model: 'm', exit: 1, deviceLayers: 2, deviceMs: 1, sentAt: 1 }
const limits = { maxPayloadBytes: 1 << 20 }

describe('half precision', () => {
  it('rounds to nearest even exactly as the runtime’s Float16Array does, edge values included', () => {
    const F16 = (globalThis as { Float16Array?: new (n: number) => { [i: number]: number; buffer: ArrayBuffer } }).Float16Array
    expect(F16, 'Node 24 has Float16Array to check against').toBeDefined()
    const ref = new F16!(1)
    const bits = new Uint16Array(ref.buffer)
    const edge = [
      0,
      -0,
      1,
      -1,
      65504,
      65505,
      65519,
      65520,
      1e6,
      -1e6,
      2 ** -24,
      2 ** -25,
      2 ** -25 * 1.0001,
      3 * 2 ** -26,
      2 ** -14,
      2 ** -14 - 2 ** -25,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      0.1,
      1 / 3
    ]
    const check = (x: number) => {
      ref[0] = x
      expect(toHalfBits(x), String(x)).toBe(bits[0])
      expect(fromHalfBits(bits[0]!)).toBe(ref[0])
    }
    for (const x of edge) check(x)
    fc.assert(
      fc.property(fc.float({ noNaN: true }), (x) => check(x)),
      { numRuns: 5000 }
    )
    expect(Number.isNaN(fromHalfBits(toHalfBits(Number.NaN)))).toBe(true)
  })
})

describe('codecs', () => {
  const tensor = (dims: number[], seed: number, relu = false) =>
    Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => {
      const v = Math.fround(Math.sin(seed * 7.1 + i * 1.3) * (1 + (i % 5)) * 3)
      return relu ? Math.max(0, v) : v
    })

  it('sizes every payload (int8c: one parameter block per channel of an NCHW tensor)', () => {
    expect(CODECS.map((c) => payloadBytes(c, [1, 4, 3, 3]))).toEqual([144, 72, 8 + 36, 4 * 8 + 36, 36])
    expect(channelsOf([1, 4096])).toEqual({ channels: 1, inner: 4096 })
    expect(payloadBytes('int8c', [1, 4096])).toBe(8 + 4096)
  })

  it('keeps f16 within half a unit in the last place, and int8 within half a step of its scale (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }), fc.integer(), fc.boolean(), (dims, seed, relu) => {
        const x = tensor(dims, seed, relu)
        const h = roundTrip('f16', dims, x)
        for (let i = 0; i < x.length; i++) expect(Math.abs(h[i]! - x[i]!)).toBeLessThanOrEqual(Math.abs(x[i]!) * 2 ** -11 + 2 ** -25)
        const lo = Math.min(0, ...x)
        const hi = Math.max(0, ...x)
        const step = hi > lo ? (hi - lo) / 255 : 1
        const q = roundTrip('int8', dims, x)
        for (let i = 0; i < x.length; i++) expect(Math.abs(q[i]! - x[i]!)).toBeLessThanOrEqual(step / 2 + 1e-6 * (hi - lo + 1))
        // a ReLU's zeros stay exactly zero (0 is always representable)
        if (relu) for (let i = 0; i < x.length; i++) if (x[i] === 0) expect(q[i]).toBe(0)
        // per channel: each channel within half of its own step, never worse than per tensor's bound
        const c = roundTrip('int8c', dims, x)
        for (let i = 0; i < x.length; i++) expect(Math.abs(c[i]! - x[i]!)).toBeLessThanOrEqual(step / 2 + 1e-6 * (hi - lo + 1))
      }),
      { numRuns: 300 }
    )
  })

  it('carries every codec through a frame; f32 stays a version-1 frame, the others are version 2', () => {
    const dims = [1, 3, 2, 2]
    const x = tensor(dims, 3)
    for (const codec of CODECS.filter((c) => c !== 'u8')) {
      const b = encodeFrame(header, dims, x, codec)
      expect(b[4]).toBe(codec === 'f32' ? 1 : 2)
      const f = decodeFrame(b, limits)
      expect(f.codec).toBe(codec)
      expect(f.dims).toEqual(dims)
      expect(Array.from(f.data)).toEqual(Array.from(roundTrip(codec, dims, x)))
    }
  })

  it('carries a raw image as u8, one byte a pixel, and refuses anything that is not one', () => {
    const dims = [1, 1, 2, 3]
    const pixels = Uint8Array.of(0, 17, 128, 200, 254, 255)
    const f = decodeFrame(encodeFrame(header, dims, Float32Array.from(pixels), 'u8'), limits)
    expect(f.codec).toBe('u8')
    expect(Array.from(f.pixels!)).toEqual(Array.from(pixels))
    expect(Array.from(f.data)).toEqual(Array.from(pixels))
    expect(payloadBytes('u8', dims)).toBe(6)
    expect(() => encodeFrame(header, [1, 2], Float32Array.of(1, 0.5), 'u8')).toThrow('u8: value 0.5 at index 1 is not a pixel (an integer 0..255)')
    expect(() => encodeFrame(header, [1, 2], Float32Array.of(256, 0), 'u8')).toThrow('u8: value 256 at index 0 is not a pixel')
  })

  it('refuses a tensor int8 cannot carry, and a frame whose parameters are not a scale, before allocating the tensor', () => {
    expect(() => encodeFrame(header, [1, 2], Float32Array.of(1, Number.NaN), 'int8')).toThrow('int8: the tensor holds NaN at index 1')
    expect(() => encodeFrame(header, [1], Float32Array.of(1), 'int4' as never)).toThrow('frame: unknown codec "int4" (known: f32, f16, int8, int8c, u8)')
    const dims = [1, 2, 2, 2]
    const at = (codec: 'int8' | 'int8c') => {
      const b = encodeFrame(header, dims, tensor(dims, 1), codec)
      return { b, v: new DataView(b.buffer), body: b.length - payloadBytes(codec, dims) }
    }
    for (const [scale, name] of [
      [Number.NaN, 'NaN'],
      [0, '0'],
      [-1, '-1'],
      [Number.POSITIVE_INFINITY, 'Infinity']
    ] as const) {
      const { b, v, body } = at('int8')
      v.setFloat32(body, scale, true)
      expect(() => decodeFrame(b, limits)).toThrow(`frame: int8 scale ${name} is not a finite positive number`)
      const c = at('int8c')
      c.v.setFloat32(c.body + 8, scale, true)
      expect(() => decodeFrame(c.b, limits)).toThrow(`frame: int8c scale ${name} of channel 1 is not a finite positive number`)
    }
    // an int8 payload one byte short of what its dims need
    const { b } = at('int8')
    const v = new DataView(b.buffer)
    v.setUint32(12, v.getUint32(12) - 1)
    expect(() => decodeFrame(b.subarray(0, b.length - 1), limits)).toThrow('frame: dims [1, 2, 2, 2] need 16 payload bytes under int8, the frame declares 15')
  })

  it('never throws anything but a clear error on random version-2 frames', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 120 }), (code, rest) => {
        const b = new Uint8Array(16 + rest.length)
        const v = new DataView(b.buffer)
        v.setUint32(0, 0x45444741)
        v.setUint8(4, 2)
        v.setUint8(5, code)
        b.set(rest, 6)
        try {
          decodeFrame(b, limits)
        } catch (e) {
          expect((e as Error).name).toBe('UserError')
          expect((e as Error).message).toMatch(/^frame/)
        }
      }),
      { numRuns: 2000 }
    )
  })
})

describe('frameCodec, the one rule for what a plan’s frames carry', () => {
  it('is the plan’s codec while the device sends an activation, and f32 for a device-only plan or none', () => {
    expect(frameCodec('int8', 3, 8)).toBe('int8')
    expect(frameCodec('u8', 0, 8)).toBe('u8')
    expect(frameCodec('int8', 8, 8)).toBe('f32') // device-only: only the exit's scores
    expect(frameCodec(undefined, 3, 8)).toBe('f32')
    expect(frameCodec(null, 0, 8)).toBe('f32')
  })
})
