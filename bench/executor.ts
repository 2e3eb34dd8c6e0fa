/**
 * Split execution cost: a plan's device prefix and edge suffix run as two fused segments, against the
 * unsplit single-session run of the same exit, measured interleaved in one run; chained per-layer
 * execution (one session per layer) reported beside them.
 */
import { median } from 'simple-statistics'
import { loadManifest, readShippedSamples } from '../src/main/runtime/files.js'
import { defaultModelDir } from '../src/main/runtime/paths.js'
import { OrtExecutor } from '../src/main/runtime/executor.js'
import { preprocess } from '../src/shared/algorithms/preprocess.js'

export async function runExecutorBench(): Promise<Record<string, unknown>> {
  const loaded = loadManifest(defaultModelDir())
  const { manifest } = loaded
  const samples = readShippedSamples(loaded)
  const x = preprocess(manifest, samples.images.subarray(0, samples.imageElements))
  const ex = new OrtExecutor({ maxSessions: 256 })
  await ex.start()
  await ex.openModel(loaded.dir)
  const reps = Number(process.env['BENCH_REPS'] ?? 60)
  const exits = []
  try {
    for (const e of manifest.exits) {
      const N = e.layers.length
      const splits = []
      for (let p = 1; p < N; p++) {
        const whole: number[] = []
        const split: number[] = []
        for (let r = 0; r < reps + 3; r++) {
          const a = await ex.runSegment(manifest.id, { exit: e.exit, from: 0, to: N }, x)
          const b = await ex.runSplit(manifest.id, e.exit, p, x)
          if (r < 3) continue // warm-up
          whole.push(a.ms)
          split.push(b.deviceMs + b.edgeMs)
        }
        splits.push({ deviceLayers: p, unsplitMs: median(whole), splitMs: median(split), ratio: median(split) / median(whole) })
      }
      const chained: number[] = []
      const whole: number[] = []
      for (let r = 0; r < Math.max(10, reps >> 2); r++) {
        const c = await ex.runChain(manifest.id, { exit: e.exit, from: 0, to: N }, x)
        chained.push(c.layerMs.reduce((a, b) => a + b, 0))
        whole.push((await ex.runSegment(manifest.id, { exit: e.exit, from: 0, to: N }, x)).ms)
      }
      const ratios = splits.map((s) => s.ratio)
      exits.push({
        exit: e.exit,
        layers: N,
        unsplitMs: median(whole),
        splitRatioMedian: median(ratios),
        splitRatioWorst: Math.max(...ratios),
        chainedPerLayerMs: median(chained),
        chainedRatio: median(chained) / median(whole),
        splits
      })
    }
  } finally {
    await ex.stop()
  }
  return {
    model: manifest.id,
    reps,
    note: 'ms are session.run times measured in the worker; ratios are split (device prefix + edge suffix) over unsplit, same exit, interleaved',
    exits
  }
}
