/** `edgent campaign run | list` and `edgent export`. */
import { existsSync, renameSync, writeFileSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { z } from 'zod'
import { UserError, describeIssues } from '../../shared/errors.js'
import { parseProfile, type CalibrationProfile } from '../../shared/latency.js'
import { AGENT_ID_RE } from '../../shared/topics.js'
import { readJsonFile } from '../files.js'
import { callConsole, findConsole } from '../console/api.js'
import { Store } from '../console/store.js'
import type { CampaignStatus } from '../campaign/runner.js'
import type { DeviceView, LatencySource, ProfileView } from '../../shared/console-api.js'
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
  if (s.sweep) {
    const w = s.sweep
    lines.push(
      '',
      table(
        ['uplink kbps', 'requirement ms', 'exit', 'device layers', 'predicted ms', 'measured p50 ms', 'error', 'met', 'accuracy'],
        w.points.map((p) => [String(p.uplinkKbps), String(p.latencyMs), String(p.exit), `${p.deviceLayers}/${p.layers}`, p.predictedMs.toFixed(1), p.measuredMs.toFixed(1), pctOrDash(p.relError), pctOrDash(p.metShare), pctOrDash(p.accuracy)]),
        [true, true, true, true, true, true, true, true, true]
      ),
      '',
      `predicted vs measured end-to-end latency over ${w.points.reduce((a, p) => a + p.completed, 0)} co-inferences: median error ${pctOrDash(w.medianRelError)}`
    )
  }
  return lines.join('\n')
}

export async function campaignRun(o: { agent: string; kind: string; reps: number; bandwidthsKbps?: number[]; latenciesMs?: number[]; dataDir: string; json?: boolean }, progress?: Progress): Promise<string> {
  const c = running(o.dataDir)
  const { id } = await callConsole<{ id: string }>(c, 'campaignStart', {
    agent: o.agent,
    kind: o.kind,
    reps: o.reps,
    ...(o.bandwidthsKbps ? { bandwidthsKbps: o.bandwidthsKbps } : {}),
    ...(o.latenciesMs ? { latenciesMs: o.latenciesMs } : {})
  })
  let s: CampaignStatus
  for (;;) {
    s = await callConsole<CampaignStatus>(c, 'campaignStatus', { id })
    progress?.(Math.round(s.progress * 1000), 1000, `${o.kind} campaign on ${o.agent}`)
    if (s.status !== 'running') break
    await new Promise((r) => setTimeout(r, 500))
  }
  if (o.json) return JSON.stringify(s, null, 2)
  if (s.status !== 'done') throw new UserError(`campaign ${id} ${s.status}${s.error ? `: ${s.error}` : ''} (its ${s.kind === 'sweep' ? `${s.sweep?.points.length ?? 0} points` : `${s.measurements} measurements`} are kept)`)
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
    const doc = buildCalibrationExport(store, o)
    const tmp = `${o.out}.tmp-${process.pid}`
    writeFileSync(tmp, doc.content)
    renameSync(tmp, o.out)
    return `wrote ${o.out}: ${doc.summary}`
  } finally {
    store.stop()
  }
}

/** The export document of `edgent export` (and of the console's export button), as text. */
export function buildCalibrationExport(store: Store, o: { format: 'json' | 'csv'; campaign?: string }): { content: string; summary: string; campaigns: number; measurements: number } {
  const db = store.handle
  const campaigns = (o.campaign ? db.prepare('SELECT * FROM campaigns WHERE id = ?').all(o.campaign) : db.prepare(`SELECT * FROM campaigns WHERE status = 'done' ORDER BY started_at`).all()) as { id: string; device_id: string }[]
  if (o.campaign && campaigns.length === 0) throw new UserError(`unknown campaign "${o.campaign}"`)
  if (campaigns.length === 0) throw new UserError('nothing to export: no completed campaign (run `edgent campaign run` first)')
  const ids = campaigns.map((c) => c.id)
  const marks = ids.map(() => '?').join(',')
  const measurements = db.prepare(`SELECT campaign_id, side, regression_key, spec_json, features_json, run_ms, load_ms, model_bytes, reps, held_out, pass FROM measurements WHERE campaign_id IN (${marks}) ORDER BY id`).all(...ids) as Record<string, unknown>[]
  let content: string
  if (o.format === 'csv') {
    const head = 'campaign,side,layer_type,config,features,run_ms,load_ms,model_bytes,reps,held_out,pass'
    const q = (v: unknown) => `"${String(v).replace(/"/g, '""')}"`
    const rows = measurements.map((m) => [m['campaign_id'], m['side'], m['regression_key'], q(m['spec_json']), q(m['features_json']), m['run_ms'], m['load_ms'], m['model_bytes'], m['reps'], m['held_out'], m['pass']].join(','))
    content = [head, ...rows].join('\n') + '\n'
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
      units: { runMs: 'ms (median of reps)', loadMs: 'ms (session creation)', modelBytes: 'bytes', pass: 'which pass over the grid (a layers campaign makes 3; its profile fits each configuration\'s fastest pass)', features: 'elements (batch 1), in the order of each profile regression\'s `features`' },
      campaigns,
      devices,
      profiles,
      measurements: measurements.map((m) => ({ ...m, spec: JSON.parse(m['spec_json'] as string) as unknown, features: JSON.parse(m['features_json'] as string) as unknown, spec_json: undefined, features_json: undefined, held_out: m['held_out'] === 1 }))
    }
    content = JSON.stringify(doc, null, 2) + '\n'
  }
  return { content, summary: `${campaigns.length} campaign(s), ${measurements.length} measurements (${o.format})`, campaigns: campaigns.length, measurements: measurements.length }
}

const ExportSchema = z.object({
  format: z.literal('edgent-calibration-export'),
  schema: z.literal(1),
  campaigns: z.array(z.object({ id: z.string().min(1), device_id: z.string().regex(AGENT_ID_RE), kind: z.string(), params_json: z.string(), status: z.string(), progress: z.number().optional(), started_at: z.string(), finished_at: z.string().nullable().optional(), error: z.string().nullable().optional() }).loose()).min(1),
  devices: z.array(z.object({ id: z.string().regex(AGENT_ID_RE), hello: z.unknown() })),
  profiles: z.array(z.object({ id: z.string().min(1), device_id: z.string(), campaign_id: z.string(), current: z.number().optional(), profile: z.unknown() }).loose()),
  measurements: z.array(
    z.object({ campaign_id: z.string(), side: z.enum(['device', 'edge']), regression_key: z.string(), spec: z.unknown(), features: z.array(z.number()), run_ms: z.number().nonnegative(), load_ms: z.number().nonnegative(), model_bytes: z.number().int().nonnegative(), reps: z.number().int().positive(), held_out: z.boolean(), pass: z.number().int().nonnegative().optional() }).loose()
  )
})

/**
 * Reads calibration data written by `edgent export` into a data directory, in one transaction:
 * a malformed or foreign file, or one whose campaigns are already there, changes nothing.
 */
export function importCalibration(o: { file: string; dataDir: string }): string {
  const raw = readJsonFile(o.file, 'import')
  const parsed = ExportSchema.safeParse(raw)
  if (!parsed.success) throw new UserError(describeIssues(`import ${basename(o.file)}`, parsed.error.issues))
  const doc = parsed.data
  const campaignIds = new Set(doc.campaigns.map((c) => c.id))
  for (const p of doc.profiles) {
    if (!campaignIds.has(p.campaign_id)) throw new UserError(`import ${basename(o.file)}: profile ${p.id} names campaign ${p.campaign_id}, which the file does not hold`)
    parseProfile(p.profile, `import ${basename(o.file)}: profile ${p.id}`)
  }
  for (const m of doc.measurements) if (!campaignIds.has(m.campaign_id)) throw new UserError(`import ${basename(o.file)}: a measurement names campaign ${m.campaign_id}, which the file does not hold`)
  const store = new Store(join(resolve(o.dataDir), 'edgent.db'))
  store.start()
  try {
    const db = store.handle
    for (const c of doc.campaigns) if (db.prepare('SELECT 1 FROM campaigns WHERE id = ?').get(c.id)) throw new UserError(`import ${basename(o.file)}: campaign ${c.id} is already in ${resolve(o.dataDir)}`)
    const now = new Date().toISOString()
    db.transaction(() => {
      for (const id of new Set([...doc.devices.map((d) => d.id), ...doc.campaigns.map((c) => c.device_id)])) {
        if (store.device(id)) continue
        // Known from calibration data only: not paired here (no token), so it cannot connect.
        const hello = doc.devices.find((d) => d.id === id)?.hello
        db.prepare(`INSERT INTO devices (id, token_hash, created_at, revoked_at, hello_json, state) VALUES (?, '', ?, ?, ?, 'imported')`).run(id, now, now, hello ? JSON.stringify(hello) : null)
      }
      for (const c of doc.campaigns) {
        db.prepare(`INSERT INTO campaigns (id, device_id, kind, params_json, status, progress, started_at, finished_at, error) VALUES (?,?,?,?,?,?,?,?,?)`).run(
          c.id, c.device_id, c.kind, c.params_json, c.status, c.progress ?? 1, c.started_at, c.finished_at ?? null, c.error ?? null
        )
      }
      const ins = db.prepare(`INSERT INTO measurements (campaign_id, side, regression_key, spec_json, features_json, run_ms, load_ms, model_bytes, reps, held_out, pass, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`)
      for (const m of doc.measurements) ins.run(m.campaign_id, m.side, m.regression_key, JSON.stringify(m.spec), JSON.stringify(m.features), m.run_ms, m.load_ms, m.model_bytes, m.reps, m.held_out ? 1 : 0, m.pass ?? 0, now)
      for (const p of doc.profiles) {
        const hasCurrent = db.prepare('SELECT 1 FROM profiles WHERE device_id = ? AND current = 1').get(p.device_id)
        db.prepare('INSERT INTO profiles (id, device_id, campaign_id, created_at, json, current) VALUES (?,?,?,?,?,?)').run(p.id, p.device_id, p.campaign_id, now, JSON.stringify(p.profile), hasCurrent ? 0 : 1)
      }
    })()
    return `imported ${doc.campaigns.length} campaign(s), ${doc.profiles.length} profile(s) (${doc.profiles.map((p) => p.id).join(', ')}), ${doc.measurements.length} measurements into ${resolve(o.dataDir)}`
  } finally {
    store.stop()
  }
}

/** A stored profile by id (`edgent plan --profile <id>`). */
export function storedProfile(dataDir: string, id: string): CalibrationProfile | null {
  const file = join(resolve(dataDir), 'edgent.db')
  if (!existsSync(file)) return null
  const store = new Store(file)
  store.start()
  try {
    const row = store.handle.prepare('SELECT json FROM profiles WHERE id = ?').get(id) as { json: string } | undefined
    return row ? parseProfile(JSON.parse(row.json), `stored profile ${id}`) : null
  } finally {
    store.stop()
  }
}

export async function profileList(agent: string, dataDir: string, json: boolean): Promise<string> {
  const c = running(dataDir)
  const list = await callConsole<ProfileView[]>(c, 'profiles', { agent })
  const dev = (await callConsole<DeviceView[]>(c, 'devices', {})).find((d) => d.id === agent)
  if (json) return JSON.stringify({ latencySource: dev?.latencySource ?? null, profiles: list }, null, 2)
  const src = dev?.latencySource
  const head = src
    ? src.kind === 'profile'
      ? `${agent} is planned with profile ${src.profileId}`
      : `${agent} is planned with the measured per-layer tables${src.problem ? ` (${src.problem})` : ''}`
    : `${agent} is not paired`
  if (!list.length) return `${head}\nno fitted profile yet: run \`edgent campaign run --agent ${agent} --kind layers\``
  const med = (p: ProfileView) => {
    const m = p.fits.filter((f) => f.heldOutMape !== null).map((f) => f.heldOutMape!).sort((a, b) => a - b)
    return m.length ? pctOrDash(m[m.length >> 1]!) : '—'
  }
  return [head, '', table(['profile', 'campaign', 'kind', 'created', 'current', 'median held-out MAPE'], list.map((p) => [p.id, p.campaignId.slice(0, 8), p.campaignKind, p.createdAt, p.current ? 'yes' : '', med(p)]))].join('\n')
}

export async function profileUse(agent: string, profile: string, dataDir: string): Promise<string> {
  const r = await callConsole<LatencySource>(running(dataDir), 'useProfile', { agent, profile: profile === 'measured' ? null : profile })
  if (r.kind === 'profile') return `${agent} is now planned with profile ${r.profileId}`
  return `${agent} is now planned with the measured per-layer tables${r.problem ? ` (${r.problem})` : ''}`
}
