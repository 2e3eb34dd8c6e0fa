import { readFileSync } from 'node:fs'
import ort from 'onnxruntime-node'
import { createRequire } from 'node:module'
import { loadManifest, readShippedSamples } from '../src/main/files.js'
import { defaultModelDir } from '../src/main/paths.js'
import { parseOnnx, sliceModel } from '../src/shared/onnx-slicer.js'
import { segmentBounds } from '../src/main/runtime/segments.js'
import { preprocess } from '../src/shared/preprocess.js'
const require = createRequire(import.meta.url)
const { binding, initOrt } = require('onnxruntime-node/dist/binding.js')

const loaded = loadManifest(defaultModelDir())
const m = loaded.manifest
const proto = parseOnnx(readFileSync(`${loaded.dir}/model.onnx`))
const samples = readShippedSamples(loaded)
const x = preprocess(m, samples.images.subarray(0, samples.imageElements))
const opts = { graphOptimizationLevel: (process.env.OPT ?? 'all') as 'all', intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' as const }
const exit = Number(process.argv[2] ?? 1)
const p = Number(process.argv[3] ?? 4)
const N = m.exits.find((e) => e.exit === exit)!.layers.length
async function mk(from: number, to: number) {
  const b = segmentBounds(m, { exit, from, to })
  const bytes = sliceModel(proto, b.input, b.output)
  const s = await ort.InferenceSession.create(bytes, opts)
  initOrt()
  const nat = new binding.InferenceSession()
  nat.loadModel(bytes.buffer, bytes.byteOffset, bytes.byteLength, opts)
  return { s, nat, b }
}
const whole = await mk(0, N)
const pre = await mk(0, p)
const suf = await mk(p, N)
const med = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!
const R = 400
const size = (d: readonly number[]) => d.reduce((a, b) => a * b, 1)
const preOut = new ort.Tensor('float32', new Float32Array(size(pre.b.output.dims)), pre.b.output.dims)
const sufOut = new ort.Tensor('float32', new Float32Array(size(suf.b.output.dims)), suf.b.output.dims)
const wholeOut = new ort.Tensor('float32', new Float32Array(size(whole.b.output.dims)), whole.b.output.dims)
const pw: number[] = [], ps: number[] = []
const tw: number[] = [], ts: number[] = [], nw: number[] = [], ns: number[] = [], nsPre: number[] = []
for (let r = 0; r < R + 20; r++) {
  let t0 = performance.now()
  await whole.s.run({ [whole.s.inputNames[0]!]: new ort.Tensor('float32', x, whole.b.input.dims) })
  const a = performance.now() - t0
  t0 = performance.now()
  const o1 = await pre.s.run({ [pre.s.inputNames[0]!]: new ort.Tensor('float32', x, pre.b.input.dims) })
  const t1 = performance.now()
  const mid = o1[pre.s.outputNames[0]!]!
  await suf.s.run({ [suf.s.inputNames[0]!]: new ort.Tensor('float32', mid.data as Float32Array, mid.dims as number[]) })
  const b2 = performance.now() - t0
  // native sync
  t0 = performance.now()
  whole.nat.run({ [whole.s.inputNames[0]!]: new ort.Tensor('float32', x, whole.b.input.dims) }, { [whole.s.outputNames[0]!]: null })
  const c = performance.now() - t0
  t0 = performance.now()
  const q = pre.nat.run({ [pre.s.inputNames[0]!]: new ort.Tensor('float32', x, pre.b.input.dims) }, { [pre.s.outputNames[0]!]: null })
  const t2 = performance.now()
  const qm = q[pre.s.outputNames[0]!]
  suf.nat.run({ [suf.s.inputNames[0]!]: new ort.Tensor('float32', qm.data, qm.dims) }, { [suf.s.outputNames[0]!]: null })
  const d = performance.now() - t0
  // native with preallocated outputs
  t0 = performance.now()
  pre.nat.run({ [pre.s.inputNames[0]!]: new ort.Tensor('float32', x, pre.b.input.dims) }, { [pre.s.outputNames[0]!]: preOut })
  suf.nat.run({ [suf.s.inputNames[0]!]: new ort.Tensor('float32', preOut.data as Float32Array, preOut.dims as number[]) }, { [suf.s.outputNames[0]!]: sufOut })
  const e = performance.now() - t0
  t0 = performance.now()
  whole.nat.run({ [whole.s.inputNames[0]!]: new ort.Tensor('float32', x, whole.b.input.dims) }, { [whole.s.outputNames[0]!]: wholeOut })
  const f = performance.now() - t0
  if (r < 20) continue
  tw.push(a); ts.push(b2); nw.push(c); ns.push(d); nsPre.push(t2 - t0); pw.push(f); ps.push(e)
}
console.log(`exit ${exit} p ${p}: wrapper whole ${med(tw).toFixed(3)} split ${med(ts).toFixed(3)} ratio ${(med(ts) / med(tw)).toFixed(3)} | native whole ${med(nw).toFixed(3)} split ${med(ns).toFixed(3)} ratio ${(med(ns) / med(nw)).toFixed(3)} (pre ${med(nsPre).toFixed(3)}) | prealloc whole ${med(pw).toFixed(3)} split ${med(ps).toFixed(3)} ratio ${(med(ps) / med(pw)).toFixed(3)}`)
