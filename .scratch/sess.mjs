import ort from 'onnxruntime-node'
import { readFileSync } from 'node:fs'
const bytes = readFileSync('resources/models/branchy-alexnet/' + process.argv[2])
const optsName = process.argv[3] ?? 'default'
const variants = {
  default: { graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential' },
  noarena: { graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', enableCpuMemArena: false },
  nopattern: { graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', enableMemPattern: false },
  neither: { graphOptimizationLevel: 'all', intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', enableMemPattern: false, enableCpuMemArena: false },
}
const x = new Float32Array(784).fill(0.3)
const res = []
for (let k = 0; k < 8; k++) {
  const s = await ort.InferenceSession.create(bytes, variants[optsName])
  const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', x, [1, 1, 28, 28]) }
  for (let i = 0; i < 20; i++) await s.run(feeds)
  const t = []
  for (let i = 0; i < 100; i++) { const t0 = performance.now(); await s.run(feeds); t.push(performance.now() - t0) }
  t.sort((a, b) => a - b)
  res.push(t[50].toFixed(3))
  await s.release()
}
console.log(optsName, res.join(' '))
