/** `edgent campaign run | list` and `edgent export`. */
import { writeFileSync, renameSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { UserError } from '../../shared/errors.js'
import { callConsole, findConsole } from '../console/api.js'
import { Store } from '../console/store.js'
import type { CampaignStatus } from '../campaign/runner.js'
import { ORT_PACKAGE_VERSION } from '../runtime/version.js'
import type { Progress } from './model.js'
import { table } from './format.js'

function running(dataDir: string) {
  const c = findConsole(resolve(dataDir))
  if (!c) throw new UserError(`no console is running on ${resolve(dataDir)}: start one with \`edgent serve\``)
  return c
}

const pctOrDash = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(1)} %`)

export function formatCampaign(s: CampaignStatus): string {
  const lines = [`campaign ${s.id} · ${s.kind} on ${s.deviceId} · ${s.status} · ${s.measurements} measurements${s.error ? ` · ${s.error}` : ''}`]
  if (s.fits) {
    lines.push(
      '',
      table(
        ['side', 'layer type', 'n', 'R²', 'MAPE', 'held-out n', 'held-out MAPE'],
        s.fits.map((f) => [f.side, f.key, String(f.n), f.r2 === null ? '—' : f.r2.toFixed(3), pctOrDash(f.mape), String(f.heldOutN), f.error ? f.error : pctOrDash(f.heldOutMape)]),
        [false, false, true, true, true, true, true]
      )
    )
    if (s.profileId) lines.push('', `profile ${s.profileId} stored (the device's current profile); \`edgent export\` writes it with the raw measurements`)
  }
  return lines.join('\n')
}

export async function campaignRun(o: { agent: string; kind: string; reps: number; dataDir: string; json?: boolean }, progress?: Progress): Promise<string> {
  const c = running(o.dataDir)
  const { id } = await callConsole<{ id: string }>(c, 'campaignStart', { agent: o.agent, kind: o.kind, reps: o.reps })
  let s: CampaignStatus
  for (;;) {
    s = await callConsole<CampaignStatus>(c, 'campaignStatus', { id })
    progress?.(Math.round(s.progress * 1000), 1000, `${o.kind} campaign on ${o.agent}`)
    if (s.status !== 'running') break
    await new Promise((r) => setTimeout(r, 500))
  }
  if (o.json) return JSON.stringify(s, null, 2)
  if (s.status !== 'done') throw new UserError(`campaign ${id} ${s.status}${s.error ? `: ${s.error}` : ''} (its ${s.measurements} measurements are kept)`)
  return formatCampaign(s)
}

export async function campaignList(dataDir: string, json: boolean): Promise<string> {
  const list = await callConsole<CampaignStatus[]>(running(dataDir), 'campaigns', {})
  if (json) return JSON.stringify(list, null, 2)
  return table(
    ['campaign', 'kind', 'device', 'status', 'progress', 'measurements', 'started'],
    list.map((s) => [s.id, s.kind, s.deviceId, s.status, `${Math.round(s.progress * 100)} %`, String(s.measurements), s.startedAt])
  )
}

/**
 * Calibration data a person can use elsewhere: the fitted profiles with their statistics, the raw
 * measurements with units, the devices' capabilities and the software versions. Read straight from
 * the database (the console need not run); written to a temporary file and renamed, so a failed
 * export leaves nothing half-written.
 */
export function exportCalibration(o: { dataDir: string; out: string; format: 'json' | 'csv'; campaign?: string }): string {
  const store = new Store(join(resolve(o.dataDir), 'edgent.db'))
  store.start()
  try {
    const db = store.handle
    const campaigns = (o.campaign ? db.prepare('SELECT * FROM campaigns WHERE id = ?').all(o.campaign) : db.prepare(`SELECT * FROM campaigns WHERE status = 'done' ORDER BY started_at`).all()) as { id: string; device_id: string }[]
    if (o.campaign && campaigns.length === 0) throw new UserError(`unknown campaign "${o.campaign}"`)
    if (campaigns.length === 0) throw new UserError('nothing to export: no completed campaign (run `edgent campaign run` first)')
    const ids = campaigns.map((c) => c.id)
    const marks = ids.map(() => '?').join(',')
    const measurements = db.prepare(`SELECT campaign_id, side, regression_key, spec_json, features_json, run_ms, load_ms, model_bytes, reps, held_out FROM measurements WHERE campaign_id IN (${marks}) ORDER BY id`).all(...ids) as Record<string, unknown>[]
    const tmp = `${o.out}.tmp-${process.pid}`
    if (o.format === 'csv') {
      const head = 'campaign,side,layer_type,config,features,run_ms,load_ms,model_bytes,reps,held_out'
      const q = (v: unknown) => `"${String(v).replace(/"/g, '""')}"`
      const rows = measurements.map((m) => [m['campaign_id'], m['side'], m['regression_key'], q(m['spec_json']), q(m['features_json']), m['run_ms'], m['load_ms'], m['model_bytes'], m['reps'], m['held_out']].join(','))
      writeFileSync(tmp, [head, ...rows].join('\n') + '\n')
    } else {
      const profiles = (db.prepare(`SELECT id, device_id, campaign_id, json, current FROM profiles WHERE campaign_id IN (${marks})`).all(...ids) as { id: string; device_id: string; campaign_id: string; json: string; current: number }[]).map((p) => ({ ...p, json: undefined, profile: JSON.parse(p.json) as unknown }))
      const devices = [...new Set(campaigns.map((c) => c.device_id))].map((id) => {
        const d = store.device(id)
        return { id, hello: d?.hello_json ? (JSON.parse(d.hello_json) as unknown) : null }
      })
      const doc = {
        format: 'edgent-calibration-export',
        schema: 1,
        exportedAt: new Date().toISOString(),
        software: { console: '0.1.0', node: process.versions.node, onnxruntime: ORT_PACKAGE_VERSION },
        units: { runMs: 'ms (median of reps)', loadMs: 'ms (session creation)', modelBytes: 'bytes', features: 'elements (batch 1), in the order of each profile regression\'s `features`' },
        campaigns,
        devices,
        profiles,
        measurements: measurements.map((m) => ({ ...m, spec: JSON.parse(m['spec_json'] as string) as unknown, features: JSON.parse(m['features_json'] as string) as unknown, spec_json: undefined, features_json: undefined, held_out: m['held_out'] === 1 }))
      }
      writeFileSync(tmp, JSON.stringify(doc, null, 2) + '\n')
    }
    renameSync(tmp, o.out)
    return `wrote ${o.out}: ${campaigns.length} campaign(s), ${measurements.length} measurements (${o.format})`
  } finally {
    store.stop()
  }
}
