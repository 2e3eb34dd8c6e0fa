/** Per-layer latency tables measured on each side (src/shared/contracts/agent-api.ts, LayerTable), as a planner latency source. */
import type { LayerTable } from '../contracts/agent-api.js'
import type { Layer, Manifest } from '../contracts/manifest.js'
import type { LayerLatencySource } from './planner.js'

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
