/**
 * A layers (or model) campaign's link stage, as run: the probe plans of the served model co-inferred
 * for real, pinned, at LINK_PROBE_KBPS, pass by pass; fitted by calibration/link-fit.ts.
 */
import type { InferRow, LinkStage } from '../../../../shared/contracts/console-api.js'
import { uploadBytes, type Manifest } from '../../../../shared/contracts/manifest.js'
import type { CostTable } from '../../../../shared/algorithms/planner.js'
import { LINK_PROBE_KBPS, LINK_PROBE_REPS, fitLinkStage, probePlans } from '../../../calibration/link-fit.js'
import type { CampaignRun } from './run.js'

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
    private readonly run: CampaignRun,
    private readonly manifest: Manifest,
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
      restore = (await this.run.setUplink(LINK_PROBE_KBPS)).previousKbps
    } catch (err) {
      this.why = `link stage not run: ${(err as Error).message}`
      return
    }
    try {
      for (const [i, plan] of this.plans.entries()) {
        const { rows } = await this.run.infer({ count: LINK_PROBE_REPS + 1, latencyMs: 3_600_000, uplinkKbps: LINK_PROBE_KBPS, plan, learn: false })
        this.got[i]!.push(...rows.slice(1)) // the first of each batch warms the plan's sessions
      }
    } finally {
      await this.run.setUplink(restore).catch(() => undefined)
    }
  }

  /** The stage's fits, against `table` (the fitted profile's raw cost table for the served model, before this stage's terms). */
  fit(table: CostTable): LinkStage {
    if (this.why) return { messaging: null, segments: null, probes: [], why: this.why }
    return fitLinkStage(this.manifest, this.plans, this.got, table)
  }
}
