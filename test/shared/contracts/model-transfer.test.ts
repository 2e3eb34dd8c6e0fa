/**
 * The model chunk frame (src/shared/contracts/model-transfer.ts): it round-trips, and a truncated, padded,
 * foreign or oversized frame, or one with a bad header, is refused with a message naming what is wrong.
 */
import { describe, expect, it } from 'vitest'
import { FetchSchema, MAX_CHUNK_BYTES, cacheName, decodeChunk, encodeChunk } from '../../../src/shared/contracts/model-transfer.js'

const sha = 'ab'.repeat(32)
const header = { transfer: 'f1', model: 'resnet-tiny', sha256: sha, file: 'model.onnx', offset: 4096, totalBytes: 10_000, chunkSha256: 'cd'.repeat(32) }

describe('model chunk frame', () => {
  it('round-trips a chunk and a package', () => {
    const data = Uint8Array.from({ length: 1000 }, (_, i) => i % 251)
    const c = decodeChunk(encodeChunk(header, data))
    expect(c.header).toEqual(header)
    expect([...c.data]).toEqual([...data])
    const pkg = { model: 'resnet-tiny', sha256: sha, files: [{ name: 'model.onnx', bytes: 10_000, sha256: sha }] }
    expect(decodeChunk(encodeChunk({ transfer: 'f2', model: 'resnet-tiny', sha256: sha, offset: 0, package: pkg })).header.package).toEqual(pkg)
    expect(cacheName('resnet-tiny', sha)).toBe('resnet-tiny-abababababab')
  })

  it('refuses truncated, padded, foreign and malformed frames, naming the problem', () => {
    const good = encodeChunk(header, new Uint8Array(100))
    expect(() => decodeChunk(good.subarray(0, good.length - 1))).toThrow(/declares \d+ bytes, got \d+/)
    expect(() => decodeChunk(new Uint8Array([...good, 0]))).toThrow(/declares \d+ bytes, got \d+/)
    expect(() => decodeChunk(good.subarray(0, 10))).toThrow(/shorter than its 16-byte prefix/)
    const foreign = good.slice()
    foreign[0] = 0x58
    expect(() => decodeChunk(foreign)).toThrow(/bad magic/)
    const v2 = good.slice()
    v2[4] = 2
    expect(() => decodeChunk(v2)).toThrow(/version 2 is not supported/)
    const huge = good.slice()
    new DataView(huge.buffer).setUint32(12, MAX_CHUNK_BYTES + 1)
    expect(() => decodeChunk(huge)).toThrow(/over 1048576/)
    const path = encodeChunk({ ...header, file: '../etc/passwd' })
    expect(() => decodeChunk(path)).toThrow(/model chunk header: file: /)
    const notJson = good.slice()
    notJson[16] = 0x7b + 1
    expect(() => decodeChunk(notJson)).toThrow(/header is not UTF-8 JSON/)
  })

  it('fetch requests take plain file names and chunk sizes up to 1 MiB', () => {
    expect(FetchSchema.parse({ transfer: 't', model: 'm', sha256: sha }).length).toBe(MAX_CHUNK_BYTES)
    expect(FetchSchema.safeParse({ transfer: 't', model: 'm', sha256: sha, file: '../model.onnx' }).success).toBe(false)
    expect(FetchSchema.safeParse({ transfer: 't', model: 'm', sha256: sha, length: MAX_CHUNK_BYTES + 1 }).success).toBe(false)
    expect(FetchSchema.safeParse({ transfer: 't', model: 'm', sha256: 'AB'.repeat(32) }).success).toBe(false)
  })
})
