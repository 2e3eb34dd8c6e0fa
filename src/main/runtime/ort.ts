/**
 * The one module that imports onnxruntime-node (as transformers.js keeps ORT behind one backend
 * module). Runs inside the executor's worker thread: `run()` occupies the thread it is called on.
 * No bytes reach onnxruntime with ONNX external data in them (onnx-slicer.ts, refuseExternalData):
 * it would read the named file relative to the working directory.
 */
import * as ort from 'onnxruntime-node'
import { UserError } from '../../shared/errors.js'
import { refuseExternalDataIn } from '../../shared/onnx/onnx-slicer.js'
import type { ProbedShape } from '../../shared/onnx/model-import.js'

export interface SessionOptions {
  /** Threads for one operator; 1 keeps timings stable on a shared machine. */
  intraOpThreads?: number
  /** ORT graph optimisation (fuses Conv+Relu, drops Dropout); on by default, as deployed. */
  optimize?: boolean
}

export interface TensorOut {
  data: Float32Array
  dims: number[]
}

export const ORT_VERSION: string = (ort.env as { versions?: { node?: string } }).versions?.node ?? 'unknown'

export class OrtSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly label: string,
    readonly inputName: string,
    readonly inputDims: readonly number[],
    readonly outputName: string
  ) {}

  static async open(bytes: Uint8Array, label: string, inputDims: readonly number[], opts: SessionOptions = {}): Promise<OrtSession> {
    refuseExternalDataIn(bytes, label)
    let session: ort.InferenceSession
    try {
      session = await ort.InferenceSession.create(bytes, {
        graphOptimizationLevel: opts.optimize === false ? 'disabled' : 'all',
        intraOpNumThreads: opts.intraOpThreads ?? 1,
        interOpNumThreads: 1,
        executionMode: 'sequential'
      })
    } catch (err) {
      throw new UserError(`${label}: onnxruntime cannot load the graph (${(err as Error).message.split('\n')[0]})`)
    }
    const [inputName] = session.inputNames
    const [outputName] = session.outputNames
    if (!inputName || !outputName || session.inputNames.length !== 1 || session.outputNames.length !== 1) {
      await session.release()
      throw new UserError(
        `${label}: expected one input and one output, got inputs [${session.inputNames.join(', ')}] and outputs [${session.outputNames.join(', ')}]`
      )
    }
    return new OrtSession(session, label, inputName, inputDims, outputName)
  }

  /** Runs the graph on one float32 tensor; the error names the input's expected type and dims. */
  async run(data: unknown, dims: readonly number[] = this.inputDims): Promise<TensorOut> {
    if (!(data instanceof Float32Array)) {
      const kind = data === null || data === undefined ? String(data) : ((data as object).constructor?.name ?? typeof data)
      throw new UserError(`${this.label}: input "${this.inputName}" must be float32 [${this.inputDims.join(', ')}], got ${kind}`)
    }
    const expected = this.inputDims.reduce((a, b) => a * b, 1)
    if (dims.length !== this.inputDims.length || dims.some((d, i) => d !== this.inputDims[i]) || data.length !== expected) {
      throw new UserError(
        `${this.label}: input "${this.inputName}" must be float32 [${this.inputDims.join(', ')}] (${expected} values), got [${dims.join(', ')}] with ${data.length} values`
      )
    }
    const out = await this.session.run({ [this.inputName]: new ort.Tensor('float32', data, [...dims]) })
    const t = out[this.outputName]!
    return { data: t.data as Float32Array, dims: t.dims.map(Number) }
  }

  async release(): Promise<void> {
    await this.session.release()
  }
}

/**
 * Runs a whole model once on `input` with graph optimisation off (so that no tensor is fused away)
 * and returns every graph output's dims and element type: the import's shape discovery, on a model
 * whose intermediate tensors were made outputs (onnx-graph.ts, withOutputs).
 */
export async function probeOutputs(bytes: Uint8Array, label: string, input: Float32Array, inputDims: readonly number[]): Promise<Record<string, ProbedShape>> {
  refuseExternalDataIn(bytes, label)
  let session: ort.InferenceSession
  try {
    session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1, interOpNumThreads: 1 })
  } catch (err) {
    throw new UserError(`${label}: onnxruntime cannot load the graph (${(err as Error).message.split('\n')[0]})`)
  }
  try {
    const [inputName] = session.inputNames
    if (!inputName || session.inputNames.length !== 1) throw new UserError(`${label}: expected one input, got [${session.inputNames.join(', ')}]`)
    let out: ort.InferenceSession.OnnxValueMapType
    try {
      out = await session.run({ [inputName]: new ort.Tensor('float32', input, [...inputDims]) })
    } catch (err) {
      throw new UserError(`${label}: onnxruntime cannot run the graph on a float32 [${inputDims.join(', ')}] input (${(err as Error).message.split('\n')[0]})`)
    }
    const result: Record<string, ProbedShape> = {}
    for (const [name, t] of Object.entries(out)) result[name] = { dims: (t as ort.Tensor).dims.map(Number), type: (t as ort.Tensor).type }
    return result
  } finally {
    await session.release()
  }
}
