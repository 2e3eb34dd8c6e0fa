/**
 * Label-free audits, the console's half (issue 31; Apparate): per device, the audited frames of its
 * policy plans in a window (src/shared/algorithms/audits.ts); every few audited frames the current
 * thresholds' disagreement with the final exit is measured there, and when it is over the bound (or
 * far under it) they move a grid step at a time until the window says they are within three quarters of
 * the bound, with a margin for its size (audits.ts) — and become the device's (the planner offers them, priced with the window's shares, from the next plan on). Each
 * change is logged, kept (the last 100 per device) and announced.
 */
import type { Logger } from 'pino'
import { AuditWindow, DEFAULT_DISAGREEMENT_BOUND, type Tuning } from '../../../shared/algorithms/audits.js'
import { THRESHOLD_GRID } from '../../../shared/algorithms/confidence.js'
import type { HeadOutcome } from '../../../shared/algorithms/exit-paths.js'
import { exitPath, layerMacs } from '../../../shared/contracts/manifest.js'
import { UserError } from '../../../shared/errors.js'
import type { AuditChangeView } from '../../../shared/contracts/console-api.js'
import type { Emit } from '../api/events.js'
import type { LatencySources } from './latency-sources.js'
import type { Planning } from './planning.js'

/** Audited frames between two checks of a device's thresholds. */
const CHECK_EVERY = 20
const CHANGES_KEPT = 100

export interface AuditSettings {
  /** Share of frames audited, 0..1 (0: none). */
  share: number
  /** The disagreement with the final exit the thresholds are kept within. */
  bound: number
  /** false: audits measure, thresholds stay fixed. */
  tune: boolean
}

export type AuditChange = AuditChangeView

export interface AuditView extends AuditSettings {
  model: string | null
  /** Audited frames in the window. */
  frames: number
  /** The current thresholds' disagreement on the window (null: no frames). */
  disagreement: number | null
  thresholds: (number | null)[] | null
  changes: AuditChange[]
}

interface DeviceAudits {
  model: string
  window: AuditWindow
  seen: number
  thresholds: (number | null)[] | null
  disagreement: number | null
  changes: AuditChange[]
}

export interface AuditsDeps {
  sources: LatencySources
  planning: Planning
  emit: Emit
  log: Logger
}

export class Audits {
  private readonly devices = new Map<string, DeviceAudits>()
  private readonly settings = new Map<string, AuditSettings>()

  constructor(private readonly deps: AuditsDeps) {}

  start(): void {}

  stop(): void {
    this.devices.clear()
  }

  /** Forgets a device's audited frames and tuned thresholds (its policies run as measured again). */
  reset(agentId: string): void {
    this.devices.delete(agentId)
    this.deps.sources.updatePolicyOptions(agentId, ({ tuned: _t, ...rest }) => rest)
  }

  /** A device's audit settings (the planner prices its audited share, and its agent audits that share). */
  configure(agentId: string, s: Partial<AuditSettings>): AuditSettings {
    const cur = this.settingsOf(agentId)
    const next = { ...cur, ...s }
    if (!(next.share >= 0 && next.share <= 1)) throw new UserError(`audit share must be in [0, 1], got ${next.share}`)
    if (!(next.bound > 0 && next.bound < 1)) throw new UserError(`disagreement bound must be in (0, 1), got ${next.bound}`)
    this.settings.set(agentId, next)
    this.deps.sources.updatePolicyOptions(agentId, ({ tuned, ...rest }) => ({ ...rest, auditShare: next.share, ...(tuned && next.tune ? { tuned } : {}) }))
    return next
  }

  settingsOf(agentId: string): AuditSettings {
    return this.settings.get(agentId) ?? { share: 0, bound: DEFAULT_DISAGREEMENT_BOUND, tune: true }
  }

  view(agentId: string): AuditView {
    const d = this.devices.get(agentId)
    return {
      ...this.settingsOf(agentId),
      model: d?.model ?? null,
      frames: d?.window.count ?? 0,
      disagreement: d?.disagreement ?? null,
      thresholds: d?.thresholds ?? null,
      changes: d ? [...d.changes] : []
    }
  }

  /** An audited frame (coinference): what each exit on its path said under plan `planId`. */
  onAudit(agentId: string, planId: string, heads: readonly HeadOutcome[]): void {
    const plan = this.deps.planning.plan(planId)
    if (!plan?.policy) return
    const m = this.deps.sources.model(plan.model).manifest
    let d = this.devices.get(agentId)
    if (!d || d.model !== m.id) {
      d = { model: m.id, window: new AuditWindow(m.exits.map((e) => e.exit)), seen: 0, thresholds: null, disagreement: null, changes: [] }
      this.devices.set(agentId, d)
    }
    if (!d.window.add(heads)) return
    if (++d.seen % CHECK_EVERY !== 0) return
    const cost = m.exits.map((e) => exitPath(m, e.exit).reduce((a, l) => a + layerMacs(l), 0))
    // the device's thresholds now: the last tuned ones (a batch's frames may still run an older plan's)
    const current = this.deps.sources.policyOptions(agentId)?.tuned?.thresholds ?? plan.policy.thresholds
    const now = d.window.evaluate(current, cost)
    d.thresholds = current
    d.disagreement = now.disagreement
    const s = this.settingsOf(agentId)
    // Tuned when the window says the bound is broken, or that there is room to loosen (half the bound,
    // with one more disagreeing frame than seen); the new thresholds keep that margin (audits.ts).
    const n = d.window.count
    if (!s.tune || (now.disagreement <= s.bound && (now.disagreement * n + 1) / n >= s.bound / 2)) return
    // a quarter of the bound kept in hand: thresholds chosen on the window's own frames do a little worse on the next ones
    // loosened only within half the bound, so that a loosening step does not walk it back to the edge
    const next = d.window.step(current, (now.disagreement > s.bound ? 0.75 : 0.5) * s.bound, cost, THRESHOLD_GRID)
    if (!next || same(next.thresholds, now.thresholds)) return
    this.apply(agentId, d, plan.policy.index, now, next)
  }

  private apply(agentId: string, d: DeviceAudits, index: number, now: Tuning, next: Tuning): void {
    const change: AuditChange = {
      at: new Date().toISOString(),
      frames: d.window.count,
      from: now.thresholds,
      to: next.thresholds,
      before: now.disagreement,
      after: next.disagreement
    }
    d.changes.push(change)
    if (d.changes.length > CHANGES_KEPT) d.changes.shift()
    d.thresholds = next.thresholds
    d.disagreement = next.disagreement
    this.deps.sources.updatePolicyOptions(agentId, (o) => ({
      ...o,
      tuned: { index, thresholds: next.thresholds, leave: next.leave, disagreement: next.disagreement }
    }))
    const text = (t: (number | null)[]) => t.map((v) => (v === null ? '–' : v)).join('/')
    this.deps.log.info(
      { agentId, frames: change.frames, from: change.from, to: change.to, before: change.before, after: change.after },
      'audits moved the exit thresholds'
    )
    this.deps.emit('devices', {
      reason: `audits moved ${agentId}'s thresholds ${text(change.from)} → ${text(change.to)} (disagreement with the final exit ${pctText(change.before)} → ${pctText(change.after)} on ${change.frames} audited frames)`
    })
  }
}

const pctText = (v: number) => `${(100 * v).toFixed(1)} %`
const same = (a: readonly (number | null)[], b: readonly (number | null)[]) => a.length === b.length && a.every((v, i) => v === b[i])
