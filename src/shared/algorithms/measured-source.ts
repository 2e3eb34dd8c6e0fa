/** Per-layer latency tables measured on each side (src/shared/contracts/agent-api.ts, LayerTable), as a planner latency source. */
import type { LayerTable } from '../contracts/agent-api.js'
import type { Layer, Manifest } from '../contracts/manifest.js'
import type { LayerLatencySource } from './planner.js'
import { pieceKey } from './exit-paths.js'

/**
 * A latency source from two measured tables. Single-layer slices each pay a session's fixed cost `c`
 * (and lose Conv+ReLU fusion), so their sum overstates a fused segment: an exit run as one session
 * took F = Σ s − (n − 1)·c over its n layers' slices s. `c` is fitted per side by least squares over
 * every exit's fused run (one exit: exactly), within [0, the smallest slice]; a layer is then its
 * slice less `c`, and every segment pays `c` once — so a plan that runs its device share as several
 * sessions (a confidence-exit policy's trunk pieces and heads) pays it for each. Where the fit
 * leaves a residual, the layers are scaled by the deepest exit's fused / predicted ratio (one factor
 * per side), so that exit stays exact. A confidence-exit policy's sessions are priced from the
 * tables' `piecesMs` where measured (each session as the agent runs it, its start included: a
 * policy's path of ten sessions measured 1.3× its composition here, at 30× slowdown).
 */
export function measuredSource(manifest: Manifest, device: LayerTable, edge: LayerTable): LayerLatencySource {
  const get = (t: LayerTable, id: string): number => {
    const v = t.layerMs[id]
    if (v === undefined) throw new Error(`no measured latency for layer ${id}`)
    return v
  }
  const fitSide = (t: LayerTable): { c: number; k: number } => {
    let num = 0
    let den = 0
    let smallest = Infinity
    for (const e of manifest.exits) {
      const fused = t.exitFusedMs[String(e.exit)]
      if (fused === undefined) continue
      const sum = e.layers.reduce((a, id) => a + get(t, id), 0)
      for (const id of e.layers) smallest = Math.min(smallest, get(t, id))
      const n1 = e.layers.length - 1
      num += n1 * (sum - fused)
      den += n1 * n1
    }
    const c = den > 0 ? Math.min(Math.max(0, num / den), Number.isFinite(smallest) ? smallest : 0) : 0
    const last = manifest.exits[manifest.exits.length - 1]!
    const fused = t.exitFusedMs[String(last.exit)]
    const composed = last.layers.reduce((a, id) => a + get(t, id) - c, 0)
    const k = fused !== undefined && composed > 0 ? Math.min(1, Math.max(0, (fused - c) / composed)) : 1
    return { c, k }
  }
  const f = { device: fitSide(device), edge: fitSide(edge) }
  return {
    id: `measured(device ${device.reps} reps, edge ${edge.reps} reps)`,
    overheadMs: 0,
    layerMs: (side, layer: Layer) => {
      const s = f[side]
      return Math.max(0, get(side === 'device' ? device : edge, layer.id) - s.c) * s.k
    },
    segmentMs: (side, composedMs) => composedMs + f[side].c,
    pieceMs: measuredPieces(device, edge)
  }
}

/**
 * A policy's sessions as the two tables measured them (`piecesMs`, each session as the agent runs it,
 * its start included) — for any latency source of the device: a fitted profile composes layers
 * measured one by one elsewhere, these are the sessions themselves.
 */
export function measuredPieces(device: LayerTable, edge: LayerTable): NonNullable<LayerLatencySource['pieceMs']> {
  return (side, exit, from, to) => (side === 'device' ? device : edge).piecesMs?.[pieceKey({ exit, from, to })]
}
