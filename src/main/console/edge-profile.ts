/** Per-layer latency tables measured on each side, as a planner latency source. */
import type { Layer, Manifest } from '../../shared/manifest.js'
import type { LayerLatencySource } from '../../shared/planner.js'
import type { OrtExecutor } from '../runtime/executor.js'
import { median } from 'simple-statistics'
import { preprocess } from '../../shared/preprocess.js'

export interface LayerTable {
  model: string
  /** Median ms of each layer's single-layer slice. */
  layerMs: Record<string, number>
  /** Median ms of each exit as one fused session. */
  exitFusedMs: Record<string, number>
  reps: number
}

/** Times every layer of every exit on this machine (the edge) through the executor. */
export async function measureLayers(ex: OrtExecutor, manifest: Manifest, pixels: Uint8Array, reps: number, onRep?: (exit: number, rep: number) => void): Promise<LayerTable> {
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
      c.layers.forEach((id, j) => per.set(id, [...(per.get(id) ?? []), c.layerMs[j]!]))
      f.push(w.ms)
    }
    fused[String(e.exit)] = median(f)
  }
  return { model: manifest.id, layerMs: Object.fromEntries([...per].map(([id, xs]) => [id, median(xs)])), exitFusedMs: fused, reps }
}

/**
 * A latency source from two measured tables. Single-layer slices each pay a session's fixed cost
 * and lose Conv+ReLU fusion, so their sum overstates a fused segment; each side's layer times are
 * scaled by that side's fused/sum ratio of the deepest exit (one factor per side).
 */
export function measuredSource(manifest: Manifest, device: LayerTable, edge: LayerTable): LayerLatencySource {
  const last = manifest.exits[manifest.exits.length - 1]!
  const scale = (t: LayerTable): number => {
    const sum = last.layers.reduce((a, id) => a + (t.layerMs[id] ?? 0), 0)
    const fused = t.exitFusedMs[String(last.exit)]
    return fused && sum > 0 ? Math.min(1, fused / sum) : 1
  }
  const k = { device: scale(device), edge: scale(edge) }
  const get = (t: LayerTable, l: Layer): number => {
    const v = t.layerMs[l.id]
    if (v === undefined) throw new Error(`no measured latency for layer ${l.id}`)
    return v
  }
  return {
    id: `measured(device ${device.reps} reps, edge ${edge.reps} reps)`,
    overheadMs: 0,
    layerMs: (side, layer) => (side === 'device' ? get(device, layer) * k.device : get(edge, layer) * k.edge)
  }
}
