/** `edgent runs`, `edgent runs compare`, `edgent annotate`: co-inference runs, side by side, with tags and notes. */
import type { ComparisonRow, RunComparison, RunView } from '../../shared/contracts/console-api.js'
import { callConsole, runningConsole } from './client.js'
import { comparisonCell, comparisonDelta, type ComparisonFormat } from '../../shared/algorithms/compare.js'
import { ms, noteCell, pct, table } from './format.js'

const when = (iso: string) => iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')

export async function runsList(o: { dataDir: string; agent?: string; tag?: string; all?: boolean; limit: number; json?: boolean }): Promise<string> {
  const runs = await callConsole(runningConsole(o.dataDir), 'runs', {
    ...(o.agent ? { agent: o.agent } : {}),
    ...(o.tag ? { tag: o.tag } : {}),
    source: o.all ? 'all' : 'user',
    limit: o.limit
  })
  if (o.json) return JSON.stringify(runs, null, 2)
  if (!runs.length) return o.tag ? `no run tagged "${o.tag}"` : 'no run yet (edgent infer runs one)'
  const rows = runs.map((r: RunView) => {
    const s = r.summary
    return [
      r.id,
      when(r.startedAt),
      r.agentId,
      r.model ?? '—',
      r.status,
      s ? `${s.completed}/${s.count}` : '—',
      s ? `${s.latencyMs}` : '—',
      s ? ms(s.p50Ms) : '—',
      s ? pct(s.metShare) : '—',
      r.tags.join(' '),
      noteCell(r.note)
    ]
  })
  return table(['run', 'started', 'device', 'model', 'status', 'done', 'req ms', 'p50 ms', 'met', 'tags', 'note'], rows, [
    false,
    false,
    false,
    false,
    false,
    true,
    true,
    true,
    true
  ])
}

const FORMAT: ComparisonFormat = { ms, pct }
const cell = (v: ComparisonRow['a'], unit: string): string => comparisonCell(v, unit, FORMAT)
const deltaText = (r: ComparisonRow): string => comparisonDelta(r, FORMAT)

export function comparisonText(c: RunComparison): string {
  const [a, b] = c.runs
  const head = (r: RunView, name: string) =>
    `${name}: ${r.id} · ${r.agentId} · ${r.model ?? 'model not recorded'} · ${when(r.startedAt)}${r.tags.length ? ` · ${r.tags.join(' ')}` : ''}${r.note ? ` · “${r.note.split('\n')[0]}”` : ''}`
  const rows = c.rows.map((r) => [
    r.measure + (r.unit && r.unit !== 'share' && r.unit !== 'MAPE' ? ` (${r.unit})` : ''),
    cell(r.a, r.unit),
    cell(r.b, r.unit),
    deltaText(r),
    r.better === null ? '' : r.better.toUpperCase()
  ])
  const quant = c.quantiles.map((q) => [`p${Math.round(q.q * 100)}`, q.a === null ? '—' : ms(q.a), q.b === null ? '—' : ms(q.b)])
  const noise = c.differences.map(
    (d) =>
      `B − A at p${Math.round(d.q * 100)}: ${d.deltaMs > 0 ? '+' : ''}${ms(d.deltaMs)} ms, 95 % interval [${ms(d.lowMs)}, ${ms(d.highMs)}] ms — ${d.clear ? 'a difference beyond the runs’ own noise' : 'within the runs’ own noise'}`
  )
  return [
    head(a, 'A'),
    head(b, 'B'),
    c.differs.length ? `not alike: ${c.differs.join('; ')}` : 'alike: same device, model, requirement, uplink and first plan',
    '',
    table(['measure', 'A', 'B', 'B − A', 'better'], rows, [false, true, true, true]),
    '',
    table(['end to end', 'A ms', 'B ms'], quant, [false, true, true]),
    ...(noise.length ? ['', ...noise] : ['', 'too few completed inferences to bound the difference by the runs’ noise'])
  ].join('\n')
}

export async function runsCompare(o: { dataDir: string; a: string; b: string; json?: boolean }): Promise<string> {
  const c = await callConsole(runningConsole(o.dataDir), 'runCompare', { a: o.a, b: o.b })
  return o.json ? JSON.stringify(c, null, 2) : comparisonText(c)
}

export async function annotateCommand(o: { dataDir: string; target: 'run' | 'campaign'; id: string; tags?: string[]; note?: string }): Promise<string> {
  const r = await callConsole(runningConsole(o.dataDir), 'annotate', {
    target: o.target,
    id: o.id,
    ...(o.tags ? { tags: o.tags } : {}),
    ...(o.note !== undefined ? { note: o.note } : {})
  })
  return `${r.target} ${r.id}: tags ${r.tags.length ? r.tags.join(' ') : '(none)'} · note ${r.note ? `“${r.note}”` : '(none)'}`
}
