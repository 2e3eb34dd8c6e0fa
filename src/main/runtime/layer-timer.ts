/**
 * The per-layer timer, the same on both sides: every layer of every exit as a single-layer slice
 * (chained) and every exit as one fused session, on one sample, through the executor. The console
 * times itself (the edge) with it; the agent answers `profile-layers` with it.
 */
import { median } from 'simple-statistics'
import type { LayerTable } from '../../shared/contracts/agent-api.js'
import type { Manifest } from '../../shared/contracts/manifest.js'
import { preprocess } from '../../shared/algorithms/preprocess.js'
import type { OrtExecutor } from './executor.js'

/** Times every layer of every exit on this machine through the executor (one warm-up round, then `reps`). */
export async function measureLayers(
  ex: OrtExecutor,
  manifest: Manifest,
  pixels: Uint8Array,
  reps: number,
  onRep?: (exit: number, rep: number) => void
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
  return {
    model: manifest.id,
    layerMs: Object.fromEntries([...per].map(([id, xs]) => [id, median(xs)])),
    exitFusedMs: fused,
    reps,
    layerRepsMs: Object.fromEntries(per)
  }
}
