/**
 * The per-layer timer, the same on both sides: every layer of every exit as a single-layer slice
 * (chained) and every exit as one fused session, on one sample, through the executor. The console
 * times itself (the edge) with it; the agent answers `profile-layers` with it.
 */
import { median } from 'simple-statistics'
import type { LayerTable } from '../../shared/contracts/agent-api.js'
import type { Manifest } from '../../shared/contracts/manifest.js'
import { preprocess } from '../../shared/algorithms/preprocess.js'
import { exitSchedule, finalExit, pieceKey, runWithPolicy } from '../../shared/algorithms/exit-paths.js'
import { exitPath } from '../../shared/contracts/manifest.js'
import type { OrtExecutor } from './executor.js'

/**
 * How a side starts its frames, for the pieces' timing: `idle` is awaited after every round with the
 * round's compute time here — the gap a frame starts after at run time (an emulated device's wait).
 */
export interface PiecePacing {
  idle?: (roundMs: number) => Promise<void>
}

/** Times every layer of every exit on this machine through the executor (one warm-up round, then `reps`). */
export async function measureLayers(
  ex: OrtExecutor,
  manifest: Manifest,
  pixels: Uint8Array,
  reps: number,
  onRep?: (exit: number, rep: number) => void,
  pacing: PiecePacing = {}
): Promise<LayerTable> {
  const x = preprocess(manifest, pixels)
  const per = new Map<string, number[]>()
  const fused: Record<string, number> = {}
  for (const e of manifest.exits) {
    const f: number[] = []
    for (let r = 0; r <= reps; r++) {
      const c = await ex.runChain(manifest.id, { exit: e.exit, from: 0, to: e.layers.length }, x)
      const w = await ex.runSegment(manifest.id, { exit: e.exit, from: 0, to: e.layers.length }, x)
      if (r === 0) continue // warm-up
      onRep?.(e.exit, r)
      for (const [j, id] of c.layers.entries()) per.set(id, [...(per.get(id) ?? []), c.layerMs[j]!])
      f.push(w.ms)
    }
    fused[String(e.exit)] = median(f)
  }
  const pieces = await measurePieces(ex, manifest, x, reps, pacing)
  return {
    model: manifest.id,
    layerMs: Object.fromEntries([...per].map(([id, xs]) => [id, median(xs)])),
    exitFusedMs: fused,
    ...(pieces ? { piecesMs: pieces } : {}),
    reps,
    layerRepsMs: Object.fromEntries(per)
  }
}

/**
 * The sessions a confidence-exit policy runs when the whole path is on this side — the trunk between
 * branch points and every exit's head, each its own session — timed as the agent runs them: one after
 * another through the executor, each handed the previous one's output (one warm-up round, then
 * `reps`). A policy's device time is these sessions' times, not its layers' slices: each session
 * pays its own start. A round's first session after an idle gap runs colder than back to back (the
 * camera model's first trunk piece here: 0.35 ms back to back, 0.43 after 5 ms idle, 0.59–0.65 after
 * 17–100 ms): where frames start after a gap, `pacing.idle` reproduces it between rounds — the
 * emulated device, which idles out its slowdown after every frame (its exit-1 frames measured 18.1 ms
 * against 11.9 predicted from back-to-back pieces). Null for a model with one exit.
 */
export async function measurePieces(
  ex: OrtExecutor,
  m: Manifest,
  x: Float32Array,
  reps: number,
  pacing: PiecePacing = {}
): Promise<Record<string, number> | null> {
  if (m.exits.length < 2) return null
  const n = exitPath(m, finalExit(m)).length
  const everyHead = { index: 0, measure: 'max-softmax' as const, thresholds: m.exits.map(() => null), temperatures: m.exits.map(() => 1) }
  const times = new Map<string, number[]>()
  for (let r = 0; r <= reps; r++) {
    let roundMs = 0
    await runWithPolicy({
      m,
      policy: everyHead,
      steps: exitSchedule(m, n).device,
      from: 0,
      to: n,
      input: x,
      dims: [...m.input.shape],
      audit: true,
      run: async (seg, input, dims) => {
        const out = await ex.runSegment(m.id, seg, input, dims)
        roundMs += out.ms
        if (r > 0) {
          const k = pieceKey(seg)
          const seen = times.get(k)
          if (seen) seen.push(out.ms)
          else times.set(k, [out.ms])
        }
        return { output: out.output, dims: out.dims, ms: out.ms }
      }
    })
    await pacing.idle?.(roundMs)
  }
  return Object.fromEntries([...times].map(([k, xs]) => [k, median(xs)]))
}
