/**
 * Campaigns, a console module (Edgent's offline stage as a product feature): starts a campaign of a
 * kind — `layers` and `model` (layers.ts), `sweep` (sweep.ts), `plans` (plans.ts) — on a paired
 * device, reports its status, cancels it, and takes part in the console's lifecycle: stopping the
 * console interrupts every running campaign, stores it as interrupted with what it measured, and
 * waits for it. The math a campaign's measurements go through lives in src/main/calibration.
 */
import { randomUUID } from 'node:crypto'
import type { TimingRegime } from '../../../../shared/contracts/agent-api.js'
import {
  CAMPAIGN_KINDS,
  type CampaignKind,
  type CampaignStatus,
  type FitReport,
  type PlansSummary,
  type SweepSummary
} from '../../../../shared/contracts/console-api.js'
import { UserError } from '../../../../shared/errors.js'
import { computeIdentity } from '../../../../shared/contracts/messages.js'
import { reportFromProfile } from '../../../calibration/fit.js'
import { healthWarnings } from '../../../calibration/health-warnings.js'
import { linkOf } from '../../../calibration/link-fit.js'
import { PLANS_DEFAULT_KBPS } from '../../../calibration/plans.js'
import { describeMachine } from '../../../runtime/machine.js'
import type { CampaignParams } from '../../../store/campaigns.js'
import { LAYERS_TIMING, layersWork, modelWork, runLayers } from './layers.js'
import { runPlans } from './plans.js'
import { CampaignRun, type CampaignContext } from './run.js'
import { SWEEP_DEFAULTS, runSweep } from './sweep.js'

export type { CampaignStatus } from '../../../../shared/contracts/console-api.js'
export type { CampaignContext } from './run.js'
export { LAYER_PASSES, LAYERS_TIMING } from './layers.js'
export { SWEEP_DEFAULTS } from './sweep.js'

export interface SweepOptions {
  bandwidthsKbps?: readonly number[]
  latenciesMs?: readonly number[]
  /** Kind `plans`: the fixed uplink every plan co-infers at, kbit/s (default PLANS_DEFAULT_KBPS). */
  uplinkKbps?: number
  /** Kind `layers`: how each configuration's runs are timed (default LAYERS_TIMING). */
  timing?: TimingRegime
  /** Stored with the campaign (validated by the API: annotations.ts). */
  tags?: string[]
  note?: string
}

const isKind = (k: string): k is CampaignKind => (CAMPAIGN_KINDS as readonly string[]).includes(k)

export class Campaigns {
  private readonly running = new Map<string, { run: CampaignRun; done: Promise<void> }>()
  /** The fit reports of layers and model campaigns fitted since the console started. */
  private readonly fits = new Map<string, FitReport[]>()

  constructor(private readonly ctx: CampaignContext) {}

  /** Nothing to start: campaigns begin on request. */
  start(): void {}

  /**
   * The console stops: every running campaign is abandoned where it waits (an agent's command, a
   * batch of co-inferences, a timing on the edge), stored as interrupted with what it measured so
   * far, its device's uplink set back; resolves when none is left running.
   */
  async stop(): Promise<void> {
    const now = [...this.running.values()]
    for (const r of now) r.run.interrupt()
    await Promise.allSettled(now.map((r) => r.done))
  }

  /** The ids of the campaigns running now. */
  get active(): string[] {
    return [...this.running.keys()]
  }

  /** Starts a campaign on a device; returns its id at once, the work goes on in the background. */
  begin(agentId: string, kind: string, reps: number, o: SweepOptions = {}): string {
    if (!isKind(kind)) throw new UserError(`unknown campaign kind "${kind}" (kinds: ${CAMPAIGN_KINDS.join(', ')})`)
    if (!Number.isInteger(reps) || reps < 1 || reps > 200) throw new UserError(`reps must be 1..200, got ${reps}`)
    const grid = {
      bandwidthsKbps: [...(o.bandwidthsKbps ?? SWEEP_DEFAULTS.bandwidthsKbps)],
      latenciesMs: [...(o.latenciesMs ?? SWEEP_DEFAULTS.latenciesMs)]
    }
    if (kind === 'sweep') {
      for (const [name, list, lo, hi] of [
        ['bandwidths', grid.bandwidthsKbps, 1, 1e7],
        ['latency requirements', grid.latenciesMs, 1, 3.6e6]
      ] as const) {
        if (list.length < 1 || list.length > 50) throw new UserError(`a sweep needs 1..50 ${name}, got ${list.length}`)
        if (list.some((v) => !Number.isFinite(v) || v < lo || v > hi))
          throw new UserError(`sweep ${name} must be numbers in ${lo}..${hi}, got ${list.join(', ')}`)
      }
    }
    const uplinkKbps = o.uplinkKbps ?? PLANS_DEFAULT_KBPS
    if (o.uplinkKbps !== undefined && kind !== 'plans') throw new UserError('a fixed uplink is for plans campaigns')
    const timing = o.timing ?? LAYERS_TIMING
    if (o.timing !== undefined && kind !== 'layers') throw new UserError('a timing regime is for layers campaigns')
    if (timing !== 'warm' && timing !== 'cold') throw new UserError(`timing must be warm or cold, got ${String(timing)}`)
    if (!Number.isFinite(uplinkKbps) || uplinkKbps < 1 || uplinkKbps > 1e7)
      throw new UserError(`a plans campaign's uplink must be 1..10000000 kbps, got ${uplinkKbps}`)
    const id = randomUUID()
    const model = this.ctx.models.forDevice(agentId).manifest.id
    // Both sides' hardware and OS as they were when it ran: exported with the measurements.
    const hello = this.ctx.fleet.view(agentId).hello
    const compute = computeIdentity(hello)
    const machines = { edge: describeMachine(), device: hello?.machine ?? null, ...(compute ? { deviceCompute: compute } : {}) }
    const params: CampaignParams =
      kind === 'layers'
        ? { reps, grid: 'layers-v4', timing, machines }
        : kind === 'model'
          ? { reps, model, machines }
          : kind === 'plans'
            ? { inferencesPerPlan: reps, uplinkKbps, model, machines }
            : { inferencesPerPoint: reps, ...grid, machines }
    this.ctx.store.campaigns.create(id, agentId, kind, params, { model, tags: o.tags ?? [], note: o.note ?? '' })
    const run = new CampaignRun(this.ctx, this, id, agentId)
    const done =
      kind === 'sweep'
        ? runSweep(run, reps, grid)
        : kind === 'plans'
          ? runPlans(run, reps, uplinkKbps)
          : runLayers(run, reps, kind === 'layers' ? layersWork(run, reps, timing) : modelWork(run, reps))
    this.running.set(id, { run, done })
    void done.finally(() => {
      if (run.fits) this.fits.set(id, run.fits)
      this.running.delete(id)
    })
    return id
  }

  /** Cancels a running campaign at its next step (what it measured is kept). */
  cancel(id: string): void {
    if (!this.status(id)) throw new UserError(`unknown campaign "${id}"`)
    this.running.get(id)?.run.cancel()
  }

  status(id: string): CampaignStatus | undefined {
    const { campaigns, profiles } = this.ctx.store
    const c = campaigns.get(id)
    if (!c) return undefined
    const p = profiles.byCampaign(id)
    const run = this.running.get(id)?.run
    let fits = this.fits.get(id) ?? run?.fits ?? null
    if (!fits && p) fits = reportFromProfile(p.profile)
    return {
      id: c.id,
      agentId: c.agentId,
      kind: c.kind,
      status: c.status,
      progress: c.progress,
      startedAt: c.startedAt,
      finishedAt: c.finishedAt,
      error: c.error,
      profileId: p?.id ?? null,
      fits,
      measurements: campaigns.measurementCount(id),
      sweep: c.kind === 'sweep' ? (c.summary as SweepSummary | null) : null,
      plans: c.kind === 'plans' ? (c.summary as PlansSummary | null) : null,
      pass: c.status === 'running' ? (run?.pass ?? null) : null,
      warnings: healthWarnings(campaigns.health(id)),
      link: p ? linkOf(p.profile) : null,
      model: c.model,
      tags: c.tags,
      note: c.note
    }
  }

  list(): CampaignStatus[] {
    return this.ctx.store.campaigns.ids().map((id) => this.status(id)!)
  }
}
