/**
 * The MNIST idx format (also Fashion-MNIST's): magic 0x0000, a type byte (0x08 = unsigned byte,
 * 0x0C = big-endian int32), the number of dimensions, the big-endian uint32 sizes, then the data.
 * Images are unsigned bytes; labels are bytes or int32 (more than 256 classes).
 */
import { UserError } from '../errors.js'

export interface IdxArray {
  dims: number[]
  data: Uint8Array | Int32Array
}

export function parseIdx(bytes: Uint8Array, source = 'idx'): IdxArray {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) throw new UserError(`${source}: not an idx file (bad magic number)`)
  if (bytes[2] !== 0x08 && bytes[2] !== 0x0c)
    throw new UserError(`${source}: idx element type 0x${bytes[2]!.toString(16)} is not supported (expected 0x08, unsigned bytes, or 0x0c, int32)`)
  const width = bytes[2] === 0x0c ? 4 : 1
  const ndim = bytes[3]!
  if (ndim < 1 || bytes.length < 4 + 4 * ndim) throw new UserError(`${source}: truncated idx header`)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const dims = Array.from({ length: ndim }, (_, i) => view.getUint32(4 + 4 * i, false))
  const count = dims.reduce((a, b) => a * b, 1)
  const offset = 4 + 4 * ndim
  if (bytes.length - offset !== count * width) {
    throw new UserError(`${source}: idx header declares ${dims.join('×')} = ${count * width} bytes of data but the file holds ${bytes.length - offset}`)
  }
  if (width === 1) return { dims, data: bytes.subarray(offset) }
  const data = new Int32Array(count)
  for (let i = 0; i < count; i++) data[i] = view.getInt32(offset + 4 * i, false)
  return { dims, data }
}

/** Images [n, h, w] (or [n, c, h, w]) and labels [n] as a labelled sample set. */
export function pairImagesLabels(
  images: IdxArray,
  labels: IdxArray,
  source = 'samples'
): { count: number; imageElements: number; images: Uint8Array; labels: Uint8Array | Int32Array } {
  const n = images.dims[0]!
  if (!(images.data instanceof Uint8Array)) throw new UserError(`${source}: images must be unsigned bytes (idx type 0x08)`)
  if (labels.dims.length !== 1) throw new UserError(`${source}: labels must be one-dimensional, got ${labels.dims.join('×')}`)
  if (labels.dims[0] !== n) throw new UserError(`${source}: ${n} images but ${labels.dims[0]} labels`)
  const imagesData = images.data
  return { count: n, imageElements: images.dims.slice(1).reduce((a, b) => a * b, 1), images: imagesData, labels: labels.data }
}
