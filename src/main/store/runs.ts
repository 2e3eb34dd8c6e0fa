/**
 * Co-inference runs and their inferences. A run's rows are written in one transaction with its
 * status when the batch completes, so an agent that dies mid-run leaves a run marked failed and no
 * partial rows.
 */
import type { InferenceSource } from '../../shared/contracts/console-api.js'
import type { ExportDocument, ExportFormat } from './calibration.js'
import { exportTable } from './table-export.js'
import type Database from 'better-sqlite3'
import type { InferRow, InferSummary, InferencePoint } from '../../shared/contracts/console-api.js'

export interface RunStart {
  runId: string
  agentId: string
  params: unknown
  campaignId: string | null
}

export class RunQueries {
  constructor(private readonly db: Database.Database) {}

  markInterrupted(now: string): number {
    return this.db.prepare(`UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'`).run(now).changes
  }

  start(r: RunStart): void {
    this.db
      .prepare(`INSERT INTO runs (id, device_id, kind, params_json, status, started_at, campaign_id) VALUES (?, ?, 'infer', ?, 'running', ?, ?)`)
      .run(r.runId, r.agentId, JSON.stringify(r.params), new Date().toISOString(), r.campaignId)
  }

  /** Stores a completed run's inferences and marks it done, in one transaction. */
  finish(runId: string, agentId: string, model: string, rows: readonly InferRow[], summary: InferSummary): void {
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
      this.db.prepare(`UPDATE runs SET status = 'done', finished_at = ?, summary_json = ? WHERE id = ?`).run(now, JSON.stringify(summary), runId)
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
      'id, created_at, run_id, plan_id, exit, device_layers, latency_ms, predicted_ms, device_ms, transfer_ms, edge_ms, e2e_ms, met, correct, uplink_kbps'
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
      uplinkKbps: r['uplink_kbps'] as number | null
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
