/**
 * Benchmark campaigns and their measurements. Each chunk of measurements is stored in one
 * transaction with the campaign's progress, so a crash keeps every committed chunk whole; a
 * completed campaign stores its profile (made current) and its status together.
 */
import type Database from 'better-sqlite3'
import { z } from 'zod'
import type { Machine } from '../runtime/machine.js'
import { annotateRow, storedDocument, storedTags } from './documents.js'
import type { CampaignStatus, PlansSummary, SweepSummary } from '../../shared/contracts/console-api.js'

/** What a campaign without a profile keeps as its result (a sweep's points, a plans campaign's checks). */
export type CampaignSummary = SweepSummary | PlansSummary
import type { CalibrationProfile, RegressionKey, Side } from '../../shared/algorithms/latency.js'
import type { ProfileQueries } from './profiles.js'
import type { Annotations } from '../../shared/contracts/annotations.js'

export type CampaignState = CampaignStatus['status']

/**
 * What a campaign was started with (its `params_json`), by kind: layers `{reps, grid, timing}`, model
 * `{reps, model}`, plans `{inferencesPerPlan, uplinkKbps, model}`, sweep `{inferencesPerPoint,
 * bandwidthsKbps, latenciesMs}`; every kind records both sides' `machines` when it started. Read
 * through the schema (unknown fields kept); a stored value that is not such an object reads as `{}`.
 */
const machineSchema = z.custom<Machine | null>((v) => v === null || (typeof v === 'object' && !Array.isArray(v)), 'a machine description or null')

export const CampaignParamsSchema = z
  .object({
    reps: z.number().int().positive().optional(),
    grid: z.string().optional(),
    timing: z.enum(['warm', 'cold']).optional(),
    model: z.string().optional(),
    inferencesPerPlan: z.number().int().positive().optional(),
    uplinkKbps: z.number().positive().optional(),
    inferencesPerPoint: z.number().int().positive().optional(),
    bandwidthsKbps: z.array(z.number()).optional(),
    latenciesMs: z.array(z.number()).optional(),
    machines: z
      .object({
        edge: machineSchema.optional(),
        device: machineSchema.optional(),
        /** The device's compute speed as its hello announced it when the campaign started (computeIdentity). */
        deviceCompute: z.object({ key: z.string().max(4000), text: z.string().max(500) }).optional()
      })
      .optional()
  })
  .loose()
export type CampaignParams = z.infer<typeof CampaignParamsSchema>

export interface CampaignRow {
  id: string
  agentId: string
  kind: string
  params: CampaignParams
  status: CampaignState
  progress: number
  startedAt: string
  finishedAt: string | null
  error: string | null
  summary: CampaignSummary | null
  /** The model the device was planned with when the campaign started (null: not recorded, before schema 9). */
  model: string | null
  tags: string[]
  note: string
}

/** One timed configuration as a campaign produced it. */
export interface MeasurementInput {
  regressionKey: RegressionKey
  spec: unknown
  features: readonly number[]
  runMs: number
  /** Every repetition's run time (runMs is their median), when the side reported them. */
  repsMs?: readonly number[]
  loadMs: number
  modelBytes: number
  reps: number
}

export interface StoredMeasurement {
  side: Side
  regressionKey: RegressionKey
  /** The configuration as stored (its JSON text: one key per configuration). */
  config: string
  features: number[]
  runMs: number
  loadMs: number
  modelBytes: number
  reps: number
  heldOut: boolean
  pass: number
}

interface Raw {
  id: string
  device_id: string
  kind: string
  params_json: string
  status: CampaignState
  progress: number
  started_at: string
  finished_at: string | null
  error: string | null
  summary_json: string | null
  model: string | null
  tags_json: string
  note: string
}

export class CampaignQueries {
  constructor(
    private readonly db: Database.Database,
    private readonly profiles: ProfileQueries
  ) {}

  markInterrupted(now: string): number {
    return this.db.prepare(`UPDATE campaigns SET status = 'interrupted', finished_at = ? WHERE status = 'running'`).run(now).changes
  }

  create(
    id: string,
    agentId: string,
    kind: string,
    params: CampaignParams,
    about: Annotations & { model: string | null } = { model: null, tags: [], note: '' }
  ): void {
    this.db
      .prepare(
        `INSERT INTO campaigns (id, device_id, kind, params_json, status, started_at, model, tags_json, note) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?)`
      )
      .run(id, agentId, kind, JSON.stringify(CampaignParamsSchema.parse(params)), new Date().toISOString(), about.model, JSON.stringify(about.tags), about.note)
  }

  /** Replaces a campaign's tags and/or note; false when there is no such campaign. */
  annotate(id: string, a: Partial<Annotations>): boolean {
    return annotateRow(this.db, 'campaigns', id, a)
  }

  get(id: string): CampaignRow | undefined {
    const c = this.db.prepare('SELECT * FROM campaigns WHERE id = ?').get(id) as Raw | undefined
    if (!c) return undefined
    return {
      id: c.id,
      agentId: c.device_id,
      kind: c.kind,
      params: storedDocument(CampaignParamsSchema, c.params_json, `campaign ${c.id} params`) ?? {},
      status: c.status,
      progress: c.progress,
      startedAt: c.started_at,
      finishedAt: c.finished_at,
      error: c.error,
      summary: c.summary_json ? (JSON.parse(c.summary_json) as CampaignSummary) : null,
      model: c.model,
      tags: storedTags(c.tags_json),
      note: c.note
    }
  }

  /** Every campaign's id, newest first. */
  ids(): string[] {
    return (this.db.prepare('SELECT id FROM campaigns ORDER BY started_at DESC').all() as { id: string }[]).map((r) => r.id)
  }

  saveProgress(id: string, progress: number, summary?: CampaignSummary): void {
    if (summary) this.db.prepare('UPDATE campaigns SET progress = ?, summary_json = ? WHERE id = ?').run(progress, JSON.stringify(summary), id)
    else this.db.prepare('UPDATE campaigns SET progress = ? WHERE id = ?').run(progress, id)
  }

  /** Ends a campaign without a profile (a sweep, a plans campaign, or a failure or cancel of any kind). */
  finish(id: string, status: Exclude<CampaignState, 'running'>, error: string | null, summary?: CampaignSummary): void {
    const now = new Date().toISOString()
    if (summary)
      this.db
        .prepare(`UPDATE campaigns SET status = ?, finished_at = ?, error = ?, summary_json = ?${status === 'done' ? ', progress = 1' : ''} WHERE id = ?`)
        .run(status, now, error, JSON.stringify(summary), id)
    else
      this.db
        .prepare(`UPDATE campaigns SET status = ?, finished_at = ?, error = ?${status === 'done' ? ', progress = 1' : ''} WHERE id = ?`)
        .run(status, now, error, id)
  }

  /** Ends a campaign with its fitted profile, which becomes the device's current one. */
  completeWithProfile(id: string, profile: { id: string; agentId: string; createdAt: string; profile: CalibrationProfile }): void {
    this.db.transaction(() => {
      this.profiles.insert({ ...profile, campaignId: id }, 'yes')
      this.db.prepare(`UPDATE campaigns SET status = 'done', progress = 1, finished_at = ? WHERE id = ?`).run(new Date().toISOString(), id)
    })()
  }

  /** Stores one chunk of measurements and the campaign's progress together. */
  addMeasurements(id: string, side: Side, pass: number, rows: readonly (MeasurementInput & { heldOut: boolean })[], progress: number): void {
    this.db.transaction(() => {
      this.insertMeasurements(
        id,
        rows.map((m) => ({ ...m, side, pass }))
      )
      this.saveProgress(id, progress)
    })()
  }

  /** Inserts measurement rows (the caller holds the transaction). */
  insertMeasurements(id: string, rows: readonly (MeasurementInput & { side: Side; pass: number; heldOut: boolean })[], at = new Date().toISOString()): void {
    const insert = this.db.prepare(
      `INSERT INTO measurements (campaign_id, side, regression_key, spec_json, features_json, run_ms, load_ms, model_bytes, reps, held_out, pass, created_at, reps_ms_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`
    )
    for (const m of rows)
      insert.run(
        id,
        m.side,
        m.regressionKey,
        JSON.stringify(m.spec),
        JSON.stringify(m.features),
        m.runMs,
        m.loadMs,
        m.modelBytes,
        m.reps,
        m.heldOut ? 1 : 0,
        m.pass,
        at,
        m.repsMs ? JSON.stringify(m.repsMs) : null
      )
  }

  /** A campaign as an export file describes it (the caller holds the transaction). */
  insertImported(c: {
    id: string
    agentId: string
    kind: string
    paramsJson: string
    status: string
    progress: number
    startedAt: string
    finishedAt: string | null
    error: string | null
    model?: string | null
    tags?: string[]
    note?: string
  }): void {
    this.db
      .prepare(
        `INSERT INTO campaigns (id, device_id, kind, params_json, status, progress, started_at, finished_at, error, model, tags_json, note) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`
      )
      .run(
        c.id,
        c.agentId,
        c.kind,
        c.paramsJson,
        c.status,
        c.progress,
        c.startedAt,
        c.finishedAt,
        c.error,
        c.model ?? null,
        JSON.stringify(c.tags ?? []),
        c.note ?? ''
      )
  }

  exists(id: string): boolean {
    return !!this.db.prepare('SELECT 1 FROM campaigns WHERE id = ?').get(id)
  }

  /** A campaign's measurements in the order they were stored. */
  measurements(id: string): StoredMeasurement[] {
    const rows = this.db
      .prepare(
        'SELECT side, regression_key, spec_json, features_json, run_ms, load_ms, model_bytes, reps, held_out, pass FROM measurements WHERE campaign_id = ? ORDER BY id'
      )
      .all(id) as {
      side: Side
      regression_key: RegressionKey
      spec_json: string
      features_json: string
      run_ms: number
      load_ms: number
      model_bytes: number
      reps: number
      held_out: number
      pass: number
    }[]
    return rows.map((r) => ({
      side: r.side,
      regressionKey: r.regression_key,
      config: r.spec_json,
      features: JSON.parse(r.features_json) as number[],
      runMs: r.run_ms,
      loadMs: r.load_ms,
      modelBytes: r.model_bytes,
      reps: r.reps,
      heldOut: r.held_out === 1,
      pass: r.pass
    }))
  }

  /** Both sides' health as it was at one chunk of a campaign (null: the side did not report any). */
  addHealth(id: string, chunk: number, health: { device: unknown | null; edge: unknown | null }, at = new Date().toISOString()): void {
    const insert = this.db.prepare('INSERT INTO campaign_health (campaign_id, side, chunk, at, health_json) VALUES (?, ?, ?, ?, ?)')
    for (const side of ['device', 'edge'] as const) {
      const h = health[side]
      if (h) insert.run(id, side, chunk, at, JSON.stringify(h))
    }
  }

  /** A campaign's health reports, in order. */
  health(id: string): { side: Side; chunk: number; at: string; health: unknown }[] {
    return (
      this.db.prepare('SELECT side, chunk, at, health_json FROM campaign_health WHERE campaign_id = ? ORDER BY id').all(id) as {
        side: Side
        chunk: number
        at: string
        health_json: string
      }[]
    ).map((r) => ({ side: r.side, chunk: r.chunk, at: r.at, health: JSON.parse(r.health_json) as unknown }))
  }

  measurementCount(id: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM measurements WHERE campaign_id = ?').get(id) as { n: number }).n
  }
}
