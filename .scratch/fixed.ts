import ort from 'onnxruntime-node'
import { createRequire } from 'node:module'
import { buildSynthetic } from '../src/shared/onnx-builder.js'
const require = createRequire(import.meta.url)
const { binding, initOrt } = require('onnxruntime-node/dist/binding.js')
const opts = { graphOptimizationLevel: 'all' as const, intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' as const }
const med = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!
for (const spec of [{ type: 'relu', shape: [1, 1, 1, 1] }, { type: 'relu', shape: [1, 32, 28, 28] }] as const) {
  const m = buildSynthetic(spec as never)
  const s = await ort.InferenceSession.create(m.bytes, opts)
  initOrt()
  const nat = new binding.InferenceSession()
  nat.loadModel(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength, opts)
  const x = new Float32Array(m.inputDims.reduce((a: number, b: number) => a * b, 1)).fill(0.5)
  const a: number[] = [], b: number[] = []
  for (let i = 0; i < 2000; i++) {
    let t0 = performance.now()
    await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, m.inputDims) })
    a.push(performance.now() - t0)
    t0 = performance.now()
    nat.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, m.inputDims) }, { [s.outputNames[0]!]: null })
    b.push(performance.now() - t0)
  }
  console.log(JSON.stringify(spec), 'wrapper µs', (med(a.slice(200)) * 1000).toFixed(1), 'native µs', (med(b.slice(200)) * 1000).toFixed(1))
}
