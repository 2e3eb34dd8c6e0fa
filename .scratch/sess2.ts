import ort from 'onnxruntime-node'
import { buildSynthetic } from '../src/shared/onnx-builder.js'
const spec = JSON.parse(process.argv[2] ?? '{"type":"conv","channels":16,"size":8,"filters":16,"kernel":3,"stride":1}')
const m = buildSynthetic(spec)
const opts = { graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' } as const
const x = new Float32Array(m.inputDims.reduce((a: number, b: number) => a * b, 1)).fill(0.5)
const med = (v: number[]) => [...v].sort((a, b) => a - b)[v.length >> 1]!
const sessions = []
for (let k = 0; k < 16; k++) sessions.push(await ort.InferenceSession.create(m.bytes, opts))
async function t(s: ort.InferenceSession) {
  const feeds = { [s.inputNames[0]!]: new ort.Tensor('float32', x, m.inputDims) }
  for (let i = 0; i < 5; i++) await s.run(feeds)
  const v = []
  for (let i = 0; i < 30; i++) { const t0 = performance.now(); await s.run(feeds); v.push(performance.now() - t0) }
  return med(v) * 1000
}
for (let round = 0; round < 3; round++) {
  const r = []
  for (const s of sessions) r.push((await t(s)).toFixed(0))
  console.log('round', round, r.join(' '))
}
