/**
 * Graph analysis of an ONNX classifier, chain or DAG, for import: its exits (every graph output),
 * each exit's cut points, and the layers between them.
 *
 * A tensor T on an exit's path is a **cut point** when the rest of the path needs nothing but T
 * (initializers and constants aside): computing the exit's output with T given never reaches the
 * graph input. The graph input and the exit's output are cut points; the others are totally ordered
 * by their ancestry, and the nodes between two consecutive cut points form one manifest layer — a
 * single op in a chain, a whole residual or inception block in a DAG. Equivalent to the tensors that
 * every input → output path of the data-flow graph passes through (its single-tensor separators).
 */
import { clone, create, toBinary } from '@bufbuild/protobuf'
import { ModelProtoSchema, ValueInfoProtoSchema, type ModelProto, type NodeProto } from 'onnx-buf'
import { UserError } from '../errors.js'

/**
 * Ops with a model of their own (the paper's types, today's CNN ops, and the exports' plumbing).
 * Any other op onnxruntime runs imports too, priced by the generic model (src/shared/algorithms/latency.ts).
 */
export const SUPPORTED_OPS = new Set([
  'Conv',
  'BatchNormalization',
  'Relu',
  'Clip',
  'HardSwish',
  'HardSigmoid',
  'Sigmoid',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'Add',
  'Mul',
  'Concat',
  'Flatten',
  'Reshape',
  'Gemm',
  'MatMul',
  'Dropout',
  'LRN',
  'Softmax',
  'Identity',
  'Constant',
  'Shape',
  'Gather',
  'Unsqueeze',
  'Squeeze',
  'Transpose'
])

export interface GraphIndex {
  nodes: readonly NodeProto[]
  /** The producing node of every computed tensor. */
  producer: Map<string, number>
  initializers: Set<string>
  /** The one graph input that is not an initializer (the image). */
  input: string
  /** Tensors that do not depend on the input (initializers, Constant outputs, what is computed from them only). */
  constants: Set<string>
  outputs: string[]
}

/** Indexes a graph; a UserError when it has no single image input. */
export function indexGraph(model: ModelProto, source = 'model.onnx'): GraphIndex {
  const g = model.graph
  if (!g || g.node.length === 0) throw new UserError(`${source}: the ONNX model has no graph nodes`)
  const initializers = new Set(g.initializer.map((t) => t.name))
  const inputs = g.input.map((v) => v.name).filter((n) => !initializers.has(n))
  if (inputs.length !== 1) throw new UserError(`${source}: expected one image input, the graph has ${inputs.length} (${inputs.join(', ') || 'none'})`)
  const producer = new Map<string, number>()
  for (const [i, n] of g.node.entries()) for (const o of n.output) if (o) producer.set(o, i)
  // ONNX requires nodes in topological order, so one pass finds what is constant.
  const constants = new Set(initializers)
  for (const n of g.node) if (n.input.every((t) => t === '' || constants.has(t))) for (const o of n.output) constants.add(o)
  return { nodes: g.node, producer, initializers, input: inputs[0]!, constants, outputs: g.output.map((v) => v.name) }
}

/**
 * The nodes needed to compute `output` when `given` is provided (and initializers), in graph order;
 * `leak` is true when that needs the graph input (or another tensor nobody computes) besides `given`.
 */
export function closure(ix: GraphIndex, output: string, given: string): { nodes: number[]; leak: boolean } {
  const keep = new Set<number>()
  const seen = new Set<string>()
  const stack = [output]
  let leak = false
  while (stack.length) {
    const t = stack.pop()!
    if (t === '' || t === given || seen.has(t) || ix.initializers.has(t)) continue
    seen.add(t)
    const p = ix.producer.get(t)
    if (p === undefined) {
      leak = true
      continue
    }
    keep.add(p)
    for (const i of ix.nodes[p]!.input) stack.push(i)
  }
  return { nodes: [...keep].sort((a, b) => a - b), leak }
}

export interface CutLayer {
  /** The cut tensor the layer reads, and the one it writes. */
  input: string
  output: string
  /** Its nodes (indices into the graph, in graph order), constants' producers excluded. */
  nodes: number[]
}

export interface ExitAnalysis {
  output: string
  /** Cut tensors from the input to the output, in order. */
  cuts: string[]
  layers: CutLayer[]
}

/**
 * An exit's cut points and layers, in time linear in the graph. The path's tensors and nodes are laid
 * out in the graph's (topological) order, each node followed by its outputs; a tensor is a cut point
 * exactly when no edge of the path jumps over its position (an edge a → b with a before it and b
 * after it is a way around it, and a path without such a way must pass it, since positions only grow
 * along a path). The coverage of every position by jumping edges is one prefix sum.
 */
export function analyseExit(ix: GraphIndex, output: string): ExitAnalysis {
  const path = closure(ix, output, ix.input)
  if (path.leak) throw new UserError(`output "${output}" is not computed from the input "${ix.input}" alone`)
  const active = (i: number) => ix.nodes[i]!.output.some((o) => o && !ix.constants.has(o))
  const onPath = path.nodes.filter(active)
  // The path's tensors: the input and the activations its nodes compute that the exit needs.
  const needed = new Set<string>([output])
  for (let k = onPath.length - 1; k >= 0; k--) {
    const n = ix.nodes[onPath[k]!]!
    if (!n.output.some((o) => needed.has(o))) continue
    for (const t of n.input) if (t && !ix.constants.has(t)) needed.add(t)
  }
  const pos = new Map<string, number>([[ix.input, 0]])
  const nodePos: number[] = []
  let next = 1
  for (const i of onPath) {
    nodePos.push(next++)
    for (const o of ix.nodes[i]!.output) if (o && needed.has(o) && !pos.has(o)) pos.set(o, next++)
  }
  // Coverage of each position by edges jumping over it (a difference array, then its prefix sum).
  const cover = new Int32Array(next + 1)
  const jump = (a: number, b: number) => {
    if (b - a > 1) {
      cover[a + 1]!++
      cover[b]!--
    }
  }
  for (const [k, i] of onPath.entries()) {
    const n = ix.nodes[i]!
    for (const t of n.input) {
      const p = t ? pos.get(t) : undefined
      if (p !== undefined) jump(p, nodePos[k]!)
    }
    for (const o of n.output) {
      const p = o ? pos.get(o) : undefined
      if (p !== undefined && p > nodePos[k]!) jump(nodePos[k]!, p)
    }
  }
  for (let p = 1; p <= next; p++) cover[p]! += cover[p - 1]!
  const cuts = [...pos].filter(([t, p]) => t === ix.input || t === output || cover[p] === 0).sort((a, b) => a[1] - b[1])
  const end = pos.get(output)!
  const layers: CutLayer[] = []
  let k = 0
  for (let c = 1; c < cuts.length; c++) {
    const [from] = cuts[c - 1]!
    const [to, at] = cuts[c]!
    const nodes: number[] = []
    while (k < onPath.length && nodePos[k]! < at) {
      if (nodePos[k]! < end) nodes.push(onPath[k]!)
      k++
    }
    layers.push({ input: from, output: to, nodes })
  }
  return { output, cuts: cuts.map(([t]) => t), layers }
}

/**
 * The nodes computing activations on some exit's path whose op is not supported, each with a message
 * naming the node, its op and where it sits.
 */
export function checkOps(ix: GraphIndex, exits: readonly ExitAnalysis[], accepted: ReadonlySet<string> = SUPPORTED_OPS): { node: number; message: string }[] {
  const found = new Map<number, string>()
  for (const e of exits) {
    for (const [j, l] of e.layers.entries()) {
      for (const i of l.nodes) {
        const n = ix.nodes[i]!
        if ((accepted.has(n.opType) && (n.domain === '' || n.domain === 'ai.onnx')) || found.has(i)) continue
        found.set(
          i,
          `node "${n.name || `#${i}`}" (op ${n.opType}${n.domain ? `, domain ${n.domain}` : ''}) in layer ${j + 1} of the path to "${e.output}", between "${l.input}" and "${l.output}"`
        )
      }
    }
  }
  return [...found].map(([node, message]) => ({ node, message }))
}

/** Ops with a graph inside (control flow): a path through them depends on the data, so they cannot be cut or priced. */
export const CONTROL_FLOW_OPS = new Set(['If', 'Loop', 'Scan', 'SequenceMap'])

/**
 * The first node of the graph that an import refuses whatever onnxruntime does with it: dynamic
 * control flow (an op holding a subgraph), named with its op and the remedy.
 */
export function refusedNode(ix: GraphIndex): string | undefined {
  for (const [i, n] of ix.nodes.entries()) {
    if (CONTROL_FLOW_OPS.has(n.opType) || n.attribute.some((a) => a.g || a.graphs.length))
      return `node "${n.name || `#${i}`}" (op ${n.opType}) is dynamic control flow: the layers it runs depend on the data, so it can be neither cut nor priced (export the model traced, without data-dependent branches or loops)`
  }
  return undefined
}

/** The op mix of a layer: op type → count. */
export function opMix(ix: GraphIndex, layer: CutLayer): Record<string, number> {
  const mix: Record<string, number> = {}
  for (const i of layer.nodes) {
    const op = ix.nodes[i]!.opType
    mix[op] = (mix[op] ?? 0) + 1
  }
  return mix
}

/** The model with every named tensor added as a graph output (untyped: onnxruntime infers), serialised. */
export function withOutputs(model: ModelProto, names: readonly string[]): Uint8Array {
  const copy = clone(ModelProtoSchema, model)
  const have = new Set(copy.graph!.output.map((o) => o.name))
  for (const n of names) if (!have.has(n)) copy.graph!.output.push(create(ValueInfoProtoSchema, { name: n }))
  return toBinary(ModelProtoSchema, copy)
}
