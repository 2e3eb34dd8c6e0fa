/**
 * Co-inference runs and bandwidth samples as files a researcher loads as they are (`edgent export
 * --what runs|bandwidth`, the Live page): one row per inference or sample, named columns, CSV or JSON.
 */
import type Database from 'better-sqlite3'
import { UserError } from '../../shared/errors.js'
import { csvCell, type ExportDocument, type ExportFormat } from './calibration.js'

export type TableExport = 'runs' | 'bandwidth'

const QUERIES: Record<TableExport, { columns: string[]; sql: (where: string) => string; none: string }> = {
  runs: {
    // One row per inference, with its run's kind and campaign (null: the user's own run).
    columns: [
      'id',
      'at',
      'device',
      'run_id',
      'run_status',
      'campaign_id',
      'plan_id',
      'model',
      'exit',
      'device_layers',
      'sample',
      'label',
      'predicted_label',
      'correct',
      'latency_requirement_ms',
      'predicted_ms',
      'device_ms',
      'transfer_ms',
      'edge_ms',
      'e2e_ms',
      'met',
      'uplink_kbps',
      'upload_bytes'
    ],
    sql: (where) =>
      `SELECT i.id AS id, i.created_at AS at, i.device_id AS device, i.run_id AS run_id, r.status AS run_status, r.campaign_id AS campaign_id,
              i.plan_id AS plan_id, i.model AS model, i.exit AS exit, i.device_layers AS device_layers, i.sample AS sample, i.label AS label,
              i.predicted_label AS predicted_label, i.correct AS correct, i.latency_ms AS latency_requirement_ms, i.predicted_ms AS predicted_ms,
              i.device_ms AS device_ms, i.transfer_ms AS transfer_ms, i.edge_ms AS edge_ms, i.e2e_ms AS e2e_ms, i.met AS met,
              i.uplink_kbps AS uplink_kbps, i.upload_bytes AS upload_bytes
       FROM inferences i LEFT JOIN runs r ON r.id = i.run_id${where.replace('device_id', 'i.device_id')} ORDER BY i.id`,
    none: 'no co-inference stored yet (run `edgent infer` or the Live page first)'
  },
  bandwidth: {
    columns: ['at', 'device', 'source', 'bytes', 'sample_kbps', 'estimate_kbps'],
    sql: (where) => `SELECT at, device_id AS device, source, bytes, sample_kbps, estimate_kbps FROM bandwidth_samples${where} ORDER BY id`,
    none: 'no bandwidth sample stored yet (devices are probed while the console runs)'
  }
}

const BOOLEAN_COLUMNS = new Set(['correct', 'met'])

export function exportTable(db: Database.Database, what: TableExport, format: ExportFormat, device?: string): ExportDocument {
  const q = QUERIES[what]
  const rows = (device ? db.prepare(q.sql(' WHERE device_id = ?')).all(device) : db.prepare(q.sql('')).all()) as Record<string, unknown>[]
  if (rows.length === 0) throw new UserError(`nothing to export: ${device ? `${device} has ` : ''}${q.none}`)
  const value = (c: string, v: unknown) => (BOOLEAN_COLUMNS.has(c) && v !== null && v !== undefined ? v === 1 : v)
  const content =
    format === 'csv'
      ? `${[q.columns.join(','), ...rows.map((r) => q.columns.map((c) => csvCell(value(c, r[c]))).join(','))].join('\n')}\n`
      : `${JSON.stringify(
          {
            format: `edgent-${what}-export`,
            schema: 1,
            exportedAt: new Date().toISOString(),
            ...(device ? { device } : {}),
            units:
              what === 'runs'
                ? { times: 'ms', latency_requirement_ms: 'the requirement the plan was made for', uplink_kbps: 'the rate the plan assumed (kbit/s)' }
                : { sample_kbps: 'one measured transfer or probe, kbit/s', estimate_kbps: 'the smoothed estimate after it', bytes: 'the transfer size' },
            rows: rows.map((r) => Object.fromEntries(q.columns.map((c) => [c, value(c, r[c]) ?? null])))
          },
          null,
          2
        )}\n`
  return { content, summary: `${rows.length} ${what === 'runs' ? 'inferences' : 'bandwidth samples'} (${format})`, campaigns: 0, measurements: rows.length }
}
