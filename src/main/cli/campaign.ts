/** `edgent campaign run | list`, `edgent profile list | use`, `edgent export | import`. */
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { CampaignKind, CampaignStatus, ErrorStats, LinkStage, PlansSummary, ProfileView } from '../../shared/contracts/console-api.js'
import { UserError } from '../../shared/errors.js'
import { REGRESSOR_TEXT, type CalibrationProfile, type Regressor } from '../../shared/algorithms/latency.js'
import { readCalibrationFile, writeExport, type ExportFormat } from '../store/calibration.js'
import { withStore } from '../store/store.js'
import { callConsole, runningConsole as running } from './client.js'
import { noteCell, table } from './format.js'
import type { Progress } from './model.js'

const dbFile = (dataDir: string) => join(resolve(dataDir), 'edgent.db')

const pctOrDash = (v: number | null | undefined) => (v === null || v === undefined ? '—' : `${(v * 100).toFixed(1)} %`)

/** What a fit is: the campaign's regression, the paper's form or a constant it fell back to, or none. */
export function fitKind(f: { n: number; fallback?: boolean; error?: string }): string {
  if (f.n === 0) return 'none'
  if (!f.fallback) return f.error?.startsWith('constant') ? 'constant' : 'regression'
  return f.error?.startsWith('constant') ? 'constant (fell back)' : "paper's form (fell back)"
}

export function formatCampaign(s: CampaignStatus): string {
  const lines = [`campaign ${s.id} · ${s.kind} on ${s.agentId} · ${s.status} · ${s.measurements} measurements${s.error ? ` · ${s.error}` : ''}`]
  for (const w of s.warnings ?? []) lines.push(`warning: ${w}`)
  if (s.fits) {
    lines.push(
      '',
      table(
        ['side', 'layer type', 'fit', 'n', 'R²', 'training MAPE', 'held-out n', 'held-out MAPE', "paper's variables held-out", 'tree ensemble held-out'],
        s.fits.map((f) => [
          f.side,
          f.key,
          fitKind(f),
          String(f.n),
          f.r2 === null ? '—' : f.r2.toFixed(3),
          pctOrDash(f.mape),
          String(f.heldOutN),
          pctOrDash(f.heldOutMape),
          f.paperHeldOutMape === undefined ? '—' : pctOrDash(f.paperHeldOutMape),
          f.forestHeldOutMape === undefined ? '—' : pctOrDash(f.forestHeldOutMape)
        ]),
        [false, false, false, true, true, true, true, true, true, true]
      )
    )
    const notes = s.fits.filter((f) => f.error)
    if (notes.length) lines.push('', ...notes.map((f) => `${f.side} ${f.key}: ${f.error}`))
    if (s.link) lines.push('', ...formatLink(s.link))
    if (s.profileId) lines.push('', `profile ${s.profileId} stored (the device's current profile); \`edgent export\` writes it with the raw measurements`)
  }
  if (s.sweep) {
    const w = s.sweep
    lines.push(
      '',
      table(
        ['uplink kbps', 'requirement ms', 'exit', 'device layers', 'predicted ms', 'measured p50 ms', 'error', 'met', 'accuracy'],
        w.points.map((p) => [
          String(p.uplinkKbps),
          String(p.latencyMs),
          String(p.exit),
          `${p.deviceLayers}/${p.layers}`,
          p.predictedMs.toFixed(1),
          p.measuredMs.toFixed(1),
          pctOrDash(p.relError),
          pctOrDash(p.metShare),
          pctOrDash(p.accuracy)
        ]),
        [true, true, true, true, true, true, true, true, true]
      ),
      '',
      `predicted vs measured end-to-end latency over ${w.points.reduce((a, p) => a + p.completed, 0)} co-inferences: median error ${pctOrDash(w.medianRelError)}`
    )
  }
  if (s.plans) lines.push('', ...formatPlans(s.plans))
  return lines.join('\n')
}

/** The link stage: messaging and each side's segments as plans run them, from the probes. */
export function formatLink(l: LinkStage): string[] {
  if (!l.messaging || !l.segments) return [l.why ?? 'link stage not run']
  const seg = (s: 'device' | 'edge') => {
    const t = l.segments![s]
    return [
      `${t.fixedMs.toFixed(3)} ms + ${t.scale.toFixed(2)} × composed prediction`,
      ...(t.perInputElementMs !== undefined ? [`${(t.perInputElementMs * 1e6).toFixed(2)} ms per million input elements`] : []),
      ...(t.perOutputElementMs !== undefined ? [`${(t.perOutputElementMs * 1e6).toFixed(2)} ms per million output elements`] : []),
      ...(t.perIdleMs !== undefined ? [`${t.perIdleMs.toFixed(4)} × the idle before it (the device segment)`] : []),
      ...(t.sendingMs !== undefined ? [`${t.sendingMs.toFixed(3)} ms when the plan sends (the worker waited out the remote part)`] : []),
      ...(t.looError != null ? [`(leave-one-out error on the probes ${(t.looError * 100).toFixed(1)} %)`] : [])
    ]
      .join(' + ')
      .replace(' + (', ' (')
  }
  return [
    `link stage (${l.probes.reduce((a, p) => a + p.n, 0)} co-inferences of ${l.probes.length} probe plans of the served model: ${l.probes.map((p) => `exit ${p.exit} ${p.deviceLayers}/${p.layers}`).join(', ')}):`,
    `  messaging ${l.messaging.fixedMs.toFixed(2)} ms per inference that sends something + ${(l.messaging.perByteMs * 1e6).toFixed(1)} ms per MB sent${
      l.messaging.perIdleMs !== undefined ? ` + ${l.messaging.perIdleMs.toFixed(3)} × the device segment before it` : ''
    }, beside the link's serialisation time${l.messaging.looErrorMs != null ? ` (leave-one-out error on the probes ${l.messaging.looErrorMs.toFixed(2)} ms)` : ''}`,
    `  device segments as plans run them: ${seg('device')}`,
    `  edge segments as plans run them: ${seg('edge')}`
  ]
}

const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2))

/** A plans campaign: every plan's parts, predicted against measured, then the error summary per part. */
export function formatPlans(p: PlansSummary): string[] {
  const rel = (pred: number, meas: number) => pctOrDash(meas > 0 ? (pred - meas) / meas : null)
  const stat = (name: string, e: ErrorStats, ceiling?: ErrorStats, unit = 'plans') =>
    `${name.padEnd(14)} ${String(e.n).padStart(3)} ${unit.padEnd(5)}  within ±10 % ${pctOrDash(e.within10).padStart(7)}  ±5 % ${pctOrDash(e.within5).padStart(7)}  median ${pctOrDash(e.median).padStart(7)}  p90 ${pctOrDash(e.p90).padStart(7)}${
      ceiling ? `   (test–retest ${pctOrDash(ceiling.within10)} within ±10 %)` : ''
    }`
  return [
    `predicted by ${p.source.predictor}, without online correction; measured: the median of ${p.inferencesPerPlan} co-inferences per plan (${p.passes} passes, after ${p.warmupPerPass} warm-up each) at ${p.uplinkKbps} kbps`,
    '',
    table(
      ['exit', 'device layers', 'device pred', 'meas', 'error', 'edge pred', 'meas', 'error', 'e2e pred', 'meas', 'error'],
      p.points.map((x) => {
        const dev = x.deviceLayers > 0
        const edge = x.deviceLayers < x.layers
        return [
          String(x.exit),
          `${x.deviceLayers}/${x.layers}`,
          dev ? ms(x.predicted.deviceMs) : '—',
          dev ? ms(x.measured.deviceMs) : '—',
          dev ? rel(x.predicted.deviceMs, x.measured.deviceMs) : '—',
          edge ? ms(x.predicted.edgeMs) : '—',
          edge ? ms(x.measured.edgeMs) : '—',
          edge ? rel(x.predicted.edgeMs, x.measured.edgeMs) : '—',
          ms(x.predicted.e2eMs),
          ms(x.measured.e2eMs),
          rel(x.predicted.e2eMs, x.measured.e2eMs)
        ]
      }),
      [true, true, true, true, true, true, true, true, true, true, true]
    ),
    '',
    ...(p.unsendable?.length
      ? [
          `not measured: ${p.unsendable.length} plan(s) send more than the console accepts (${p.unsendable.map((u) => `exit ${u.exit} ${u.deviceLayers}: ${u.bytes} bytes`).join(', ')})`,
          ''
        ]
      : []),
    '|predicted − measured| / measured (times in ms):',
    stat('device segment', p.errors.device, p.retest?.device),
    stat('edge segment', p.errors.edge, p.retest?.edge),
    stat('end to end', p.errors.e2e, p.retest?.e2e),
    ...(p.retest
      ? [
          "test–retest (the measurement's own noise: each plan's pass medians scored against its later passes'):",
          stat('device segment', p.retest.device, undefined, 'pairs'),
          stat('edge segment', p.retest.edge, undefined, 'pairs'),
          stat('end to end', p.retest.e2e, undefined, 'pairs')
        ]
      : []),
    ...(p.errorsWithoutProbes
      ? [
          `without the ${p.errorsWithoutProbes.probes.length} plans its profile's link stage co-inferred (${p.errorsWithoutProbes.probes.map((q) => `exit ${q.exit} ${q.deviceLayers}`).join(', ')}):`,
          stat('device segment', p.errorsWithoutProbes.device),
          stat('edge segment', p.errorsWithoutProbes.edge),
          stat('end to end', p.errorsWithoutProbes.e2e)
        ]
      : []),
    ...(p.drift
      ? [
          `the machine's speed since the profile's link stage: its ${p.drift.probes} probe plans ran here at device ×${p.drift.device?.toFixed(2) ?? '—'}, edge ×${p.drift.edge?.toFixed(2) ?? '—'} of their link-stage times; with that drift taken out (a diagnostic, not a prediction):`,
          stat('device segment', p.drift.errors.device),
          stat('edge segment', p.drift.errors.edge),
          stat('end to end', p.drift.errors.e2e)
        ]
      : []),
    ...(p.predictors?.length
      ? [
          '',
          'every latency source scored on these plans (raw, no online correction): within ±10 % · median / p90 error; the grid: held-out MAPE per side (* plans the device now)',
          table(
            ['predictor', 'device segment', 'edge segment', 'end to end', 'grid held-out device / edge'],
            p.predictors.map((q) => [
              `${q.current ? '* ' : ''}${q.name}`,
              both(q.errors.device),
              both(q.errors.edge),
              both(q.errors.e2e),
              q.gridHeldOut ? `${pctOrDash(q.gridHeldOut.device)} / ${pctOrDash(q.gridHeldOut.edge)}` : '—'
            ]),
            [false, true, true, true, true]
          )
        ]
      : []),
    ...(p.choice
      ? [
          '',
          p.choice.changed
            ? `the profile now predicts with ${REGRESSOR_TEXT[p.choice.regressor]} (${p.choice.why})`
            : `the profile keeps ${REGRESSOR_TEXT[p.choice.regressor]}: ${p.choice.why}`
        ]
      : [])
  ]
}

const both = (e: ErrorStats) => `${pctOrDash(e.within10)} · ${pctOrDash(e.median)} / ${pctOrDash(e.p90)}`

export interface CampaignRunOptions {
  agent: string
  kind: string
  reps: number
  bandwidthsKbps?: number[]
  latenciesMs?: number[]
  uplinkKbps?: number
  timing?: 'warm' | 'cold'
  tag?: string[]
  note?: string
  dataDir: string
  json?: boolean
}

export async function campaignRun(o: CampaignRunOptions, progress?: Progress): Promise<{ text: string; ok: boolean }> {
  const c = running(o.dataDir)
  const { id } = await callConsole(c, 'campaignStart', {
    agent: o.agent,
    kind: o.kind as CampaignKind, // checked by the console (api-schemas.ts), whose refusal names the kinds
    reps: o.reps,
    ...(o.bandwidthsKbps ? { bandwidthsKbps: o.bandwidthsKbps } : {}),
    ...(o.latenciesMs ? { latenciesMs: o.latenciesMs } : {}),
    ...(o.uplinkKbps !== undefined ? { uplinkKbps: o.uplinkKbps } : {}),
    ...(o.timing !== undefined ? { timing: o.timing } : {}),
    ...(o.tag ? { tags: o.tag } : {}),
    ...(o.note !== undefined ? { note: o.note } : {})
  })
  let s: CampaignStatus
  for (;;) {
    s = await callConsole(c, 'campaignStatus', { id })
    progress?.(Math.round(s.progress * 1000), 1000, `${o.kind} campaign on ${o.agent}`)
    if (s.status !== 'running') break
    await new Promise((r) => setTimeout(r, 500))
  }
  if (o.json) return { text: JSON.stringify(s, null, 2), ok: s.status === 'done' }
  if (s.status !== 'done')
    throw new UserError(
      `campaign ${id} ${s.status}${s.error ? `: ${s.error}` : ''} (its ${s.kind === 'sweep' ? `${s.sweep?.points.length ?? 0} points` : s.kind === 'plans' ? `${s.plans?.points.length ?? 0} plans` : `${s.measurements} measurements`} are kept)`
    )
  return { text: formatCampaign(s), ok: true }
}

/** `edgent campaign cancel <id>`: the campaign stops between chunks; what it measured is kept. */
export async function campaignCancel(id: string, dataDir: string): Promise<string> {
  const c = running(dataDir)
  const s = await callConsole(c, 'campaignStatus', { id })
  if (s.status !== 'running') throw new UserError(`campaign ${id} is not running (it is ${s.status})`)
  await callConsole(c, 'campaignCancel', { id })
  return `cancelling campaign ${id}: it stops between chunks; its ${s.measurements} measurements so far are kept`
}

export async function campaignList(dataDir: string, json: boolean): Promise<string> {
  const list = await callConsole(running(dataDir), 'campaigns', {})
  if (json) return JSON.stringify(list, null, 2)
  return table(
    ['campaign', 'kind', 'device', 'model', 'status', 'progress', 'measurements', 'started', 'tags', 'note'],
    list.map((s) => [
      s.id,
      s.kind,
      s.agentId,
      s.model ?? '—',
      s.status,
      `${Math.round(s.progress * 100)} %`,
      String(s.measurements),
      s.startedAt,
      s.tags.join(' '),
      noteCell(s.note)
    ])
  )
}

/**
 * `edgent export`: calibration data a person can use elsewhere, read straight from the database (the
 * console need not run); the store writes it to a temporary file and renames it.
 */
export function exportCalibration(o: {
  dataDir: string
  out: string
  format: ExportFormat
  campaign?: string
  what?: 'calibration' | 'runs' | 'bandwidth' | 'plans'
  agent?: string
}): string {
  const what = o.what ?? 'calibration'
  if (what !== 'calibration' && o.campaign) throw new UserError('--campaign is for --what calibration (runs, bandwidth and plans take --agent)')
  if (what === 'calibration' && o.agent) throw new UserError('--agent is for --what runs, bandwidth or plans (calibration takes --campaign)')
  const doc = withStore(dbFile(o.dataDir), (store) =>
    what === 'calibration'
      ? store.calibration.exportToFile(o.out, { format: o.format, ...(o.campaign ? { campaign: o.campaign } : {}) })
      : writeExport(o.out, () =>
          what === 'plans' ? store.runs.exportPlans(o.format, o.agent) : (what === 'runs' ? store.runs : store.bandwidth).export(o.format, o.agent)
        )
  )
  return `wrote ${o.out}: ${doc.summary}`
}

/** `edgent import`: calibration data written by `edgent export`, all or nothing. */
export function importCalibration(o: { file: string; dataDir: string }): string {
  const file = readCalibrationFile(o.file)
  const r = withStore(dbFile(o.dataDir), (store) => store.calibration.import(file))
  return `imported ${r.campaigns} campaign(s), ${r.profiles.length} profile(s) (${r.profiles.join(', ')}), ${r.measurements} measurements into ${resolve(o.dataDir)}`
}

/** A stored profile by id (`edgent plan --profile <id>`). */
export function storedProfile(dataDir: string, id: string): CalibrationProfile | null {
  const file = dbFile(dataDir)
  if (!existsSync(file)) return null
  const row = withStore(file, (store) => {
    const r = store.profiles.get(id)
    return r && { profile: r.profile }
  })
  return row ? row.profile : null
}

export async function profileList(agent: string, dataDir: string, json: boolean): Promise<string> {
  const c = running(dataDir)
  const list = await callConsole(c, 'profiles', { agent })
  const dev = (await callConsole(c, 'devices', {})).find((d) => d.id === agent)
  if (json) return JSON.stringify({ latencySource: dev?.latencySource ?? null, profiles: list }, null, 2)
  const src = dev?.latencySource
  const head = src
    ? src.kind === 'profile'
      ? `${agent} is planned with profile ${src.profileId}`
      : `${agent} is planned with the measured per-layer tables${src.problem ? ` (${src.problem})` : ''}`
    : `${agent} is not paired`
  if (!list.length) return `${head}\nno fitted profile yet: run \`edgent campaign run --agent ${agent} --kind layers\``
  const med = (p: ProfileView) => {
    const m = p.fits
      .filter((f) => f.heldOutMape !== null)
      .map((f) => f.heldOutMape!)
      .sort((a, b) => a - b)
    return m.length ? pctOrDash(m[m.length >> 1]!) : '—'
  }
  return [
    head,
    '',
    table(
      ['profile', 'campaign', 'kind', 'created', 'current', 'median held-out MAPE'],
      list.map((p) => [p.id, p.campaignId.slice(0, 8), p.campaignKind, p.createdAt, p.current ? 'yes' : '', med(p)])
    )
  ].join('\n')
}

export async function profileUse(agent: string, profile: string, dataDir: string, regressor?: Regressor): Promise<string> {
  const r = await callConsole(running(dataDir), 'useProfile', { agent, profile: profile === 'measured' ? null : profile, ...(regressor ? { regressor } : {}) })
  if (r.kind === 'profile') return `${agent} is now planned with profile ${r.profileId}${regressor ? ` (${REGRESSOR_TEXT[regressor]})` : ''}`
  return `${agent} is now planned with the measured per-layer tables${r.problem ? ` (${r.problem})` : ''}`
}
