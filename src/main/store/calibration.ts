/**
 * Calibration data a person can use elsewhere (`edgent export`, the Campaigns page's export): the
 * fitted profiles with their statistics, the raw measurements with units, the devices' capabilities
 * and the software versions; and its import into another data directory, all or nothing.
 */
import type Database from 'better-sqlite3'
import { existsSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import { z } from 'zod'
import { NoteSchema, TagsSchema } from '../../shared/contracts/annotations.js'
import { storedTags } from './documents.js'
import { UserError, describeIssues, errorMessage, FieldError } from '../../shared/errors.js'
import { FIT_FEATURES, REGRESSION_KEYS, parseProfile, type RegressionKey } from '../../shared/algorithms/latency.js'
import type { Machine } from '../runtime/machine.js'
import { AGENT_ID_RE } from '../../shared/contracts/topics.js'
import { CAMPAIGN_KINDS, type CampaignKind, type PlansSummary } from '../../shared/contracts/console-api.js'
import { readJsonFile } from '../runtime/files.js'
import { ORT_PACKAGE_VERSION, appVersion } from '../runtime/version.js'
import type { CampaignQueries } from './campaigns.js'
import type { DeviceQueries } from './devices.js'
import type { ProfileQueries } from './profiles.js'

export type ExportFormat = 'json' | 'csv'

export interface ExportDocument {
  content: string
  summary: string
  campaigns: number
  measurements: number
}

const ExportSchema = z.object({
  format: z.literal('edgent-calibration-export'),
  schema: z.literal(1),
  campaigns: z
    .array(
      z
        .object({
          id: z.string().min(1),
          device_id: z.string().regex(AGENT_ID_RE),
          kind: z.enum(CAMPAIGN_KINDS as [CampaignKind, ...CampaignKind[]]),
          params_json: z.string(),
          status: z.enum(['running', 'done', 'failed', 'interrupted', 'cancelled']),
          progress: z.number().optional(),
          started_at: z.string(),
          finished_at: z.string().nullable().optional(),
          error: z.string().nullable().optional(),
          model: z.string().max(128).nullable().optional(),
          tags: TagsSchema.optional(),
          note: NoteSchema.optional()
        })
        .loose()
    )
    .min(1),
  devices: z.array(z.object({ id: z.string().regex(AGENT_ID_RE), hello: z.unknown() })),
  profiles: z.array(
    z.object({ id: z.string().min(1), device_id: z.string(), campaign_id: z.string(), current: z.number().optional(), profile: z.unknown() }).loose()
  ),
  measurements: z.array(
    z
      .object({
        campaign_id: z.string(),
        side: z.enum(['device', 'edge']),
        regression_key: z.string(),
        spec: z.unknown(),
        features: z.array(z.number()),
        run_ms: z.number().nonnegative(),
        load_ms: z.number().nonnegative(),
        model_bytes: z.number().int().nonnegative(),
        reps: z.number().int().positive(),
        held_out: z.boolean(),
        pass: z.number().int().nonnegative().optional(),
        reps_ms: z.array(z.number().nonnegative()).max(10_000).optional()
      })
      .loose()
  )
})

export type ExportDoc = z.infer<typeof ExportSchema>

/** A validated export file, ready to import. */
export interface CalibrationFile {
  doc: ExportDoc
  /** How errors name it: `import <file name>`. */
  name: string
}

/**
 * Reads and validates a file written by `edgent export` (before any database is opened, so a
 * malformed or foreign file changes nothing, not even by creating one).
 */
/** Largest calibration file `edgent import` reads (an export of every campaign of a device is a few MiB). */
export const MAX_IMPORT_BYTES = 64 * 1024 * 1024

export function readCalibrationFile(file: string): CalibrationFile {
  const name = `import ${basename(file)}`
  const parsed = ExportSchema.safeParse(readJsonFile(file, 'import', MAX_IMPORT_BYTES))
  if (!parsed.success) throw new UserError(describeIssues(name, parsed.error.issues))
  const doc = parsed.data
  const campaignIds = new Set(doc.campaigns.map((c) => c.id))
  for (const p of doc.profiles) {
    if (!campaignIds.has(p.campaign_id)) throw new UserError(`${name}: profile ${p.id} names campaign ${p.campaign_id}, which the file does not hold`)
    parseProfile(p.profile, `${name}: profile ${p.id}`)
  }
  for (const m of doc.measurements)
    if (!campaignIds.has(m.campaign_id)) throw new UserError(`${name}: a measurement names campaign ${m.campaign_id}, which the file does not hold`)
  return { doc, name }
}

/**
 * Writes an export to a file: where it goes is checked first (a wrong path is the user's first
 * problem, whatever there is to export), then a temporary file is renamed into place, so a failure
 * leaves nothing half-written.
 */
export function writeExport(out: string, produce: () => ExportDocument): ExportDocument {
  if (existsSync(out) && statSync(out).isDirectory()) throw new FieldError(`export: ${out} is a folder: give a file name ({out} ${join(out, 'export.json')})`)
  if (!existsSync(dirname(resolve(out)))) throw new UserError(`export: the folder ${dirname(resolve(out))} does not exist`)
  const doc = produce()
  const tmp = `${out}.tmp-${process.pid}`
  try {
    writeFileSync(tmp, doc.content)
    renameSync(tmp, out)
  } catch (err) {
    rmSync(tmp, { force: true })
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') throw new UserError(`export: the folder ${dirname(resolve(out))} does not exist`)
    throw new UserError(`export: cannot write ${out} (${code ?? errorMessage(err)})`)
  }
  return doc
}

/**
 * The export's summary line names the newest plans campaign's share of predictions within ±10 % (end
 * to end) beside its test–retest ceiling, when there is one.
 */
function plansShare(campaigns: readonly Record<string, unknown>[]): string {
  const c = [...campaigns].reverse().find((x) => x['kind'] === 'plans' && x['status'] === 'done' && typeof x['summary_json'] === 'string')
  if (!c) return ''
  const s = JSON.parse(c['summary_json'] as string) as Partial<PlansSummary> | null
  const share = s?.errors?.e2e?.within10
  if (share === null || share === undefined) return '' // a campaign stored before the share was kept
  const pct = (v: number) => `${(v * 100).toFixed(1)} %`
  const ceiling = s?.retest?.e2e?.within10
  return `; plans campaign ${String(c['id']).slice(0, 8)}: ${pct(share)} of end-to-end predictions within ±10 %${
    ceiling === null || ceiling === undefined ? '' : ` (test–retest ${pct(ceiling)})`
  }`
}

/** One CSV cell: numbers as they are, text quoted when it needs to be (RFC 4180). */
export function csvCell(v: unknown): string {
  if (v === null || v === undefined) return ''
  const t = String(v)
  return /[",\n\r]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t
}

/** A measured configuration in words: "branchy-alexnet/conv1", or "type=conv in=1x16x28x28 kernel=3x3 …". */
export function configText(spec: unknown): string {
  if (spec && typeof spec === 'object' && !Array.isArray(spec)) {
    const o = spec as Record<string, unknown>
    if (typeof o['model'] === 'string' && typeof o['layer'] === 'string' && Object.keys(o).length === 2) return `${o['model']}/${o['layer']}`
    return Object.entries(o)
      .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('x') : typeof v === 'object' && v !== null ? configText(v).replace(/ /g, ';') : String(v)}`)
      .join(' ')
  }
  return String(spec)
}

/** The machine columns of a CSV export, per side. */
const MACHINE_COLUMNS: { name: string; value: (m: Machine) => unknown }[] = [
  { name: 'cpu_model', value: (m) => m.cpuModel },
  { name: 'cores', value: (m) => m.cores },
  { name: 'cpu_max_mhz', value: (m) => m.cpuMaxMHz ?? '' },
  { name: 'cpu_cur_mhz', value: (m) => m.cpuCurMHz ?? '' },
  { name: 'os', value: (m) => m.os },
  { name: 'arch', value: (m) => m.arch },
  { name: 'node', value: (m) => m.node },
  { name: 'onnxruntime', value: (m) => m.onnxruntime }
]

export class CalibrationQueries {
  constructor(
    private readonly db: Database.Database,
    private readonly devices: DeviceQueries,
    private readonly profiles: ProfileQueries,
    private readonly campaigns: CampaignQueries
  ) {}

  /**
   * The export document — every campaign (whatever its status: a failed or cancelled one is marked,
   * not dropped), or one — as text. JSON carries everything (campaigns with both sides' machines,
   * devices, profiles labelled with the campaign kind that made them, measurements with every
   * repetition); CSV is one tidy row per measurement, with named columns only (no JSON in a cell).
   */
  export(o: { format: ExportFormat; campaign?: string }): ExportDocument {
    const db = this.db
    const campaigns = (
      o.campaign ? db.prepare('SELECT * FROM campaigns WHERE id = ?').all(o.campaign) : db.prepare('SELECT * FROM campaigns ORDER BY started_at').all()
    ) as ({ id: string; device_id: string; kind: string; status: string; params_json: string } & Record<string, unknown>)[]
    if (o.campaign && campaigns.length === 0) throw new UserError(`unknown campaign "${o.campaign}"`)
    if (campaigns.length === 0) throw new UserError('nothing to export: no campaign yet (run `edgent campaign run` first)')
    const ids = campaigns.map((c) => c.id)
    const marks = ids.map(() => '?').join(',')
    const measurements = db
      .prepare(
        `SELECT campaign_id, side, regression_key, spec_json, features_json, run_ms, reps_ms_json, load_ms, model_bytes, reps, held_out, pass FROM measurements WHERE campaign_id IN (${marks}) ORDER BY id`
      )
      .all(...ids) as Record<string, unknown>[]
    const byId = new Map(campaigns.map((c) => [c.id, c]))
    const machinesOf = (c: { id: string }): { edge?: Machine | null; device?: Machine | null } => this.campaigns.get(c.id)?.params.machines ?? {}
    const repsOf = (m: Record<string, unknown>): number[] | null => (m['reps_ms_json'] ? (JSON.parse(m['reps_ms_json'] as string) as number[]) : null)
    const statuses = Object.entries(
      campaigns.reduce<Record<string, number>>((acc, c) => {
        acc[c.status] = (acc[c.status] ?? 0) + 1
        return acc
      }, {})
    )
      .map(([st, n]) => `${n} ${st}`)
      .join(', ')
    let content: string
    if (o.format === 'csv') {
      const featureNames = [...new Set(REGRESSION_KEYS.flatMap((k) => FIT_FEATURES[k]))]
      const maxReps = measurements.reduce((n, m) => Math.max(n, repsOf(m)?.length ?? 0), 0)
      const machineCols = (side: 'edge' | 'device') => MACHINE_COLUMNS.map((c) => `${side}_${c.name}`)
      const head = [
        'campaign',
        'campaign_kind',
        'campaign_status',
        'device',
        'side',
        'pass',
        'layer_type',
        'config',
        ...featureNames,
        'run_ms',
        ...Array.from({ length: maxReps }, (_, i) => `rep${i + 1}_ms`),
        'load_ms',
        'model_bytes',
        'reps',
        'held_out',
        ...machineCols('edge'),
        ...machineCols('device'),
        'campaign_model',
        'campaign_tags'
      ]
      const rows = measurements.map((m) => {
        const c = byId.get(m['campaign_id'] as string)!
        const key = m['regression_key'] as RegressionKey
        const names = FIT_FEATURES[key] ?? []
        const values = JSON.parse(m['features_json'] as string) as number[]
        const feature = (n: string) => {
          const i = names.indexOf(n)
          return i >= 0 && i < values.length ? values[i] : ''
        }
        const reps = repsOf(m) ?? []
        const machines = machinesOf(c)
        const machine = (side: 'edge' | 'device') => MACHINE_COLUMNS.map((col) => (machines[side] ? col.value(machines[side]!) : ''))
        return [
          c.id,
          c.kind,
          c.status,
          c.device_id,
          m['side'],
          m['pass'],
          key,
          configText(JSON.parse(m['spec_json'] as string)),
          ...featureNames.map(feature),
          m['run_ms'],
          ...Array.from({ length: maxReps }, (_, i) => reps[i] ?? ''),
          m['load_ms'],
          m['model_bytes'],
          m['reps'],
          m['held_out'] === 1 ? 'true' : 'false',
          ...machine('edge'),
          ...machine('device'),
          c['model'] ?? '',
          storedTags(c['tags_json'] as string | undefined).join(' ')
        ]
          .map(csvCell)
          .join(',')
      })
      content = `${[head.join(','), ...rows].join('\n')}\n`
    } else {
      const kindOf = new Map(campaigns.map((c) => [c.id, c.kind]))
      const profiles = this.profiles.inCampaigns(ids).map((p) => ({
        id: p.id,
        device_id: p.agentId,
        campaign_id: p.campaignId,
        campaign_kind: kindOf.get(p.campaignId) ?? null,
        current: p.current ? 1 : 0,
        profile: p.profile
      }))
      const devices = [...new Set(campaigns.map((c) => c.device_id))].map((id) => {
        const d = this.devices.get(id)
        return { id, hello: d?.hello ?? null }
      })
      const doc = {
        format: 'edgent-calibration-export',
        schema: 1,
        exportedAt: new Date().toISOString(),
        software: { console: appVersion(), node: process.versions.node, onnxruntime: ORT_PACKAGE_VERSION },
        units: {
          runMs: 'ms (median of reps)',
          repsMs: 'ms, every repetition (runMs is their median; absent for measurements made before they were kept)',
          loadMs: 'ms (session creation)',
          modelBytes: 'bytes',
          pass: "which pass over the grid (a layers campaign makes 3; its profile fits each configuration's fastest pass)",
          features: "elements (batch 1), in the order of each profile regression's `features`",
          machines: "each campaign's params_json.machines: both sides' hardware and OS when it ran (cpuMaxMHz, cpuCurMHz in MHz)",
          health: "each campaign's health: per chunk and side, temperature (°C), throttled flags, CPU MHz and governor, load, memory"
        },
        // Both sides' health with every chunk (temperature, throttling, frequency, load): was the device steady?
        // A sweep's points and a plans campaign's plans as JSON (their summary), not a string inside a string.
        campaigns: campaigns.map(({ summary_json, tags_json, ...c }) => ({
          ...c,
          tags: storedTags(tags_json as string | undefined),
          summary: typeof summary_json === 'string' ? (JSON.parse(summary_json) as unknown) : null,
          machines: machinesOf(c),
          health: this.campaigns.health(c.id)
        })),
        devices,
        profiles,
        measurements: measurements.map((m) => {
          const { spec_json, features_json, reps_ms_json: _r, ...rest } = m
          const reps = repsOf(m)
          return {
            ...rest,
            spec: JSON.parse(spec_json as string) as unknown,
            features: JSON.parse(features_json as string) as unknown,
            ...(reps ? { reps_ms: reps } : {}),
            held_out: m['held_out'] === 1
          }
        })
      }
      content = `${JSON.stringify(doc, null, 2)}\n`
    }
    return {
      content,
      summary: `${campaigns.length} campaign(s) (${statuses}), ${measurements.length} measurements (${o.format})${plansShare(campaigns)}`,
      campaigns: campaigns.length,
      measurements: measurements.length
    }
  }

  /** Writes the export to a file (see writeExport). */
  exportToFile(out: string, o: { format: ExportFormat; campaign?: string }): ExportDocument {
    return writeExport(out, () => this.export(o))
  }

  /**
   * Imports a file read by `readCalibrationFile`, in one transaction: a file whose campaigns are
   * already here changes nothing. Returns what it imported.
   */
  import(file: CalibrationFile): { campaigns: number; profiles: string[]; measurements: number } {
    const { doc, name } = file
    const db = this.db
    for (const c of doc.campaigns)
      if (db.prepare('SELECT 1 FROM campaigns WHERE id = ?').get(c.id)) throw new UserError(`${name}: campaign ${c.id} is already in this data directory`)
    const now = new Date().toISOString()
    db.transaction(() => {
      for (const id of new Set([...doc.devices.map((d) => d.id), ...doc.campaigns.map((c) => c.device_id)])) {
        if (this.devices.get(id)) continue
        const hello = doc.devices.find((d) => d.id === id)?.hello
        this.devices.insertImported(id, hello ?? null, now)
      }
      for (const c of doc.campaigns) {
        this.campaigns.insertImported({
          id: c.id,
          agentId: c.device_id,
          kind: c.kind,
          paramsJson: c.params_json,
          // A campaign exported while it ran never ends here: it is stored as interrupted.
          status: c.status === 'running' ? 'interrupted' : c.status,
          progress: c.progress ?? 1,
          startedAt: c.started_at,
          finishedAt: c.finished_at ?? (c.status === 'running' ? now : null),
          error: c.error ?? null,
          model: c.model ?? null,
          tags: c.tags ?? [],
          note: c.note ?? ''
        })
        const mine = doc.measurements.filter((m) => m.campaign_id === c.id)
        this.campaigns.insertMeasurements(
          c.id,
          mine.map((m) => ({
            side: m.side,
            pass: m.pass ?? 0,
            regressionKey: m.regression_key as RegressionKey,
            spec: m.spec,
            features: m.features,
            runMs: m.run_ms,
            ...(m.reps_ms ? { repsMs: m.reps_ms } : {}),
            loadMs: m.load_ms,
            modelBytes: m.model_bytes,
            reps: m.reps,
            heldOut: m.held_out
          })),
          now
        )
      }
      for (const p of doc.profiles)
        this.profiles.insert(
          { id: p.id, agentId: p.device_id, campaignId: p.campaign_id, createdAt: now, profile: parseProfile(p.profile, `${name}: profile ${p.id}`) },
          'if-none'
        )
    })()
    return { campaigns: doc.campaigns.length, profiles: doc.profiles.map((p) => p.id), measurements: doc.measurements.length }
  }
}
