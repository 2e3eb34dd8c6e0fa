/**
 * A segment is a contiguous range [from, to) of an exit's path (0-based layer indices), named by its
 * boundary tensors: a device prefix is [0, p), an edge suffix [p, N), a single layer [j, j+1).
 */
import { UserError } from '../../shared/errors.js'
import { exitPath, type Manifest } from '../../shared/contracts/manifest.js'
import type { BoundaryTensor } from '../../shared/onnx/onnx-slicer.js'

export interface SegmentRef {
  exit: number
  from: number
  to: number
}

export interface SegmentBounds {
  input: BoundaryTensor
  output: BoundaryTensor
  /** Layer ids in the segment. */
  layers: string[]
}

export function segmentBounds(m: Manifest, ref: SegmentRef): SegmentBounds {
  const path = exitPath(m, ref.exit)
  if (!Number.isInteger(ref.from) || !Number.isInteger(ref.to) || ref.from < 0 || ref.to > path.length || ref.from >= ref.to) {
    throw new UserError(`model ${m.id} exit ${ref.exit}: segment [${ref.from}, ${ref.to}) is not a non-empty range of its ${path.length} layers`)
  }
  const first = path[ref.from]!
  const last = path[ref.to - 1]!
  return {
    input: { name: first.input, dims: first.inputShape },
    output: { name: last.output, dims: last.outputShape },
    layers: path.slice(ref.from, ref.to).map((l) => l.id)
  }
}
