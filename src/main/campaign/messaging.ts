/**
 * A layers (or model) campaign's link stage: what the grid cannot time, measured with real
 * co-inferences of a few probe plans of the served model, pinned, with the device's emulated uplink
 * set to a LAN-class rate (its serialisation wait subtracted), teaching the online correction nothing.
 *
 * - Messaging: what co-inference costs besides the two segments and the serialisation wait —
 *   encoding, the MQTT publish and its acknowledgement, the broker, the hand-offs to and from the
 *   edge's worker, the result's way back. Each inference's residual (end to end minus both segments
 *   minus the wait) is fitted as fixed + perByte × bytes sent, on the first exit edge-only (the
 *   smallest upload) and cut after its first layer (a large one). Measured at 100 Mbps, not faster:
 *   while a frame waits for the link, part of the messaging (about 1 ms here) is done in the
 *   meantime — the residual was 2.0 ms for frames sent at once and 1.0–1.5 ms for frames that
 *   waited a millisecond or more — so a probe with no wait would overstate it on any real link.
 * - Segments as plans run them: a plan's segment runs once per inference, right after messaging and
 *   the other side's work, on a machine busy with both; the grid times layers alone. Per side, the
 *   probes' measured segments against the fitted profile's composed predictions give
 *   fixed + scale × prediction (least squares on relative error over the probes that run something
 *   on that side: the first and the last exit each side alone, cut after the first layer, in the
 *   middle of the last exit, and cut before the last layer — whose edge segment is one small layer:
 *   without it the fixed cost of a small segment was a guess, 0.01 ms in one campaign against
 *   0.05–0.18 ms measured). Too few or too alike probes fit the offset only (fitSegments).
 *
 * The probes are plans of the served model: a plans campaign reports its error with and without them.
 */
import { median } from 'simple-statistics'
import type { InferRow, InferSummary, LinkStage } from '../../shared/console-api.js'
import type { Side } from '../../shared/latency.js'
import { exitPath, uploadBytes, type Manifest } from '../../shared/manifest.js'
import { type CostTable, candidateAt } from '../../shared/planner.js'

/** The probes' emulated uplink, kbit/s (100 Mbps: a 100 kB activation waits 8 ms; see above). */
export const LINK_PROBE_KBPS = 100_000
/** Measured co-inferences per probe plan and pass (after one warm-up). */
export const LINK_PROBE_REPS = 10
/** Passes over the probes in a campaign (a layers campaign: one after each pass over its grid). */
export const LINK_PASSES = 3

/** A batch of co-inferences a campaign runs through the console (kinds sweep and plans, the link stage). */
export interface CampaignInfer {
  agent: string
  count: number
  latencyMs: number
  uplinkKbps: number
  campaignId: string
  /** A pinned plan (kind `plans`, the link stage). */
  plan?: { exit: number; deviceLayers: number }
  /** false: the batch does not teach the online correction. */
  learn?: boolean
}

export interface LinkStageDeps {
  infer(opts: CampaignInfer): Promise<{ summary: InferSummary; rows: InferRow[] }>
  setUplink(deviceId: string, kbps: number): Promise<{ previousKbps: number }>
}

/** One inference's residual: end to end minus both segments and the serialisation wait of what it sent. */
export const residualMs = (r: InferRow, kbps: number): number => r.e2eMs - r.deviceMs - r.edgeMs - (r.uploadBytes * 8) / kbps

/** The probe plans of a model: (exit, deviceLayers), deduplicated, in order. */
export function probePlans(m: Manifest): { exit: number; deviceLayers: number }[] {
  const first = m.exits[0]!.exit
  const last = m.exits[m.exits.length - 1]!.exit
  const n1 = exitPath(m, first).length
  const nL = exitPath(m, last).length
  const all = [
    { exit: first, deviceLayers: 0 },
    { exit: first, deviceLayers: Math.min(1, n1) },
    { exit: first, deviceLayers: Math.max(0, n1 - 1) },
    { exit: first, deviceLayers: n1 },
    { exit: last, deviceLayers: 0 },
    { exit: last, deviceLayers: Math.floor(nL / 2) },
    { exit: last, deviceLayers: Math.max(0, nL - 1) },
    { exit: last, deviceLayers: nL }
  ]
  return all.filter((p, i) => all.findIndex((q) => q.exit === p.exit && q.deviceLayers === p.deviceLayers) === i)
}

/** fixed + perByte × bytes through the sending probes' median residuals, by least squares (both clamped at 0). */
export function fitMessaging(points: readonly { bytes: number; residualMs: number }[]): { fixedMs: number; perByteMs: number } {
  const { a, b } = line(points.map((p) => ({ x: p.bytes, y: p.residualMs })))
  const perByteMs = Math.max(0, b)
  return { fixedMs: Math.max(0, perByteMs === b ? a : median(points.map((p) => p.residualMs))), perByteMs }
}

/** The bounds of a believable segment scale: outside them the probes did not pin the line down. */
export const SEGMENT_SCALE_RANGE = [0.5, 2] as const

/**
 * measured = fixed + scale × predicted, by least squares on relative error (segments span 0.05 to
 * tens of ms). A line needs at least 3 probes whose predictions span a factor of 2 or more, and a
 * scale within SEGMENT_SCALE_RANGE; otherwise (a one-exit model's probes, nearly equal predictions)
 * only the offset is fitted: scale 1, fixed = the weighted mean of measured − predicted.
 */
export function fitSegments(points: readonly { predictedMs: number; measuredMs: number }[]): { fixedMs: number; scale: number } {
  const usable = points.filter((p) => p.measuredMs > 0 && p.predictedMs >= 0)
  const w = usable.map((p) => 1 / p.measuredMs ** 2)
  const offsetOnly = () => {
    const total = w.reduce((s, v) => s + v, 0)
    return { fixedMs: total > 0 ? usable.reduce((s, p, i) => s + w[i]! * (p.measuredMs - p.predictedMs), 0) / total : 0, scale: 1 }
  }
  const xs = usable.map((p) => p.predictedMs)
  if (usable.length < 3 || !(Math.max(...xs) >= 2 * Math.min(...xs))) return offsetOnly()
  const { a, b } = line(
    usable.map((p) => ({ x: p.predictedMs, y: p.measuredMs })),
    w
  )
  return Number.isFinite(a) && b >= SEGMENT_SCALE_RANGE[0] && b <= SEGMENT_SCALE_RANGE[1] ? { fixedMs: a, scale: b } : offsetOnly()
}

/** Weighted least squares y = a + b x (unit weights by default; b = 0 when x does not vary). */
function line(pts: readonly { x: number; y: number }[], weights: readonly number[] = pts.map(() => 1)): { a: number; b: number } {
  const w = weights.reduce((s, v) => s + v, 0)
  if (!pts.length || !(w > 0)) return { a: 0, b: 0 }
  const mx = pts.reduce((s, p, i) => s + weights[i]! * p.x, 0) / w
  const my = pts.reduce((s, p, i) => s + weights[i]! * p.y, 0) / w
  const sxx = pts.reduce((s, p, i) => s + weights[i]! * (p.x - mx) ** 2, 0)
  const b = sxx > 0 ? pts.reduce((s, p, i) => s + weights[i]! * (p.x - mx) * (p.y - my), 0) / sxx : 0
  return { a: my - b * mx, b }
}

/**
 * The link stage's measurements so far: the probe plans' co-inferences, pass by pass. A layers
 * campaign runs one pass after each pass over its grid, so the probes span the campaign as its
 * grid does: this shared machine ran edge segments 1.3–1.4× slower for the whole of one stage
 * measured in one stretch, and at their usual speed a minute later.
 */
export class LinkStageRun {
  readonly plans: { exit: number; deviceLayers: number }[]
  private readonly got: InferRow[][]
  private why: string | null = null

  constructor(
    private readonly deps: LinkStageDeps,
    manifest: Manifest,
    private readonly deviceId: string,
    private readonly campaignId: string,
    maxUploadBytes = Infinity
  ) {
    // A probe that would send more than the console accepts cannot run (a 224×224 model's first conv output, 3 MB, against 2 MB).
    this.plans = probePlans(manifest).filter((p) => uploadBytes(manifest, p.exit, p.deviceLayers) <= maxUploadBytes)
    this.got = this.plans.map(() => [])
  }

  /**
   * One pass over the probe plans at LINK_PROBE_KBPS (the uplink restored after it, whatever
   * happens). A device whose uplink cannot be set (a real link: its serialisation time is not known
   * exactly, so the residual cannot be told from it) is not probed again, and the stage says why.
   */
  async pass(): Promise<void> {
    if (this.why) return
    let restore: number
    try {
      restore = (await this.deps.setUplink(this.deviceId, LINK_PROBE_KBPS)).previousKbps
    } catch (err) {
      this.why = `link stage not run: ${(err as Error).message}`
      return
    }
    try {
      for (const [i, plan] of this.plans.entries()) {
        const { rows } = await this.deps.infer({
          agent: this.deviceId,
          count: LINK_PROBE_REPS + 1,
          latencyMs: 3_600_000,
          uplinkKbps: LINK_PROBE_KBPS,
          campaignId: this.campaignId,
          plan,
          learn: false
        })
        this.got[i]!.push(...rows.slice(1)) // the first of each batch warms the plan's sessions
      }
    } finally {
      await this.deps.setUplink(this.deviceId, restore).catch(() => undefined)
    }
  }

  /** The stage's fits, against `table` (the fitted profile's raw cost table for the served model, before this stage's terms). */
  fit(table: CostTable): LinkStage {
    if (this.why) return { messaging: null, segments: null, probes: [], why: this.why }
    const probes: LinkStage['probes'] = []
    for (const [i, plan] of this.plans.entries()) {
      const rows = this.got[i]!
      if (!rows.length) throw new Error(`no co-inference of the link stage's probe (exit ${plan.exit}, ${plan.deviceLayers} device layers) completed`)
      const c = candidateAt(table, plan.exit, plan.deviceLayers)!
      probes.push({
        ...plan,
        layers: c.layers,
        n: rows.length,
        bytes: median(rows.map((r) => r.uploadBytes)),
        residualMs: median(rows.map((r) => residualMs(r, LINK_PROBE_KBPS))),
        deviceMs: median(rows.map((r) => r.deviceMs)),
        edgeMs: median(rows.map((r) => r.edgeMs)),
        predictedDeviceMs: c.deviceMs,
        predictedEdgeMs: c.edgeMs
      })
    }
    const sending = probes.filter((p) => p.deviceLayers < p.layers)
    const side = (s: Side) =>
      fitSegments(
        probes
          .filter((p) => (s === 'device' ? p.deviceLayers > 0 : p.deviceLayers < p.layers))
          .map((p) =>
            s === 'device' ? { predictedMs: p.predictedDeviceMs, measuredMs: p.deviceMs } : { predictedMs: p.predictedEdgeMs, measuredMs: p.edgeMs }
          )
      )
    return { messaging: fitMessaging(sending), segments: { device: side('device'), edge: side('edge') }, probes, why: null }
  }
}
