import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { decodeFrame, encodeFrame, MAX_HEADER_BYTES, type FrameHeader } from '../../../src/shared/contracts/frame.js'

const header: FrameHeader = {
  requestId: 'r-1',
  planId: 'p-1',
  model: 'branchy-alexnet',
  exit: 3,
  deviceLayers: 4,
  sample: 7,
  label: 2,
  deviceMs: 1.5,
  sentAt: 1_700_000_000_000
}
const limits = { maxPayloadBytes: 1 << 20 }
// fixed header 16 + 3 dims × 4 + JSON header + 6 floats × 4
const FRAME_BYTES = 16 + 12 + new TextEncoder().encode(JSON.stringify(header)).length + 24

function frame(dims = [1, 2, 3], data = Float32Array.from([1, -2, 3.5, 4, 5, 6])): Uint8Array {
  return encodeFrame(header, dims, data)
}

describe('activation frame codec', () => {
  it('round-trips header, dims and float32 data', () => {
    const f = decodeFrame(frame(), limits)
    expect(f.header).toEqual(header)
    expect(f.dims).toEqual([1, 2, 3])
    expect(Array.from(f.data)).toEqual([1, -2, 3.5, 4, 5, 6])
  })

  it('round-trips any tensor (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 }), fc.integer(), (dims, seed) => {
        const n = dims.reduce((a, b) => a * b, 1)
        const data = Float32Array.from({ length: n }, (_, i) => Math.fround(Math.sin(seed + i) * 1e3))
        const f = decodeFrame(encodeFrame(header, dims, data), limits)
        expect(f.dims).toEqual(dims)
        expect(Array.from(f.data)).toEqual(Array.from(data))
      }),
      { numRuns: 200 }
    )
  })

  it('decodes from an unaligned buffer', () => {
    const bytes = frame()
    const shifted = new Uint8Array(bytes.length + 1)
    shifted.set(bytes, 1)
    expect(Array.from(decodeFrame(shifted.subarray(1), limits).data)).toEqual([1, -2, 3.5, 4, 5, 6])
  })

  const corrupt: [string, (b: Uint8Array, v: DataView) => Uint8Array, string][] = [
    ['a truncated frame', (b) => b.subarray(0, b.length - 1), `frame: declares ${FRAME_BYTES} bytes in all but ${FRAME_BYTES - 1} arrived`],
    ['a frame shorter than the fixed header', (b) => b.subarray(0, 10), 'frame: 10 bytes, shorter than the 16-byte fixed header'],
    ['bad magic', (b, v) => (v.setUint32(0, 0x12345678), b), 'frame: bad magic (expected "EDGA")'],
    ['an unknown version', (b, v) => (v.setUint8(4, 9), b), 'frame: version 9 is not supported (expected 1 or 2)'],
    ['a wrong dtype', (b, v) => (v.setUint8(5, 7), b), 'frame: dtype code 7 is not supported by version 1 (expected 1, float32)'],
    [
      'an unknown codec (version 2)',
      (b, v) => (v.setUint8(4, 2), v.setUint8(5, 9), b),
      'frame: codec 9 is not supported (known: 1 f32, 2 f16, 3 int8, 4 int8c, 5 u8)'
    ],
    [
      'an f16 frame whose payload is sized for f32',
      (b, v) => (v.setUint8(4, 2), v.setUint8(5, 2), b),
      'frame: dims [1, 2, 3] need 12 payload bytes under f16, the frame declares 24'
    ],
    ['too many dims', (b, v) => (v.setUint8(6, 200), b), 'frame: ndim 200 is out of range 1..8'],
    ['wrong dims', (b, v) => (v.setUint32(20, 5), b), 'frame: dims [1, 5, 3] need 60 payload bytes, the frame declares 24'],
    ['a zero dim', (b, v) => (v.setUint32(20, 0), b), 'frame: dim 1 is 0'],
    ['a huge declared payload', (b, v) => (v.setUint32(12, 0xffffffff), b), 'frame: declared payload 4294967295 bytes exceeds the 1048576-byte limit'],
    [
      'a huge declared header',
      (b, v) => (v.setUint32(8, MAX_HEADER_BYTES + 1), b),
      `frame: header length ${MAX_HEADER_BYTES + 1} exceeds ${MAX_HEADER_BYTES} bytes`
    ],
    ['a header that is not JSON', (b) => ((b[28] = 0xff), b), 'frame: header is not UTF-8 JSON']
  ]
  for (const [what, mutate, message] of corrupt) {
    it(`rejects ${what}`, () => {
      const b = frame()
      expect(b.length).toBe(FRAME_BYTES)
      const m = mutate(b, new DataView(b.buffer, b.byteOffset, b.byteLength))
      expect(() => decodeFrame(m, limits)).toThrow(message)
    })
  }

  it('rejects a header missing its fields, naming the field', () => {
    const b = encodeFrame({ ...header, planId: '' } as FrameHeader, [1], Float32Array.of(1))
    expect(() => decodeFrame(b, limits)).toThrow(/^frame header: planId: /)
  })

  it('never throws anything but a clear error on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeFrame(bytes, limits)
        } catch (e) {
          expect((e as Error).name).toBe('UserError')
          expect((e as Error).message).toMatch(/^frame/)
        }
      }),
      { numRuns: 500 }
    )
  })
})
