/**
 * The slicer: cuts the layers between two boundary tensors out of the branchy ONNX graph as a graph
 * of its own (a device prefix, an edge suffix, or a single layer to profile). Built on onnx-buf
 * (ONNX's protobuf schema compiled for @bufbuild/protobuf).
 *
 * Equivalent to onnx.utils.extract_model(model, [input], [output]): keep exactly the nodes needed to
 * compute `output` from `input`, and the initializers they read.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf'
import {
  GraphProtoSchema,
  ModelProtoSchema,
  TensorProto_DataLocation,
  TensorProto_DataType,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type SparseTensorProto,
  type TensorProto,
  type ValueInfoProto
} from 'onnx-buf'
import { UserError } from '../errors.js'
import type { Manifest } from '../contracts/manifest.js'

export type { ModelProto }

export function parseOnnx(bytes: Uint8Array, source = 'model.onnx'): ModelProto {
  let model: ModelProto
  try {
    model = fromBinary(ModelProtoSchema, bytes)
  } catch (err) {
    throw new UserError(`${source}: not a readable ONNX model, truncated or corrupt (${(err as Error).message})`)
  }
  if (!model.graph || model.graph.node.length === 0) throw new UserError(`${source}: the ONNX model has no graph nodes (truncated or not an ONNX file)`)
  refuseExternalData(model, source)
  return model
}

/**
 * Every tensor of a model that keeps its data outside the model (ONNX external data: a
 * `data_location` of EXTERNAL, or `external_data` entries), with the file it names: initializers,
 * sparse initializers, tensors in node attributes, in subgraphs (If, Loop, Scan) and in functions.
 */
export function externalDataTensors(model: ModelProto): { tensor: string; location: string }[] {
  const found: { tensor: string; location: string }[] = []
  const tensor = (t: TensorProto | undefined, where: string) => {
    if (!t || (t.dataLocation !== TensorProto_DataLocation.EXTERNAL && t.externalData.length === 0)) return
    found.push({ tensor: t.name || where, location: t.externalData.find((e) => e.key === 'location')?.value ?? '(no location)' })
  }
  const sparse = (t: SparseTensorProto | undefined, where: string) => {
    tensor(t?.values, `${where} values`)
    tensor(t?.indices, `${where} indices`)
  }
  const nodes = (list: readonly NodeProto[]) => {
    for (const n of list) {
      for (const a of n.attribute) {
        const where = `attribute ${a.name} of node ${n.name || n.opType}`
        tensor(a.t, where)
        for (const t of a.tensors) tensor(t, where)
        sparse(a.sparseTensor, where)
        for (const t of a.sparseTensors) sparse(t, where)
        if (a.g) graph(a.g)
        for (const g of a.graphs) graph(g)
      }
    }
  }
  const graph = (g: GraphProto) => {
    for (const t of g.initializer) tensor(t, 'an initializer')
    for (const t of g.sparseInitializer) sparse(t, 'a sparse initializer')
    nodes(g.node)
  }
  if (model.graph) graph(model.graph)
  for (const f of model.functions) nodes(f.node)
  return found
}

/** The same refusal from a model's bytes (the runtime's last gate before onnxruntime sees them). */
export function refuseExternalDataIn(bytes: Uint8Array, source: string): void {
  let model: ModelProto
  try {
    model = fromBinary(ModelProtoSchema, bytes)
  } catch (err) {
    throw new UserError(`${source}: not a readable ONNX model, truncated or corrupt (${(err as Error).message})`)
  }
  refuseExternalData(model, source)
}

/**
 * Refuses a model that keeps data in other files. onnxruntime, given a model's bytes, reads an
 * external tensor's `location` relative to the process's working directory: an imported model could
 * then carry any readable file of the console or a device (its API token, its credentials) into
 * weights that come back through the scores. Models here travel as one file: none is ever loaded.
 */
export function refuseExternalData(model: ModelProto, source: string): void {
  const ext = externalDataTensors(model)
  if (!ext.length) return
  const named = ext.slice(0, 3).map((e) => `${e.tensor} → "${e.location.slice(0, 120)}"`)
  throw new UserError(
    `${source}: ${ext.length} tensor${ext.length > 1 ? 's keep their' : ' keeps its'} data in another file (ONNX external data: ${named.join(', ')}${ext.length > 3 ? ', …' : ''}), which is never loaded: save the model with its weights inside (onnx.save_model(model, path, save_as_external_data=False))`
  )
}

export interface BoundaryTensor {
  name: string
  dims: readonly number[]
}

/** A float32 graph input or output of fixed shape (also used by the synthetic-layer builder). */
export function floatValueInfo(name: string, dims: readonly number[]): ValueInfoProto {
  return create(ValueInfoProtoSchema, {
    name,
    type: create(TypeProtoSchema, {
      value: {
        case: 'tensorType',
        value: create(TypeProto_TensorSchema, {
          elemType: TensorProto_DataType.FLOAT,
          shape: create(TensorShapeProtoSchema, {
            dim: dims.map((d) => create(TensorShapeProto_DimensionSchema, { value: { case: 'dimValue', value: BigInt(d) } }))
          })
        })
      }
    })
  })
}

/** Producer node of every tensor, and the names of initializers. */
function index(model: ModelProto): { producer: Map<string, number>; initializers: Set<string>; graphInputs: Set<string> } {
  const g = model.graph!
  const producer = new Map<string, number>()
  for (const [i, n] of g.node.entries()) for (const o of n.output) producer.set(o, i)
  return { producer, initializers: new Set(g.initializer.map((t) => t.name)), graphInputs: new Set(g.input.map((v) => v.name)) }
}

/** Every tensor name a graph reads or writes. */
export function tensorNames(model: ModelProto): Set<string> {
  const g = model.graph!
  const names = new Set<string>(g.input.map((v) => v.name))
  for (const n of g.node) {
    for (const t of n.input) names.add(t)
    for (const t of n.output) names.add(t)
  }
  return names
}

/** The sub-model computing `output` from `input`, serialised. */
export function sliceModel(model: ModelProto, input: BoundaryTensor, output: BoundaryTensor): Uint8Array {
  const g = model.graph!
  const { producer, initializers } = index(model)
  if (!producer.has(output.name)) throw new UserError(`slice: tensor "${output.name}" is not produced by any node of the ONNX graph`)
  if (input.name !== output.name && !producer.has(input.name) && !g.input.some((v) => v.name === input.name)) {
    throw new UserError(`slice: tensor "${input.name}" does not exist in the ONNX graph`)
  }
  const keep = new Set<number>()
  const usedInit = new Set<string>()
  const stack = [output.name]
  const seen = new Set<string>()
  while (stack.length) {
    const t = stack.pop()!
    if (seen.has(t) || t === input.name || t === '') continue
    seen.add(t)
    if (initializers.has(t)) {
      usedInit.add(t)
      continue
    }
    const i = producer.get(t)
    if (i === undefined) {
      throw new UserError(`slice "${input.name}" → "${output.name}": it needs tensor "${t}", which is neither the slice's input nor computed inside it`)
    }
    keep.add(i)
    for (const inp of g.node[i]!.input) stack.push(inp)
  }
  const nodes: NodeProto[] = g.node.filter((_, i) => keep.has(i))
  const sliced = create(ModelProtoSchema, {
    irVersion: model.irVersion,
    opsetImport: model.opsetImport,
    producerName: `${model.producerName || 'onnx'} (sliced by edgent)`,
    producerVersion: model.producerVersion,
    domain: model.domain,
    modelVersion: model.modelVersion,
    graph: create(GraphProtoSchema, {
      name: `${g.name || 'graph'}:${input.name}->${output.name}`,
      node: nodes,
      initializer: g.initializer.filter((t) => usedInit.has(t.name)),
      input: [floatValueInfo(input.name, input.dims)],
      output: [floatValueInfo(output.name, output.dims)]
    })
  })
  return toBinary(ModelProtoSchema, sliced)
}

/** A graph input's declared dims, -1 where a dimension is not a fixed value ([] when it declares no shape). */
export function graphInputDims(model: ModelProto, name: string): number[] {
  const v = model.graph!.input.find((i) => i.name === name)
  const t = v?.type?.value.case === 'tensorType' ? v.type.value.value : undefined
  return t?.shape?.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : -1)) ?? []
}

/**
 * Checks the manifest's boundary tensors against the graph: every layer's input and output tensor
 * exists, the model input has the declared name and shape, every exit's output is a graph output.
 * Throws a UserError naming the first layer or tensor that does not match.
 */
export function checkGraphAgainstManifest(model: ModelProto, manifest: Manifest, source = 'model.onnx'): void {
  const g = model.graph!
  const names = tensorNames(model)
  if (!g.input.some((v) => v.name === manifest.input.name)) {
    throw new UserError(`${source}: the graph has no input "${manifest.input.name}" (its inputs: ${g.input.map((v) => v.name).join(', ')})`)
  }
  const dims = graphInputDims(model, manifest.input.name)
  if (dims.length && (dims.length !== manifest.input.shape.length || dims.some((d, i) => d !== -1 && d !== manifest.input.shape[i]))) {
    throw new UserError(
      `${source}: input "${manifest.input.name}" has shape [${dims.join(', ')}] in the graph but [${manifest.input.shape.join(', ')}] in the manifest`
    )
  }
  for (const layer of manifest.layers) {
    for (const [role, tensor] of [
      ['input', layer.input],
      ['output', layer.output]
    ] as const) {
      if (!names.has(tensor)) throw new UserError(`${source}: layer "${layer.id}": its ${role} tensor "${tensor}" does not exist in the ONNX graph`)
    }
  }
  const outputs = new Set(g.output.map((o) => o.name))
  for (const exit of manifest.exits) {
    if (!outputs.has(exit.output))
      throw new UserError(`${source}: exit ${exit.exit}: output "${exit.output}" is not a graph output (outputs: ${[...outputs].join(', ')})`)
  }
}
