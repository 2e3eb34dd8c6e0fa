/**
 * One running campaign, and what every campaign kind works through: the console's modules (by
 * reference, not as callbacks) and the campaign's own state — its pass, whether the user cancelled it
 * or the console is stopping. Every wait on a device or the edge goes through `until`, so that the
 * console's stop abandons it at once (the campaign is then stored as interrupted); setting the uplink
 * back is still tried, for at most RESTORE_ON_STOP_MS.
 */
import type { Logger } from 'pino'
import type { CommandReply, LayerTable, TimingRegime } from '../../../../shared/contracts/agent-api.js'
import type { CampaignStatus, FitReport, InferRow, InferSummary, LatencySource } from '../../../../shared/contracts/console-api.js'
import { errorMessage } from '../../../../shared/errors.js'
import type { SyntheticSpec } from '../../../../shared/onnx/onnx-builder.js'
import type { CostTable } from '../../../../shared/algorithms/planner.js'
import type { OrtExecutor } from '../../../runtime/executor.js'
import type { CampaignSummary } from '../../../store/campaigns.js'
import type { Store } from '../../../store/store.js'
import type { AgentLink } from '../agent-link.js'
import type { CoInference } from '../coinference.js'
import type { Distribution } from '../distribution.js'
import type { Emit } from '../../api/events.js'
import type { Fleet } from '../fleet.js'
import type { LatencySources } from '../latency-sources.js'
import type { Models } from '../models.js'

/** The console modules campaigns work with. */
export interface CampaignContext {
  store: Store
  executor: OrtExecutor
  models: Models
  sources: LatencySources
  coinference: CoInference
  distribution: Distribution
  fleet: Fleet
  link: AgentLink
  emit: Emit
  log: Logger
  /** The largest activation the console accepts, bytes (plans sending more cannot run). */
  maxUploadBytes: number
}

/** Where a campaign's status is read (the campaigns module). */
export interface CampaignStatusSource {
  status(id: string): CampaignStatus | undefined
}

/** A batch of co-inferences a campaign runs through the console (kinds sweep and plans, the link stage). */
export interface CampaignBatch {
  count: number
  latencyMs: number
  uplinkKbps: number
  /** A pinned plan (kind `plans`, the link stage). */
  plan?: { exit: number; deviceLayers: number }
  /** false: the batch does not teach the online correction. */
  learn?: boolean
}

/** A campaign ended by a cancel, or by the console's stop. */
export class CancelledError extends Error {}

/** How long the console's stop waits for a device's uplink to be set back (an agent that no longer answers must not hold the stop). */
export const RESTORE_ON_STOP_MS = 5_000

export class CampaignRun {
  /** The pass under way of a multi-pass campaign (its status shows it). */
  pass: { current: number; of: number } | null = null
  /** A layers or model campaign's fit report, once fitted. */
  fits: FitReport[] | null = null
  private cancelled = false
  private interruptedByStop = false
  private readonly abort = new AbortController()

  constructor(
    readonly ctx: CampaignContext,
    private readonly statuses: CampaignStatusSource,
    readonly id: string,
    readonly agentId: string
  ) {}

  /** The user's cancel: takes effect at the campaign's next step. */
  cancel(): void {
    this.cancelled = true
  }

  /** The console's stop: whatever the campaign waits on is abandoned now. */
  interrupt(): void {
    this.interruptedByStop = true
    this.cancelled = true
    this.abort.abort()
  }

  /** Throws CancelledError once the campaign was cancelled or interrupted (between steps). */
  check(): void {
    if (this.cancelled) throw new CancelledError()
  }

  /** `p`, given up (a CancelledError) when the console stops. */
  until<T>(p: Promise<T>): Promise<T> {
    const signal = this.abort.signal
    if (signal.aborted) {
      p.catch(() => undefined)
      return Promise.reject(new CancelledError())
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(new CancelledError())
      signal.addEventListener('abort', onAbort, { once: true })
      p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }

  /** A wait that is not started at all once the console stops. */
  private guarded<T>(start: () => Promise<T>): Promise<T> {
    return this.abort.signal.aborted ? Promise.reject(new CancelledError()) : this.until(start())
  }

  /** Times synthetic layers on the device (the agent's `time-layers` command). */
  timeOnDevice(specs: SyntheticSpec[], reps: number, regime: TimingRegime): Promise<CommandReply<'time-layers'>> {
    return this.guarded(() => this.ctx.link.request(this.agentId, 'time-layers', { specs, reps, regime }, 600_000))
  }

  /** Times every layer of a model on the device (the agent's `profile-layers`), after making sure it holds the model. */
  profileDevice(reps: number, model: string): Promise<LayerTable> {
    return this.guarded(async () => {
      await this.ctx.distribution.ensureOnAgent(this.agentId, this.ctx.models.get(model))
      return this.ctx.link.request(this.agentId, 'profile-layers', { reps, model }, 600_000)
    })
  }

  /** Sets the device's emulated uplink (the agent's `set-uplink`); answers the previous value. Still tried after a stop, briefly. */
  setUplink(kbps: number): Promise<CommandReply<'set-uplink'>> {
    const set = this.ctx.link.request(this.agentId, 'set-uplink', { kbps }, 30_000)
    return this.abort.signal.aborted ? withTimeout(set, RESTORE_ON_STOP_MS) : this.until(set)
  }

  /** A batch of co-inferences of the device through the console, stored with this campaign. */
  infer(b: CampaignBatch): Promise<{ summary: InferSummary; rows: InferRow[] }> {
    return this.guarded(() => this.ctx.coinference.infer({ agent: this.agentId, campaignId: this.id, ...b }))
  }

  /** The device's cost table from its latency source without online correction, and which source that is. */
  rawCosts(): Promise<{ table: CostTable; source: LatencySource }> {
    const { sources } = this.ctx
    return this.guarded(async () => {
      await sources.deviceTable(this.agentId)
      return { table: sources.costTable(this.agentId), source: sources.latencySource(this.agentId) }
    })
  }

  /** Announces the campaign's status (progress, its end). */
  progress(): void {
    const s = this.statuses.status(this.id)
    if (!s) return
    // A completed campaign made a new current profile: the device is planned with it from now on.
    if (s.status === 'done' && s.profileId) this.ctx.sources.sourceChanged(this.agentId)
    this.ctx.emit('campaign', s)
  }

  /** Ends a campaign that threw: interrupted by the console's stop, cancelled, or failed saying why; what it measured is kept. */
  stopped(err: unknown, summary?: CampaignSummary): void {
    const campaigns = this.ctx.store.campaigns
    if (this.interruptedByStop) campaigns.finish(this.id, 'interrupted', 'the console stopped while it ran (its measurements are kept)', summary)
    else if (err instanceof CancelledError) campaigns.finish(this.id, 'cancelled', null, summary)
    else campaigns.finish(this.id, 'failed', errorMessage(err), summary)
  }

  /** Whatever happened: the device's uplink back to what it was (when the campaign set it), and its end announced. */
  async release(restoreKbps: number | null): Promise<void> {
    if (restoreKbps !== null) await this.setUplink(restoreKbps).catch(() => undefined)
    this.pass = null
    this.progress()
  }
}

/** `p`, or a rejection naming the wait after `ms`. */
function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}
