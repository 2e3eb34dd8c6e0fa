/**
 * Cut points of chains and DAGs (src/shared/onnx/onnx-graph.ts): the shipped chain's cut points are its
 * hand-written manifest's layer boundaries; residual, inception and inverted-residual blocks become
 * one layer each; and on random DAGs the cut points found are exactly the single-tensor separators
 * found by brute force (every input → output path passes through the tensor).
 */
import { create } from '@bufbuild/protobuf'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import fc from 'fast-check'
import { GraphProtoSchema, ModelProtoSchema, NodeProtoSchema, type ModelProto } from 'onnx-buf'
import { describe, expect, it } from 'vitest'
import { loadManifest } from '../../../src/main/runtime/files.js'
import { defaultModelDir } from '../../../src/main/runtime/paths.js'
import { analyseExit, indexGraph, opMix } from '../../../src/shared/onnx/onnx-graph.js'
import { parseOnnx } from '../../../src/shared/onnx/onnx-slicer.js'
import { floatValueInfo } from '../../../src/shared/onnx/onnx-slicer.js'
import { depthwise, inception, multiExit, residual } from '../../fixtures/dag.js'

describe('cut points', () => {
  it('of the shipped chain are exactly its manifest layer boundaries, exit by exit', () => {
    const { manifest, dir } = loadManifest(defaultModelDir())
    const model = parseOnnx(new Uint8Array(readFileSync(join(dir, manifest.onnx))))
    const ix = indexGraph(model)
    const byId = new Map(manifest.layers.map((l) => [l.id, l]))
    for (const e of manifest.exits) {
      const a = analyseExit(ix, e.output)
      expect(a.cuts, `exit ${e.exit}`).toEqual([manifest.input.name, ...e.layers.map((id) => byId.get(id)!.output)])
      expect(a.layers.every((l) => l.nodes.length === 1)).toBe(true)
    }
  })

  it('make a residual block one layer, and keep the chain around it', () => {
    const f = residual()
    const ix = indexGraph(parseOnnx(f.bytes))
    const a = analyseExit(ix, f.outputs[0]!)
    expect(a.layers.map((l) => opMix(ix, l))).toEqual([
      { Conv: 1 },
      { Relu: 1 },
      { Conv: 2, Relu: 1, Add: 1 },
      { Relu: 1 },
      { GlobalAveragePool: 1 },
      { Flatten: 1 },
      { Gemm: 1 }
    ])
    expect(a.cuts[0]).toBe('x')
    expect(a.cuts.at(-1)).toBe(f.outputs[0])
  })

  it('make an inception-style concat one layer, and a depthwise-separable chain single ops', () => {
    const inc = inception()
    const ix = indexGraph(parseOnnx(inc.bytes))
    expect(analyseExit(ix, inc.outputs[0]!).layers.map((l) => opMix(ix, l))).toContainEqual({ Conv: 3, Relu: 1, Concat: 1 })
    const dw = depthwise()
    const dx = indexGraph(parseOnnx(dw.bytes))
    const mixes = analyseExit(dx, dw.outputs[0]!).layers.map((l) => opMix(dx, l))
    expect(mixes.slice(0, 7)).toEqual([{ Conv: 1 }, { BatchNormalization: 1 }, { Relu: 1 }, { Conv: 1 }, { Relu: 1 }, { Conv: 1 }, { Relu: 1 }])
    expect(mixes).toContainEqual({ Conv: 3, Relu: 2, Add: 1 }) // the inverted residual block
  })

  it('analyse every exit of a multi-exit model, sharing the trunk', () => {
    const f = multiExit()
    const ix = indexGraph(parseOnnx(f.bytes))
    const [early, late] = f.outputs.map((o) => analyseExit(ix, o))
    expect(early!.cuts.slice(0, 3)).toEqual(late!.cuts.slice(0, 3)) // x, conv, relu: the shared stem
    expect(early!.layers).toHaveLength(5)
    expect(late!.layers.length).toBeGreaterThan(early!.layers.length)
  })
})

/** A random DAG of Relu (one input) and Add (two inputs) nodes over tensors t0 (the input), t1, … */
const dagArb = fc
  .integer({ min: 2, max: 16 })
  .chain((n) => fc.tuple(fc.constant(n), fc.array(fc.tuple(fc.boolean(), fc.nat(), fc.nat()), { minLength: n, maxLength: n })))
  .map(([n, picks]) => {
    const nodes = picks.map(([two, a, b], i) => {
      // Inputs among the tensors before this node (t0 … t_i), biased towards recent ones.
      const pick = (r: number) => `t${i - (r % Math.min(i + 1, 4))}`
      const ins = two ? [...new Set([pick(a), pick(b)])] : [pick(a)]
      return { op: ins.length === 2 ? 'Add' : 'Relu', inputs: ins, output: `t${i + 1}` }
    })
    return { n, nodes }
  })

function toModel(nodes: { op: string; inputs: string[]; output: string }[], output: string): ModelProto {
  return create(ModelProtoSchema, {
    irVersion: 8n,
    graph: create(GraphProtoSchema, {
      node: nodes.map((d) => create(NodeProtoSchema, { opType: d.op, input: d.inputs, output: [d.output], name: d.output })),
      input: [floatValueInfo('t0', [1, 4])],
      output: [floatValueInfo(output, [1, 4])]
    })
  })
}

/** Brute force: T separates t0 from the output iff no t0 → output path avoids T (paths counted by DP). */
function separators(nodes: { inputs: string[]; output: string }[], output: string): Set<string> {
  const tensors = ['t0', ...nodes.map((d) => d.output)]
  const pathsAvoiding = (avoid: string | null): Map<string, number> => {
    const paths = new Map<string, number>([['t0', avoid === 't0' ? 0 : 1]])
    for (const d of nodes) paths.set(d.output, d.output === avoid ? 0 : d.inputs.reduce((a, t) => a + (paths.get(t) ?? 0), 0))
    return paths
  }
  const all = pathsAvoiding(null)
  const out = new Set<string>()
  for (const t of tensors) {
    if (!all.get(t) || (all.get(output) ?? 0) === 0) continue
    // t lies on some path to the output when output is reachable from t.
    const reach = new Set([t])
    for (const d of nodes) if (d.inputs.some((i) => reach.has(i))) reach.add(d.output)
    if (!reach.has(output)) continue
    if ((pathsAvoiding(t).get(output) ?? 0) === 0) out.add(t)
  }
  return out
}

describe('cut points on random DAGs', () => {
  it('are exactly the single-tensor separators found by brute force', () => {
    fc.assert(
      fc.property(dagArb, fc.nat(), ({ n, nodes }, which) => {
        // Any tensor computed from the input can be the exit.
        const output = `t${1 + (which % n)}`
        const used = nodes.slice(0, Number(output.slice(1)))
        const ix = indexGraph(toModel(used, output))
        const a = analyseExit(ix, output)
        const brute = separators(used, output)
        expect(new Set(a.cuts)).toEqual(brute)
        // and the layers between them partition the path's nodes
        const covered = a.layers.flatMap((l) => l.nodes)
        expect(new Set(covered).size).toBe(covered.length)
      }),
      { numRuns: 500 }
    )
  })
})
