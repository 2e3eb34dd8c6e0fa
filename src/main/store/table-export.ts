/**
 * Co-inference runs, bandwidth samples and plans campaigns as files a researcher loads as they are
 * (`edgent export --what runs|bandwidth|plans`, the Live page): one row per inference, sample or
 * plan, named columns, CSV or JSON.
 */
import type Database from 'better-sqlite3'
import { UserError } from '../../shared/errors.js'
import { csvCell, type ExportDocument, type ExportFormat } from './calibration.js'

export type TableExport = 'runs' | 'bandwidth' | 'plans'

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
      'upload_bytes',
      'run_tags',
      'run_note'
    ],
    sql: (where) =>
      `SELECT i.id AS id, i.created_at AS at, i.device_id AS device, i.run_id AS run_id, r.status AS run_status, r.campaign_id AS campaign_id,
              i.plan_id AS plan_id, i.model AS model, i.exit AS exit, i.device_layers AS device_layers, i.sample AS sample, i.label AS label,
              i.predicted_label AS predicted_label, i.correct AS correct, i.latency_ms AS latency_requirement_ms, i.predicted_ms AS predicted_ms,
              i.device_ms AS device_ms, i.transfer_ms AS transfer_ms, i.edge_ms AS edge_ms, i.e2e_ms AS e2e_ms, i.met AS met,
              i.uplink_kbps AS uplink_kbps, i.upload_bytes AS upload_bytes,
              (SELECT group_concat(t.value, ' ') FROM json_each(CASE WHEN json_valid(r.tags_json) THEN r.tags_json ELSE '[]' END) t) AS run_tags, r.note AS run_note
       FROM inferences i LEFT JOIN runs r ON r.id = i.run_id${where.replace('device_id', 'i.device_id')} ORDER BY i.id`,
    none: 'no co-inference stored yet (run `edgent infer` or the Live page first)'
  },
  plans: {
    // One row per plan of every plans campaign: its raw prediction (no online correction) against the medians measured.
    columns: [
      'campaign_id',
      'campaign_status',
      'started_at',
      'device',
      'predictor',
      'uplink_kbps',
      'inferences_per_plan',
      'exit',
      'device_layers',
      'layers',
      'completed',
      'run_ids',
      'predicted_device_ms',
      'measured_device_ms',
      'predicted_edge_ms',
      'measured_edge_ms',
      'predicted_e2e_ms',
      'measured_e2e_ms'
    ],
    sql: (where) =>
      `SELECT c.id AS campaign_id, c.status AS campaign_status, c.started_at AS started_at, c.device_id AS device,
              json_extract(c.summary_json, '$.source.predictor') AS predictor, json_extract(c.summary_json, '$.uplinkKbps') AS uplink_kbps,
              json_extract(c.summary_json, '$.inferencesPerPlan') AS inferences_per_plan,
              json_extract(p.value, '$.exit') AS exit, json_extract(p.value, '$.deviceLayers') AS device_layers, json_extract(p.value, '$.layers') AS layers,
              json_extract(p.value, '$.completed') AS completed, (SELECT group_concat(r.value, ' ') FROM json_each(p.value, '$.runIds') r) AS run_ids,
              json_extract(p.value, '$.predicted.deviceMs') AS predicted_device_ms, json_extract(p.value, '$.measured.deviceMs') AS measured_device_ms,
              json_extract(p.value, '$.predicted.edgeMs') AS predicted_edge_ms, json_extract(p.value, '$.measured.edgeMs') AS measured_edge_ms,
              json_extract(p.value, '$.predicted.e2eMs') AS predicted_e2e_ms, json_extract(p.value, '$.measured.e2eMs') AS measured_e2e_ms
       FROM campaigns c, json_each(c.summary_json, '$.points') p
       WHERE c.kind = 'plans' AND c.summary_json IS NOT NULL${where.replace(' WHERE device_id', ' AND c.device_id')} ORDER BY c.started_at, CAST(p.key AS INTEGER)`,
    none: 'no plans campaign stored yet (`edgent campaign run --kind plans`)'
  },
  bandwidth: {
    columns: ['at', 'device', 'source', 'bytes', 'sample_kbps', 'estimate_kbps'],
    sql: (where) => `SELECT at, device_id AS device, source, bytes, sample_kbps, estimate_kbps FROM bandwidth_samples${where} ORDER BY id`,
    none: 'no bandwidth sample stored yet (devices are probed while the console runs)'
  }
}

const BOOLEAN_COLUMNS = new Set(['correct', 'met'])

const UNITS: Record<TableExport, Record<string, string>> = {
  runs: { times: 'ms', latency_requirement_ms: 'the requirement the plan was made for', uplink_kbps: 'the rate the plan assumed (kbit/s)' },
  bandwidth: { sample_kbps: 'one measured transfer or probe, kbit/s', estimate_kbps: 'the smoothed estimate after it', bytes: 'the transfer size' },
  plans: {
    times: 'ms; predicted: the latency source named in predictor, without online correction; measured: the median of the plan’s co-inferences (its run)',
    uplink_kbps: 'the fixed uplink every plan co-inferred at (kbit/s)'
  }
}

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
            units: UNITS[what],
            rows: rows.map((r) => Object.fromEntries(q.columns.map((c) => [c, value(c, r[c]) ?? null])))
          },
          null,
          2
        )}\n`
  const noun = { runs: 'inferences', bandwidth: 'bandwidth samples', plans: 'plans' }[what]
  return { content, summary: `${rows.length} ${noun} (${format})`, campaigns: 0, measurements: rows.length }
}
