/**
 * The testbed's reproduction report: results.json (everything), results.csv (one row per
 * configuration and point), report.md (tables, the acceptance checks, how it was emulated) and the
 * paper's three figures as SVG and PNG (rendered with resvg). Charts are drawn here as plain SVG:
 * a few axes and polylines, no browser needed.
 */
import { failedChecks } from './checks.js'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Resvg } from '@resvg/resvg-js'
import type { ConfigResult, TestbedResult } from './testbed.js'

interface Series {
  name: string
  color: string
  points: [number, number][]
  step?: boolean
  dashed?: boolean
}

interface ChartSpec {
  title: string
  xLabel: string
  yLabel: string
  xLog?: boolean
  yLog?: boolean
  series: Series[]
  hLine?: { y: number; label: string }
}

const W = 760
const H = 420
const M = { l: 70, r: 20, t: 40, b: 90 }

function ticks(lo: number, hi: number, log: boolean): number[] {
  if (log) {
    const out: number[] = []
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) for (const k of [1, 2, 5]) out.push(k * 10 ** e)
    return out.filter((v) => v >= lo * 0.999 && v <= hi * 1.001)
  }
  const span = hi - lo || 1
  const step = 10 ** Math.floor(Math.log10(span / 5))
  const nice = [1, 2, 5, 10].map((k) => k * step).find((s) => span / s <= 8) ?? step * 10
  const out: number[] = []
  for (let v = Math.ceil(lo / nice) * nice; v <= hi + 1e-9; v += nice) out.push(+v.toPrecision(12))
  return out
}

const fmt = (v: number) => (Math.abs(v) >= 1000 ? `${+(v / 1000).toPrecision(3)}k` : `${+v.toPrecision(3)}`)
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;')

export function svgChart(c: ChartSpec): string {
  const xs = c.series.flatMap((s) => s.points.map((p) => p[0]))
  const ys = c.series.flatMap((s) => s.points.map((p) => p[1])).concat(c.hLine ? [c.hLine.y] : [])
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)]
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)]
  if (!c.yLog) y0 = Math.min(0, y0)
  if (x0 === x1) x1 = x0 + 1
  if (y0 === y1) y1 = y0 + 1
  y1 = c.yLog ? y1 * 1.2 : y1 + (y1 - y0) * 0.08
  const sx = (x: number) => M.l + (c.xLog ? Math.log(x / x0) / Math.log(x1 / x0) : (x - x0) / (x1 - x0)) * (W - M.l - M.r)
  const sy = (y: number) => H - M.b - (c.yLog ? Math.log(Math.max(y, y0) / y0) / Math.log(y1 / y0) : (y - y0) / (y1 - y0)) * (H - M.t - M.b)
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, sans-serif" font-size="12">`,
    `<title>${esc(c.title)}</title>`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(c.title)}</text>`
  ]
  for (const t of ticks(x0, x1, !!c.xLog)) {
    parts.push(
      `<line x1="${sx(t)}" x2="${sx(t)}" y1="${M.t}" y2="${H - M.b}" stroke="#e3e6eb"/>`,
      `<text x="${sx(t)}" y="${H - M.b + 16}" text-anchor="middle">${fmt(t)}</text>`
    )
  }
  for (const t of ticks(y0, y1, !!c.yLog)) {
    parts.push(
      `<line x1="${M.l}" x2="${W - M.r}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e3e6eb"/>`,
      `<text x="${M.l - 6}" y="${sy(t) + 4}" text-anchor="end">${fmt(t)}</text>`
    )
  }
  parts.push(
    `<line x1="${M.l}" x2="${W - M.r}" y1="${H - M.b}" y2="${H - M.b}" stroke="#333"/>`,
    `<line x1="${M.l}" x2="${M.l}" y1="${M.t}" y2="${H - M.b}" stroke="#333"/>`,
    `<text x="${(M.l + W - M.r) / 2}" y="${H - M.b + 36}" text-anchor="middle">${esc(c.xLabel)}</text>`,
    `<text transform="translate(18 ${(M.t + H - M.b) / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`
  )
  if (c.hLine)
    parts.push(
      `<line x1="${M.l}" x2="${W - M.r}" y1="${sy(c.hLine.y)}" y2="${sy(c.hLine.y)}" stroke="#d94040" stroke-dasharray="6 3"/>`,
      `<text x="${W - M.r - 4}" y="${sy(c.hLine.y) - 4}" text-anchor="end" fill="#d94040">${esc(c.hLine.label)}</text>`
    )
  c.series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a[0] - b[0])
    const path: string[] = []
    pts.forEach(([x, y], j) => {
      if (s.step && j > 0) path.push(`${sx(x)},${sy(pts[j - 1]![1])}`)
      path.push(`${sx(x)},${sy(y)}`)
    })
    parts.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2" ${s.dashed ? 'stroke-dasharray="6 3"' : ''} points="${path.join(' ')}"/>`)
    for (const [x, y] of pts) parts.push(`<circle cx="${sx(x)}" cy="${sy(y)}" r="3" fill="${s.color}"/>`)
    const lx = M.l + (i % 3) * 230
    const ly = H - 28 + Math.floor(i / 3) * 16
    parts.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2" ${s.dashed ? 'stroke-dasharray="6 3"' : ''}/>`,
      `<text x="${lx + 28}" y="${ly}">${esc(s.name)}</text>`
    )
  })
  parts.push('</svg>')
  return parts.join('\n')
}

const COLORS: Record<string, string> = {
  edgent: '#2f6fdf',
  'device-only': '#f0a030',
  'edge-only': '#27ae60',
  'edge-only-u8': '#16a085',
  'partition-only': '#9b59b6',
  'right-sizing-only': '#c0392b'
}

function csv(results: ConfigResult[]): string {
  const cols = [
    'linkKbps',
    'latencyMs',
    'strategy',
    'exit',
    'deviceLayers',
    'layers',
    'codec',
    'accuracy',
    'predictedMs',
    'measuredMs',
    'p95Ms',
    'met',
    'metShare',
    'sampleAccuracy',
    'runId'
  ] as const
  return `${[cols.join(','), ...results.map((r) => cols.map((c) => String(r[c] ?? '')).join(','))].join('\n')}\n`
}

const pct = (v: number | null) => (v === null || !Number.isFinite(v) ? '—' : `${(v * 100).toFixed(1)} %`)
const ms = (v: number) => v.toFixed(v >= 100 ? 0 : 1)

function middleCutSection(c: TestbedResult['checks']): string {
  const cuts = c.middleCuts ?? []
  if (!cuts.length) return "- No middle cut (0 < device layers < N) at the single-side baselines' accuracy was measured at any bandwidth."
  const best = cuts.reduce((a, b) => (b.gain > a.gain ? b : a))
  const rows = cuts.map(
    (m) =>
      `| ${m.linkKbps} | ${m.exit} | ${m.deviceLayers}/${m.layers} | ${m.codec} | ${pct(m.accuracy)} | ${ms(m.measuredMs)} | ${ms(m.deviceOnlyMs)} | ${ms(m.edgeOnlyMs)} | ${m.gain >= 0 ? '+' : ''}${(m.gain * 100).toFixed(1)} % |`
  )
  return `- Fastest measured middle cut per bandwidth (at the single-side baselines' accuracy or better), against device-only and the faster edge-only: best **${best.gain >= 0 ? '+' : ''}${(best.gain * 100).toFixed(1)} %** at ${best.linkKbps} kbps (${best.deviceLayers}/${best.layers} layers on the device, ${best.codec}); ${cuts.filter((m) => m.gain >= 0.1).length} of ${cuts.length} bandwidths ≥ 10 % faster than both.

| uplink kbps | exit | device layers | sent as | accuracy | middle cut ms | device-only ms | edge-only ms (best) | faster than both by |
|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}
`
}

function speedupSection(c: TestbedResult['checks']): string {
  const sp = c.speedups ?? []
  if (!sp.length) return ''
  const strategies = ['edgent', 'partition-only', 'right-sizing-only'] as const
  const rows = sp.map(
    (x) =>
      `| ${x.linkKbps} | ${x.latencyMs} | ${x.baseline} ${ms(x.baselineMs)} | ${strategies.map((s) => (x.by[s] === undefined ? '—' : `${x.by[s]!.toFixed(2)}×`)).join(' | ')} |`
  )
  return `
Speedup over the best single-side baseline measured at each point (its median latency over the strategy's; > 1: faster):

| uplink kbps | requirement ms | best single-side (ms) | Edgent | partition-only | right-sizing-only |
|---|---|---|---|---|---|
${rows.join('\n')}
`
}

export function writeReport(r: TestbedResult, dir: string): string[] {
  mkdirSync(dir, { recursive: true })
  const files: string[] = []
  const put = (name: string, content: string | Uint8Array) => {
    writeFileSync(join(dir, name), content)
    files.push(join(dir, name))
  }
  put('results.json', `${JSON.stringify(r, null, 2)}\n`)
  put('results.csv', csv(r.results))
  const B = r.options.bandwidthsKbps
  const L = r.options.latenciesMs
  const ed = (kbps: number, lat: number) => r.results.find((x) => x.strategy === 'edgent' && x.linkKbps === kbps && x.latencyMs === lat)!
  const of = (s: string, kbps: number, lat: number) => r.results.find((x) => x.strategy === s && x.linkKbps === kbps && x.latencyMs === lat)
  const midLat = L[Math.floor(L.length / 2)]!
  const midB = B[Math.floor(B.length / 2)]!
  const charts: [string, ChartSpec][] = [
    [
      'fig-selection-bandwidth',
      {
        title: 'Exit selected under different bandwidths (measured run)',
        xLabel: 'uplink bandwidth (kbps, log)',
        yLabel: 'exit / device layers',
        xLog: true,
        series: [
          ...L.map(
            (lat, i): Series => ({
              name: `exit, ${lat} ms`,
              color: ['#2f6fdf', '#27ae60', '#9b59b6', '#c0392b', '#f0a030', '#555'][i % 6]!,
              step: true,
              points: B.map((b) => [b, ed(b, lat).exit] as [number, number])
            })
          ),
          {
            name: `device layers, ${midLat} ms`,
            color: '#999',
            step: true,
            dashed: true,
            points: B.map((b) => [b, ed(b, midLat).deviceLayers] as [number, number])
          }
        ]
      }
    ],
    [
      'fig-runtime-bandwidth',
      {
        title: `End-to-end latency under different bandwidths (requirement ${midLat} ms)`,
        xLabel: 'uplink bandwidth (kbps, log)',
        yLabel: 'measured median latency (ms, log)',
        xLog: true,
        yLog: true,
        hLine: { y: midLat, label: 'requirement' },
        series: ['edgent', 'device-only', 'edge-only', 'edge-only-u8', 'partition-only', 'right-sizing-only']
          .filter((s) => B.every((b) => of(s, b, midLat)))
          .map((s) => ({
            name: s,
            color: COLORS[s]!,
            dashed: s !== 'edgent',
            points: B.map((b) => [b, of(s, b, midLat)!.measuredMs] as [number, number])
          }))
      }
    ],
    [
      'fig-selection-requirement',
      {
        title: `Exit selected under different latency requirements (${midB} kbps)`,
        xLabel: 'latency requirement (ms, log)',
        yLabel: 'exit / accuracy (%)',
        xLog: true,
        series: [
          { name: 'exit', color: '#2f6fdf', step: true, points: L.map((l) => [l, ed(midB, l).exit] as [number, number]) },
          {
            name: 'accuracy (%) / 10',
            color: '#27ae60',
            step: true,
            dashed: true,
            points: L.map((l) => [l, (ed(midB, l).accuracy * 100) / 10] as [number, number])
          }
        ]
      }
    ]
  ]
  for (const name of [...new Set(r.traces.map((t) => t.trace.name))]) {
    const runs = r.traces.filter((t) => t.trace.name === name)
    charts.push([
      `fig-trace-${name}`,
      {
        title: `Trace "${name}": end-to-end latency over time (requirement ${runs[0]!.latencyMs} ms)`,
        xLabel: 'time since the trace started (s)',
        yLabel: 'end-to-end latency (ms, log)',
        yLog: true,
        hLine: { y: runs[0]!.latencyMs, label: 'requirement' },
        series: runs.map((t) => ({
          name: `${t.mode} (${t.misses} misses)`,
          color: t.mode === 'adaptive' ? '#2f6fdf' : '#f0a030',
          dashed: t.mode === 'static',
          points: t.points.map((p, i) => [p.t + i * 1e-4, p.e2eMs] as [number, number])
        }))
      }
    ])
  }
  for (const [name, spec] of charts) {
    const svg = svgChart(spec)
    put(`${name}.svg`, svg)
    put(`${name}.png`, new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng())
  }
  const c = r.checks
  const hasU8 = r.results.some((x) => x.strategy === 'edge-only-u8')
  const codecOf = (x: ConfigResult) => (x.deviceLayers < x.layers ? (x.codec ?? 'f32') : '—')
  const rows = B.flatMap((b) =>
    L.map((l) => {
      const e = ed(b, l)
      const base = (s: string) => {
        const x = of(s, b, l)
        return x ? `${ms(x.measuredMs)}${x.met ? '' : ' ✗'}` : '—'
      }
      return `| ${b} | ${l} | ${e.exit} | ${e.deviceLayers}/${e.layers} | ${codecOf(e)} | ${ms(e.predictedMs)} | ${ms(e.measuredMs)} | ${e.met ? 'yes' : 'no'} | ${pct(e.accuracy)} | ${base('device-only')} | ${base('edge-only')} |${hasU8 ? ` ${base('edge-only-u8')} |` : ''} ${base('partition-only')} | ${base('right-sizing-only')} |`
    })
  )
  const md = `# Edgent testbed report

Run ${r.startedAt} → ${r.finishedAt}. Device: the Edgent agent in a network namespace, CPU ${JSON.stringify(r.emulation['cpu'])}; link: tc token bucket on both veth ends at each bandwidth (uplink and downlink). Edge: this machine. ${r.options.reps} co-inferences per configuration and point; latencies are medians. Generated by \`npm run testbed\`.

## Checks (${failedChecks(c).length ? 'did not hold' : 'held'})

- Edgent met the requirement at **${c.edgentMetWhereFeasible} of ${c.feasiblePoints}** points where some measured configuration did.
- Edgent's measured latency was within 10 % of the best measured configuration of its exit at **${c.withinTenPercent} of ${c.points}** points (${pct(c.withinTenPercent / c.points)}).
- Predicted against measured end-to-end latency of Edgent's plans: median absolute error **${pct(c.medianAbsError)}**.
${middleCutSection(c)}
${speedupSection(c)}
## Bandwidth as measured

Edgent plans with the console's estimate (packet-train probes), not the shaper's setting:

| shaped (kbps) | estimate (kbps) |
|---|---|
${r.estimates.map((e) => `| ${e.linkKbps} | ${e.uplinkEstimateKbps.toFixed(0)} |`).join('\n')}

## Every point

Latencies in ms (median measured; ✗: requirement missed). Baselines measured in the same run: device-only and edge-only run the final exit whole on one side (edge-only sends the preprocessed input as f32${hasU8 ? '; edge-only u8 sends the raw frame, preprocessed on the edge' : ''}); partition-only (Neurosurgeon) runs the final exit at its best predicted partition, sending f32; right-sizing-only runs the most accurate exit predicted to meet the requirement whole on the device. "sent as": the codec of what Edgent's plan sends; accuracy: the configuration's measured accuracy (the exit's, less its codec's measured drop).

| uplink kbps | requirement ms | exit | device layers | sent as | predicted | measured | met | accuracy | device-only | edge-only |${hasU8 ? ' edge-only u8 |' : ''} partition-only | right-sizing-only |
|---|---|---|---|---|---|---|---|---|---|---|${hasU8 ? '---|' : ''}---|---|
${rows.join('\n')}

## Dynamic bandwidth

${
  r.traces.length === 0
    ? 'Not run (--no-traces).'
    : `Each trace is replayed through tc during a long co-inference run, twice: **static** plans once, for the bandwidth measured at the start, and keeps that plan; **adaptive** is Edgent's runtime: packet-train probes between batches, activation-transfer samples, change detection, and the configuration map's plan for the estimate. Both run the same loop — a probe, then a batch of 5 inferences — so they issue requests at the same cadence and the miss shares compare like for like; static ignores its probes.

| trace | segments (s × kbps) | mode | inferences | requirement misses | miss share | mean exit accuracy | plan changes |
|---|---|---|---|---|---|---|---|
${r.traces.map((t) => `| ${t.trace.name} | ${t.trace.segments.map((x) => `${(x.ms / 1000).toFixed(1)}×${x.kbps}`).join(' ')} | ${t.mode} | ${t.points.length} | ${t.misses} | ${pct(t.missShare)} | ${pct(t.meanAccuracy)} | ${t.planChanges} |`).join('\n')}
`
}
## Figures

![selection under bandwidths](fig-selection-bandwidth.png)
![runtime under bandwidths](fig-runtime-bandwidth.png)
![selection under requirements](fig-selection-requirement.png)
${[...new Set(r.traces.map((t) => t.trace.name))].map((n) => `![trace ${n}](fig-trace-${n}.png)`).join('\n')}

Raw data: results.csv, results.json.
`
  put('report.md', md)
  return files
}
