/**
 * The MNIST idx format (also Fashion-MNIST's): magic 0x0000, a type byte (0x08 = unsigned byte), the
 * number of dimensions, the big-endian uint32 sizes, then the data. Only unsigned bytes are read.
 */
import { UserError } from './errors.js'

export interface IdxArray {
  dims: number[]
  data: Uint8Array
}

export function parseIdx(bytes: Uint8Array, source = 'idx'): IdxArray {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) throw new UserError(`${source}: not an idx file (bad magic number)`)
  if (bytes[2] !== 0x08) throw new UserError(`${source}: idx element type 0x${bytes[2]!.toString(16)} is not supported (expected 0x08, unsigned bytes)`)
  const ndim = bytes[3]!
  if (ndim < 1 || bytes.length < 4 + 4 * ndim) throw new UserError(`${source}: truncated idx header`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const dims = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i, false))
  const count = dims.reduce((a, b) => a * b, 1)
  const offset = 4 + 4 * ndim
  if (bytes.length - offset !== count) {
    throw new UserError(`${source}: idx header declares ${dims.join('×')} = ${count} bytes of data but the file holds ${bytes.length - offset}`)
  }
  return { dims, data: bytes.subarray(offset) }
}

/** Images [n, h, w] (or [n, c, h, w]) and labels [n] as a labelled sample set. */
export function pairImagesLabels(
  images: IdxArray,
  labels: IdxArray,
  source = 'samples'
): { count: number; imageElements: number; images: Uint8Array; labels: Uint8Array } {
  const n = images.dims[0]!
  if (labels.dims.length !== 1) throw new UserError(`${source}: labels must be one-dimensional, got ${labels.dims.join('×')}`)
  if (labels.dims[0] !== n) throw new UserError(`${source}: ${n} images but ${labels.dims[0]} labels`)
  return { count: n, imageElements: images.dims.slice(1).reduce((a, b) => a * b, 1), images: images.data, labels: labels.data }
}
