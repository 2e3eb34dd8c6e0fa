/** `edgent plan`: the planner on a model and a calibration profile, as JSON or a readable table. */
import { UserError } from '../../shared/errors.js'
import {
  allCandidates,
  buildCostTable,
  configurationMap,
  plan,
  sameConfiguration,
  type Conditions,
  type Plan,
  type PlannerMode
} from '../../shared/algorithms/planner.js'
import type { Codec } from '../../shared/algorithms/codecs.js'
import { offlineCodecOptions } from '../../shared/algorithms/codec-cost.js'
import { loadManifest, loadProfile } from '../runtime/files.js'
import { kbps, ms, pct, table } from './format.js'
import { storedProfile } from './campaign.js'

export interface PlanOptions {
  model: string
  profile: string
  /** Where stored profiles are looked up by id. */
  dataDir?: string
  bandwidthKbps?: number
  downlinkKbps?: number
  latencyMs?: number
  mode: PlannerMode
  json?: boolean
  all?: boolean
  map?: boolean
  fromKbps?: number
  toKbps?: number
  /** The codecs the device may send (default f32 only, as in the paper). */
  codecs?: Codec[]
  /** The largest accuracy drop a lossy codec may cost, points (default 0.5). */
  maxCodecDropPts?: number
  /** Offer the model's confidence-exit policies (mode edgent). */
  policies?: boolean
}

const thresholdsText = (t: readonly (number | null)[]): string => t.map((v) => (v === null ? '–' : String(v))).join('/')
const policyTag = (c: { policy?: number | null | { index: number } }): string =>
  c.policy === undefined || c.policy === null ? '—' : `P${typeof c.policy === 'number' ? c.policy : c.policy.index}`

const codecTag = (c: { codec: Codec | null; deviceLayers: number | null; layers?: number }): string =>
  c.codec === null || c.deviceLayers === c.layers ? '—' : c.codec

export function runPlan(opts: PlanOptions): string {
  const { manifest } = loadManifest(opts.model)
  const profile = loadProfile(opts.profile, opts.dataDir ? (id) => storedProfile(opts.dataDir!, id) : undefined)
  const costs = buildCostTable(manifest, profile, Infinity, offlineCodecOptions(opts.codecs, opts.maxCodecDropPts), opts.policies ? {} : undefined)
  const codecLine = `${costs.codecNotes?.length ? `\ncodecs: ${costs.codecNotes.join('; ')}` : ''}${costs.policyNote ? `\npolicies: ${costs.policyNote}` : ''}`
  if (opts.latencyMs === undefined) throw new UserError("missing required option '--latency-ms <ms>'")
  const down = opts.downlinkKbps !== undefined ? { downlinkKbps: opts.downlinkKbps } : {}

  if (opts.map) {
    if (opts.fromKbps === undefined || opts.toKbps === undefined) throw new UserError("--map needs '--from-kbps <kbps>' and '--to-kbps <kbps>'")
    const intervals = configurationMap(costs, { latencyMs: opts.latencyMs, fromKbps: opts.fromKbps, toKbps: opts.toKbps, mode: opts.mode, ...down })
    if (opts.json) {
      return JSON.stringify(
        {
          model: manifest.id,
          profile: profile.id,
          mode: opts.mode,
          latencyMs: opts.latencyMs,
          fromKbps: opts.fromKbps,
          toKbps: opts.toKbps,
          ...down,
          intervals
        },
        null,
        2
      )
    }
    const head = `configuration map · model ${manifest.id} · profile ${profile.id} · mode ${opts.mode} · requirement ${opts.latencyMs} ms · ${kbps(opts.fromKbps)}–${kbps(opts.toKbps)} kbps uplink${opts.downlinkKbps !== undefined ? ` · downlink ${opts.downlinkKbps} kbps` : ' (symmetric link)'}`
    const rows = intervals.map((iv) => [
      kbps(iv.fromKbps),
      kbps(iv.toKbps),
      iv.exit === null ? '—' : String(iv.exit),
      iv.deviceLayers === null ? '—' : String(iv.deviceLayers),
      iv.codec ?? '—',
      iv.accuracy === null ? '—' : pct(iv.accuracy),
      iv.feasible ? 'yes' : 'no',
      policyTag(iv)
    ])
    return `${head}${codecLine}\n\n${table(['from kbps', 'to kbps', 'exit', 'deviceLayers', 'codec', 'accuracy', 'meets requirement', 'policy'], rows, [true, true, true, true, false, true, false, false])}`
  }

  if (opts.bandwidthKbps === undefined) throw new UserError("missing required option '--bandwidth-kbps <kbps>' (or use --map)")
  const cond: Conditions = { uplinkKbps: opts.bandwidthKbps, latencyMs: opts.latencyMs, ...down }
  const chosen = plan(costs, cond, opts.mode)
  const candidates = opts.all ? allCandidates(costs, cond, opts.mode) : undefined
  const context = { profile: profile.id, latencyMs: opts.latencyMs, uplinkKbps: opts.bandwidthKbps, downlinkKbps: opts.downlinkKbps ?? opts.bandwidthKbps }

  if (opts.json) {
    const body = chosen ?? {
      model: manifest.id,
      mode: opts.mode,
      exit: null,
      deviceLayers: null,
      layers: null,
      feasible: false,
      predictedMs: null,
      accuracy: null,
      uploadBytes: null,
      downloadBytes: null,
      breakdown: null
    }
    return JSON.stringify({ ...body, ...context, ...(candidates ? { candidates } : {}) }, null, 2)
  }

  const lines = [
    `model ${manifest.id} · profile ${profile.id} · mode ${opts.mode}`,
    `uplink ${kbps(cond.uplinkKbps)} kbps · downlink ${kbps(context.downlinkKbps)} kbps · requirement ${opts.latencyMs} ms${codecLine}`,
    ''
  ]
  if (!chosen) {
    lines.push('no plan meets the requirement (mode paper returns none)')
  } else {
    lines.push(...describePlan(chosen, opts.latencyMs))
  }
  if (candidates) {
    lines.push('', 'every candidate:')
    const rows = candidates.map((c) => [
      chosen && sameConfiguration(c, chosen) ? '*' : '',
      policyTag(c),
      String(c.exit),
      `${c.deviceLayers}/${c.layers}`,
      codecTag(c),
      ms(c.predictedMs),
      ms(c.breakdown.deviceMs),
      ms(c.breakdown.uploadMs),
      ms(c.breakdown.edgeMs),
      ms(c.breakdown.downloadMs),
      ms(c.breakdown.codecMs ?? 0),
      String(c.uploadBytes),
      pct(c.accuracy),
      c.feasible ? 'yes' : 'no'
    ])
    lines.push(
      table(
        ['', 'policy', 'exit', 'device', 'codec', 'total ms', 'device ms', 'upload ms', 'edge ms', 'download ms', 'codec ms', 'upload B', 'accuracy', 'meets'],
        rows,
        [false, false, true, true, false, true, true, true, true, true, true, true, true, false]
      )
    )
  }
  return lines.join('\n')
}

function describePlan(p: Plan, latencyMs: number): string[] {
  const where = p.deviceLayers === 0 ? 'edge-only' : p.deviceLayers === p.layers ? 'device-only' : `device runs ${p.deviceLayers} of ${p.layers} layers`
  const b = p.breakdown
  const policy = p.policy
    ? [
        `policy ${p.policy.index}: thresholds ${thresholdsText(p.policy.thresholds)} (a frame leaves at the first exit this confident; the final exit answers the rest); predicted mixture: ${p.policy.mixture
          .map((x) => `exit ${x.exit} (${x.side}) ${pct(x.share)} at ${ms(x.ms)} ms`)
          .join(', ')}`
      ]
    : []
  return [
    `plan: ${p.policy ? `policy ${p.policy.index} to exit` : 'exit'} ${p.exit}, deviceLayers ${p.deviceLayers} of ${p.layers} (${where})${p.deviceLayers < p.layers ? `, sent as ${p.codec}` : ''}`,
    ...policy,
    p.feasible
      ? `meets the requirement: predicted ${ms(p.predictedMs)} ms <= ${latencyMs} ms`
      : `infeasible: nothing meets ${latencyMs} ms; fastest plan predicted ${ms(p.predictedMs)} ms`,
    `accuracy ${pct(p.accuracy)} · upload ${p.uploadBytes} B · download ${p.downloadBytes} B`,
    `breakdown: device ${ms(b.deviceMs)} ms + upload ${ms(b.uploadMs)} ms + edge ${ms(b.edgeMs)} ms + download ${ms(b.downloadMs)} ms + overhead ${ms(b.overheadMs)} ms${b.codecMs ? ` + encode/decode ${ms(b.codecMs)} ms` : ''}`
  ]
}
