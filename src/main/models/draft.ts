/**
 * The first half of a model import, run in the admin worker (runtime/off-thread.ts) so that neither
 * a huge graph nor a huge declared input reaches the thread serving MQTT: the file is read and
 * hashed, its graph parsed and analysed (linear-time passes, src/shared/onnx/onnx-graph.ts), its
 * input shape settled and capped, every tensor's shape probed by one onnxruntime run, and the
 * manifest derived. The bytes that were hashed are the ones written into the import's folder.
 */
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { FieldError, UserError } from '../../shared/errors.js'
import { product } from '../../shared/contracts/manifest.js'
import { deriveManifest, type ImportOptions, type ManifestDraft } from '../../shared/onnx/model-import.js'
import { indexGraph, refusedNode, withOutputs } from '../../shared/onnx/onnx-graph.js'
import { graphInputDims, parseOnnx } from '../../shared/onnx/onnx-slicer.js'
import { probeOutputs } from '../runtime/ort.js'

/**
 * Largest input an imported model may declare, elements (64 MiB of float32: 3×2048×2048 fits; the
 * probe holds the input and every activation at once, so a 16384² input would cost gigabytes).
 */
export const MAX_INPUT_ELEMENTS = 2 ** 24

export interface DraftArgs {
  file: string
  /** The file's name as the user knows it. */
  name: string
  /** Where the bytes that were hashed are written (the import's folder). */
  copyTo: string
  inputShape?: number[]
  options: Omit<ImportOptions, 'onnxBytes' | 'sha256' | 'inputShape'>
}

export interface DraftResult {
  draft: ManifestDraft
  inputShape: number[]
}

const shown = (dims: readonly number[]) => dims.map((d) => (d < 0 ? '?' : d)).join(', ')

/** The input shape: the graph's, or the one given where the graph leaves a dimension open. */
function settleInputShape(declared: number[], given: number[] | undefined, input: string): number[] {
  let shape = declared
  if (given) {
    if (declared.length && (given.length !== declared.length || declared.some((d, i) => d !== -1 && d !== given[i])))
      throw new FieldError(`import: {inputShape} ${given.join('x')} does not fit the graph's input "${input}" [${shown(declared)}]`)
    shape = given
  } else if (!declared.length || declared.some((d) => d < 0)) {
    throw new FieldError(`import: input "${input}" has a dynamic dimension [${shown(declared)}]: give its shape with {inputShape}, e.g. 1x3x224x224`)
  }
  if (shape[0] !== 1) throw new UserError(`import: the input's batch dimension must be 1, got ${shape.join('x')}`)
  const n = product(shape)
  if (n > MAX_INPUT_ELEMENTS)
    throw new UserError(
      `import: the input ${shape.join('x')} has ${n.toLocaleString('en')} elements, over the cap of ${MAX_INPUT_ELEMENTS.toLocaleString('en')} (64 MiB of float32)`
    )
  return shape
}

export async function draftImport(a: DraftArgs): Promise<DraftResult> {
  const bytes = new Uint8Array(readFileSync(a.file))
  const model = parseOnnx(bytes, a.name)
  const ix = indexGraph(model, a.name)
  // A dimension that is not a positive fixed value is dynamic.
  const declared = graphInputDims(model, ix.input).map((d) => (d > 0 ? d : -1))
  const inputShape = settleInputShape(declared, a.inputShape, ix.input)
  // Every activation tensor's shape from one run (optimisation off, so none is fused away).
  const activations = model.graph!.node.flatMap((n) => n.output.filter((t) => t && !ix.constants.has(t)))
  const refused = refusedNode(ix)
  if (refused) throw new UserError(`${a.name}: ${refused}`)
  // onnxruntime's own refusal (an op it does not have, a graph it cannot load) names what is wrong.
  const shapes = await probeOutputs(withOutputs(model, activations), a.name, new Float32Array(product(inputShape)).fill(0.5), inputShape)
  const sha256 = createHash('sha256').update(bytes).digest('hex')
  const draft = deriveManifest(model, shapes, { ...a.options, onnxBytes: bytes.length, sha256, inputShape }, a.name)
  writeFileSync(a.copyTo, bytes)
  return { draft, inputShape }
}
