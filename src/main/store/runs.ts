/**
 * Co-inference runs and their inferences. A run's rows are written in one transaction with its
 * status when the batch completes, so an agent that dies mid-run leaves a run marked failed and no
 * partial rows.
 */
import type { InferenceSource } from '../../shared/contracts/console-api.js'
import type { ExportDocument, ExportFormat } from './calibration.js'
import { exportTable } from './table-export.js'
import type Database from 'better-sqlite3'
import { quantileSorted } from 'simple-statistics'
import type { InferRow, InferSummary, InferencePoint, RunView } from '../../shared/contracts/console-api.js'
import type { Annotations } from '../../shared/contracts/annotations.js'
import { annotateRow, storedTags } from './documents.js'

export interface RunStart {
  runId: string
  agentId: string
  params: unknown
  campaignId: string | null
  /** The model the device is served with as the run starts. */
  model?: string | null
  tags?: string[]
  note?: string
}

interface RawRun {
  id: string
  device_id: string
  kind: string
  status: RunView['status']
  started_at: string
  finished_at: string | null
  summary_json: string | null
  error: string | null
  campaign_id: string | null
  model: string | null
  tags_json: string
  note: string
}

function runView(r: RawRun): RunView {
  let summary: InferSummary | null = null
  try {
    summary = r.summary_json ? (JSON.parse(r.summary_json) as InferSummary) : null
  } catch {
    summary = null // a summary that does not read is shown as none, the run still listed
  }
  return {
    id: r.id,
    agentId: r.device_id,
    campaignId: r.campaign_id,
    model: r.model,
    status: r.status,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    error: r.error,
    tags: storedTags(r.tags_json),
    note: r.note,
    summary
  }
}

export class RunQueries {
  constructor(private readonly db: Database.Database) {}

  markInterrupted(now: string): number {
    return this.db.prepare(`UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'`).run(now).changes
  }

  start(r: RunStart): void {
    this.db
      .prepare(
        `INSERT INTO runs (id, device_id, kind, params_json, status, started_at, campaign_id, model, tags_json, note) VALUES (?, ?, 'infer', ?, 'running', ?, ?, ?, ?, ?)`
      )
      .run(r.runId, r.agentId, JSON.stringify(r.params), new Date().toISOString(), r.campaignId, r.model ?? null, JSON.stringify(r.tags ?? []), r.note ?? '')
  }

  /** Replaces a run's tags and/or note; false when there is no such run. */
  annotate(runId: string, a: Partial<Annotations>): boolean {
    return annotateRow(this.db, 'runs', runId, a)
  }

  /** One run with its summary, tags and note. */
  view(runId: string): RunView | undefined {
    const r = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(runId) as RawRun | undefined
    return r ? runView(r) : undefined
  }

  /**
   * Runs, newest first: of one device or all, the user's own (not a campaign's), a campaign's or
   * all, with a tag, at most `limit`.
   */
  list(o: { agentId?: string; source?: InferenceSource; tag?: string; limit: number }): RunView[] {
    const where: string[] = []
    const args: Record<string, unknown> = { limit: o.limit }
    if (o.agentId) {
      where.push('device_id = @agent')
      args['agent'] = o.agentId
    }
    if (o.source === 'user') where.push('campaign_id IS NULL')
    if (o.source === 'campaign') where.push('campaign_id IS NOT NULL')
    if (o.tag) {
      where.push(`EXISTS (SELECT 1 FROM json_each(CASE WHEN json_valid(tags_json) THEN tags_json ELSE '[]' END) t WHERE t.value = @tag)`)
      args['tag'] = o.tag
    }
    const sql = `SELECT * FROM runs${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC, rowid DESC LIMIT @limit`
    return (this.db.prepare(sql).all(args) as RawRun[]).map(runView)
  }

  /** The end-to-end latencies a run stored (completed inferences), ascending. */
  e2eMs(runId: string): number[] {
    return (this.db.prepare('SELECT e2e_ms AS v FROM inferences WHERE run_id = ? AND e2e_ms IS NOT NULL ORDER BY e2e_ms').all(runId) as { v: number }[]).map(
      (r) => r.v
    )
  }

  setStatus(runId: string, status: 'running' | 'done'): void {
    this.db.prepare('UPDATE runs SET status = ? WHERE id = ?').run(status, runId)
  }

  /**
   * A run's summary over every batch it stored: `previous` covered its earlier batches, `batch` the
   * last. Counts add up; latency quantiles, the met share and accuracy are recomputed from every
   * stored inference; prediction errors are the batches' averages weighted by their completed
   * inferences; the first plan stays the run's first.
   */
  private merged(runId: string, previous: InferSummary, batch: InferSummary): InferSummary {
    const rows = this.db.prepare('SELECT e2e_ms AS e2e, met, correct FROM inferences WHERE run_id = ? AND e2e_ms IS NOT NULL').all(runId) as {
      e2e: number
      met: number
      correct: number | null
    }[]
    const e2e = rows.map((r) => r.e2e).sort((a, b) => a - b)
    const q = (p: number) => (e2e.length ? quantileSorted(e2e, p) : Number.NaN)
    const labelled = rows.filter((r) => r.correct !== null)
    const weighted = (f: (s: InferSummary) => number | null): number | null => {
      const parts = [previous, batch].filter((s) => f(s) !== null && s.completed > 0)
      const n = parts.reduce((a, s) => a + s.completed, 0)
      return n ? parts.reduce((a, s) => a + f(s)! * s.completed, 0) / n : null
    }
    return {
      ...batch,
      count: previous.count + batch.count,
      completed: previous.completed + batch.completed,
      lost: previous.lost + batch.lost,
      plan: previous.plan,
      p50Ms: q(0.5),
      p95Ms: q(0.95),
      percentileMs: batch.percentile !== null && e2e.length ? q(batch.percentile / 100) : null,
      accuracy: labelled.length ? labelled.filter((r) => r.correct === 1).length / labelled.length : null,
      metShare: rows.length ? rows.filter((r) => r.met === 1).length / rows.length : 0,
      planChanges: previous.planChanges + batch.planChanges,
      prediction: {
        ...batch.prediction,
        mapeCorrected: weighted((s) => s.prediction.mapeCorrected),
        mapeUncorrected: weighted((s) => s.prediction.mapeUncorrected)
      },
      batches: (previous.batches ?? 1) + 1
    }
  }

  /**
   * Stores a completed run's inferences and marks it done, in one transaction; a batch that continues
   * the run (`previous`: its summary so far) adds its rows and leaves a summary over them all.
   */
  finish(runId: string, agentId: string, model: string, rows: readonly InferRow[], summary: InferSummary, previous: InferSummary | null = null): void {
    const insert = this.db.prepare(
      `INSERT OR IGNORE INTO inferences (request_id, run_id, device_id, plan_id, model, exit, device_layers, sample, label, predicted_label, correct, latency_ms, predicted_ms, predicted_json, device_ms, transfer_ms, edge_ms, e2e_ms, met, uplink_kbps, upload_bytes, created_at)
       VALUES (@requestId, @runId, @agentId, @planId, @model, @exit, @deviceLayers, @sample, @label, @predictedLabel, @correct, @latencyMs, @predictedMs, @predictedJson, @deviceMs, @transferMs, @edgeMs, @e2eMs, @met, @uplinkKbps, @uploadBytes, @createdAt)`
    )
    const now = new Date().toISOString()
    this.db.transaction(() => {
      for (const r of rows) {
        insert.run({
          requestId: r.requestId,
          runId,
          agentId,
          planId: r.planId,
          model,
          exit: r.exit,
          deviceLayers: r.deviceLayers,
          sample: r.sample,
          label: r.label,
          predictedLabel: r.predictedLabel,
          correct: r.correct === null ? null : r.correct ? 1 : 0,
          latencyMs: summary.latencyMs,
          predictedMs: r.predictedMs,
          predictedJson: JSON.stringify(r.predicted),
          deviceMs: r.deviceMs,
          transferMs: r.transferMs,
          edgeMs: r.edgeMs,
          e2eMs: r.e2eMs,
          met: r.met ? 1 : 0,
          uplinkKbps: r.uplinkKbps,
          uploadBytes: r.uploadBytes,
          createdAt: now
        })
      }
      const stored = previous ? this.merged(runId, previous, summary) : summary
      this.db.prepare(`UPDATE runs SET status = 'done', finished_at = ?, summary_json = ? WHERE id = ?`).run(now, JSON.stringify(stored), runId)
    })()
  }

  fail(runId: string, error: string): void {
    this.db.prepare(`UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?`).run(new Date().toISOString(), error, runId)
  }

  /**
   * The latest `limit` inferences of a device, or (with `afterId`) the first `limit` after that id;
   * oldest first. `source`: the user's runs (not a campaign's), a campaign's, or all.
   */
  inferences(agentId: string, limit: number, afterId?: number, source: InferenceSource = 'all'): InferencePoint[] {
    const cols =
      'id, created_at, run_id, plan_id, model, exit, device_layers, latency_ms, predicted_ms, device_ms, transfer_ms, edge_ms, e2e_ms, met, correct, uplink_kbps'
    const which =
      source === 'user'
        ? ' AND (run_id IS NULL OR run_id IN (SELECT id FROM runs WHERE campaign_id IS NULL))'
        : source === 'campaign'
          ? ' AND run_id IN (SELECT id FROM runs WHERE campaign_id IS NOT NULL)'
          : ''
    const rows = (
      afterId !== undefined
        ? this.db.prepare(`SELECT ${cols} FROM inferences WHERE device_id = ?${which} AND id > ? ORDER BY id ASC LIMIT ?`).all(agentId, afterId, limit)
        : this.db.prepare(`SELECT ${cols} FROM inferences WHERE device_id = ?${which} ORDER BY id DESC LIMIT ?`).all(agentId, limit).reverse()
    ) as Record<string, number | string | null>[]
    const bool = (v: unknown) => (v === null ? null : v === 1)
    return rows.map((r) => ({
      id: r['id'] as number,
      at: r['created_at'] as string,
      runId: r['run_id'] as string | null,
      planId: r['plan_id'] as string,
      exit: r['exit'] as number,
      deviceLayers: r['device_layers'] as number,
      latencyMs: r['latency_ms'] as number,
      predictedMs: r['predicted_ms'] as number,
      deviceMs: r['device_ms'] as number,
      transferMs: r['transfer_ms'] as number | null,
      edgeMs: r['edge_ms'] as number,
      e2eMs: r['e2e_ms'] as number | null,
      met: bool(r['met']),
      correct: bool(r['correct']),
      uplinkKbps: r['uplink_kbps'] as number | null,
      model: r['model'] as string
    }))
  }

  /** A run's status and how many inferences (and correct ones) it stored. */
  run(runId: string): { status: string; inferences: number; correct: number } | undefined {
    const run = this.db.prepare('SELECT status FROM runs WHERE id = ?').get(runId) as { status: string } | undefined
    if (!run) return undefined
    const n = this.db.prepare('SELECT COUNT(*) AS n, COALESCE(SUM(correct), 0) AS ok FROM inferences WHERE run_id = ?').get(runId) as { n: number; ok: number }
    return { status: run.status, inferences: n.n, correct: n.ok }
  }

  /** Ids of the runs with a status, oldest first. */
  withStatus(status: string): string[] {
    return (this.db.prepare('SELECT id FROM runs WHERE status = ? ORDER BY started_at').all(status) as { id: string }[]).map((r) => r.id)
  }

  /** How many runs a campaign (a sweep) made. */
  countForCampaign(campaignId: string): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM runs WHERE campaign_id = ?').get(campaignId) as { n: number }).n
  }

  /** Every inference (of one device, or all) as a file: one row each, with its run and campaign. */
  export(format: ExportFormat, agentId?: string): ExportDocument {
    return exportTable(this.db, 'runs', format, agentId)
  }

  /** Every plan of every plans campaign (its pinned runs' medians against the raw prediction), one row each. */
  exportPlans(format: ExportFormat, agentId?: string): ExportDocument {
    return exportTable(this.db, 'plans', format, agentId)
  }
}
