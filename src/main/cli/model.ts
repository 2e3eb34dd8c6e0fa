/** `edgent model info | verify | decisions | import | list | use | exits add`: what the shell prints of the model library's work (src/main/models). */
import { inputBytes, product, type Manifest } from '../../shared/contracts/manifest.js'
import type { AddExitsReport } from '../models/exits.js'
import type { PoliciesReport } from '../models/policies.js'
import { loadManifest } from '../runtime/files.js'
import type { OrtExecutor } from '../runtime/executor.js'
import { importModel, type ImportModelOptions, type ImportReport, type LibraryEntry } from '../models/library.js'
import { ACCURACY_TOLERANCE_POINTS, SPLIT_TOLERANCE, noProgress, verdictOk, withExecutor, type Progress, type VerifyReport } from '../models/verify.js'
import type { DecisionCell, DecisionReport, DecisionSummary } from '../models/decisions.js'
import { callConsole, runningConsole } from './client.js'
import { pct, table } from './format.js'
import { LOSSY_CODECS, payloadBytes } from '../../shared/algorithms/codecs.js'

export type { Progress } from '../models/verify.js'

function shape(dims: readonly number[]): string {
  return dims.join('×')
}

// ---------------------------------------------------------------- info

export function runModelInfo(opts: { model: string; json?: boolean }): string {
  const { manifest, dir } = loadManifest(opts.model)
  const usedBy = new Map<string, number[]>()
  for (const e of manifest.exits) for (const id of e.layers) usedBy.set(id, [...(usedBy.get(id) ?? []), e.exit])
  if (opts.json) {
    return JSON.stringify(
      {
        ...manifest,
        dir,
        inputBytes: inputBytes(manifest),
        layers: manifest.layers.map((l) => ({ ...l, exits: usedBy.get(l.id) ?? [] }))
      },
      null,
      2
    )
  }
  const lines = [
    `${manifest.id}${manifest.name ? ` — ${manifest.name}` : ''}`,
    `onnx ${manifest.onnx}${manifest.onnxBytes ? ` (${manifest.onnxBytes} B)` : ''} · input ${manifest.input.name} ${manifest.input.dtype} ${shape(manifest.input.shape)} = ${inputBytes(manifest)} B · ${manifest.classes.length} classes`,
    '',
    table(
      ['exit', 'layers', 'accuracy', 'test samples', 'output'],
      manifest.exits.map((e) => [
        String(e.exit),
        String(e.layers.length),
        pct(e.accuracy),
        e.accuracySource === 'supplied' ? 'supplied' : String(e.testSamples ?? '—'),
        e.output
      ]),
      [true, true, true, true, false]
    ),
    '',
    table(
      ['layer', 'type', 'input', 'output', 'output B', 'vs input', 'exits'],
      manifest.layers.map((l) => [
        l.id,
        l.type,
        shape(l.inputShape),
        shape(l.outputShape),
        String(l.outputBytes),
        `${(l.outputBytes / inputBytes(manifest)).toFixed(2)}×`,
        (usedBy.get(l.id) ?? []).join(',')
      ]),
      [false, false, true, true, true, true, false]
    )
  ]
  if (manifest.training) lines.push('', `trained: ${JSON.stringify(Object.fromEntries(Object.entries(manifest.training).filter(([k]) => k !== 'history')))}`)
  return lines.join('\n')
}

export function formatVerify(r: VerifyReport): string {
  return [
    `model ${r.model} · ${r.samples} samples from ${r.source}`,
    '',
    table(
      ['exit', 'layers', 'accuracy', 'manifest', 'Δ points', 'splits checked', 'max |split − unsplit|', 'verdict'],
      r.exits.map((v) => [
        String(v.exit),
        String(v.layers),
        v.accuracy === null ? '—' : pct(v.accuracy),
        pct(v.manifestAccuracy),
        v.deltaPoints === null ? '—' : `${v.deltaPoints >= 0 ? '+' : ''}${v.deltaPoints.toFixed(2)}`,
        String(v.splitsChecked),
        v.maxSplitAbsDiff.toExponential(2),
        verdictOk(v) ? 'ok' : 'FAIL'
      ]),
      [true, true, true, true, true, true, true, false]
    ),
    '',
    r.ok
      ? r.exits.every((v) => v.accuracy === null)
        ? `ok: every split reproduces the unsplit output within ${SPLIT_TOLERANCE} (random inputs: accuracy not checked)`
        : `ok: every split reproduces the unsplit output within ${SPLIT_TOLERANCE} and every exit is within ±${ACCURACY_TOLERANCE_POINTS} points of the manifest`
      : `FAILED: a split differs by more than ${SPLIT_TOLERANCE} or an exit's accuracy is more than ${ACCURACY_TOLERANCE_POINTS} points from the manifest`,
    ...(r.codecAccuracy ? ['', ...formatCodecAccuracy(r)] : [])
  ].join('\n')
}

/** Per exit and codec: the accuracy over the cuts (lowest, median), and the largest drop from the exit's own. */
function formatCodecAccuracy(r: VerifyReport): string[] {
  const c = r.codecAccuracy!
  const rows: string[][] = []
  for (const e of c.exits) {
    const own = r.exits.find((v) => v.exit === e.exit)?.accuracy ?? null
    for (const codec of LOSSY_CODECS) {
      const xs = e.byCodec[codec]
      if (!xs) continue
      const sorted = [...xs].sort((a, b) => a - b)
      rows.push([
        String(e.exit),
        codec,
        String(xs.length),
        pct(sorted[0]!),
        pct(sorted[Math.floor(sorted.length / 2)]!),
        own === null ? '—' : (100 * (own - sorted[0]!)).toFixed(2)
      ])
    }
  }
  return [
    `accuracy with the activation sent lossy, at every cut (deviceLayers 0..N−1), ${c.samples} samples:`,
    table(['exit', 'codec', 'cuts', 'lowest', 'median', 'largest drop, points'], rows, [true, false, true, true, true, true]),
    `stored in ${r.codecAccuracyStored} (codecAccuracy)`
  ]
}

// ---------------------------------------------------------------- decisions

export function formatDecisions(r: DecisionReport, manifest?: Manifest): string {
  const cell = (g: DecisionCell): string => {
    const where = g.deviceLayers === 0 ? 'edge' : g.deviceLayers === g.layers ? 'device' : `split ${g.deviceLayers}/${g.layers}`
    const codec = g.deviceLayers < g.layers && g.codec !== 'f32' ? ` ${g.codec}` : ''
    return `${g.policy !== undefined ? `P${g.policy}→` : ''}e${g.exit} ${where}${codec}${g.feasible ? '' : ' (miss)'}`
  }
  const withCodecs = r.codecs.length > 1
  const lossy = r.codecs.filter((c) => c !== 'f32' && c !== 'u8')
  const decisionTable = (grid: DecisionCell[]): string => {
    const bws = [...new Set(grid.map((g) => g.uplinkKbps))]
    const lats = [...new Set(grid.map((g) => g.latencyMs))]
    return table(
      ['requirement', ...bws.map((b) => `${b} kbps`)],
      lats.map((l) => [`${l} ms`, ...bws.map((b) => cell(grid.find((g) => g.latencyMs === l && g.uplinkKbps === b)!))])
    )
  }
  const summaryLine = (s: DecisionSummary, n: number): string => {
    const sent = Object.entries(s.codecs)
      .map(([c, k]) => `${c} ${k}`)
      .join(', ')
    return `edge-only in ${s.edgeOnly}, device-only in ${s.deviceOnly}, a middle partition in ${s.middle} of ${n} cells; exits used: ${s.exits.join(', ')}${withCodecs && sent ? `; sent as ${sent}` : ''}`
  }
  const inputU8 = manifest?.preprocessing ? product(manifest.input.shape) : null
  const lines = [
    `model ${r.model} · edge = this machine (measured, median of ${r.reps}) · device = ${r.deviceFactor}× slower · input ${r.inputBytes} B${inputU8 !== null && withCodecs ? ` (${inputU8} B as raw u8 pixels)` : ''}`,
    '',
    `per layer (single-layer slices; a partition after a layer uploads its output${withCodecs ? ', under each codec' : ''}):`,
    table(
      ['layer', 'type', 'output B', ...lossy.map((c) => `${c} B`), 'vs input', 'edge ms', 'device ms'],
      r.layers.map((l) => {
        const dims = manifest?.layers.find((x) => x.id === l.id)?.outputShape
        return [
          l.id,
          l.type,
          String(l.outputBytes),
          ...lossy.map((c) => (dims ? String(payloadBytes(c, dims)) : '—')),
          `${l.vsInput.toFixed(2)}×`,
          l.edgeMs.toFixed(3),
          l.deviceMs.toFixed(3)
        ]
      }),
      [false, false, true, ...lossy.map(() => true), true, true, true]
    ),
    '',
    'each exit here: fused single session vs the sum of its single-layer slices (median ms), and the throughput that implies:',
    table(
      ['exit', 'MMAC', 'fused ms', 'sum of layers ms', 'GFLOP/s here', `GFLOP/s device (÷${r.deviceFactor})`],
      r.exitEdgeMs.map((e) => [
        String(e.exit),
        (e.macs / 1e6).toFixed(1),
        e.fusedMs.toFixed(3),
        e.sumOfLayersMs.toFixed(3),
        e.gflopsHere.toFixed(1),
        (e.gflopsHere / r.deviceFactor).toFixed(2)
      ]),
      [true, true, true, true, true, true]
    )
  ]
  for (const v of r.variants ?? []) {
    lines.push('', `decision table (mode edgent), the device sends ${v.codecs.join(' or ')}:`, decisionTable(v.grid), summaryLine(v.summary, v.grid.length))
  }
  lines.push(
    '',
    `decision table (mode edgent): exit and partition per latency requirement (rows) and uplink bandwidth (columns)${withCodecs ? `, the device sends any of ${r.codecs.join(', ')}` : ''}:`,
    decisionTable(r.grid),
    '',
    summaryLine(r.summary, r.grid.length)
  )
  if (r.codecNotes.length) lines.push(`codecs not offered everywhere: ${r.codecNotes.join('; ')}`)
  if (manifest) lines.push(`exit accuracies: ${manifest.exits.map((e) => `e${e.exit} ${pct(e.accuracy)}`).join(', ')}`)
  return lines.join('\n')
}

// ---------------------------------------------------------------- import and list

export type ImportCommandOptions = Omit<ImportModelOptions, 'maxBytes' | 'classes'> & { classes?: string; maxMb: number; json?: boolean }

/** `edgent model import`: the import on a private executor. */
export async function importCommand(o: ImportCommandOptions, progress: Progress = noProgress, executor?: OrtExecutor): Promise<ImportReport> {
  const { maxMb, json: _json, ...rest } = o
  return withExecutor(executor, (ex) => importModel({ ...rest, maxBytes: Math.round(maxMb * 2 ** 20) }, ex, progress))
}

export function formatAddedExits(r: AddExitsReport): string {
  const m = r.import.manifest
  const added = new Map(r.added.map((a) => [a.output, a]))
  return [
    `added ${r.added.length} exit(s) to ${r.source} → ${m.id} (${r.import.dir}), trained on ${r.trainSamples} frames, measured on ${r.heldOut.samples} held-out frames (${r.heldOut.source}), ${r.seconds.toFixed(0)} s`,
    '',
    table(
      ['exit', 'after layer', 'layers', 'share of compute', 'features', 'train accuracy', 'held-out accuracy'],
      m.exits.map((e) => {
        const a = added.get(e.output)
        return a
          ? [
              String(e.exit),
              a.after,
              String(e.layers.length),
              `${(100 * a.computeShare).toFixed(0)} %`,
              `${a.featureShape.slice(1).join('×')} → ${a.features}`,
              pct(a.trainAccuracy),
              pct(e.accuracy)
            ]
          : [String(e.exit), "(the model's own)", String(e.layers.length), '', '', '', pct(e.accuracy)]
      }),
      [true, false, true, true, false, true, true]
    ),
    ...(r.codecAccuracy
      ? [
          '',
          `codecs (${r.codecAccuracy.samples} held-out frames, every cut): ${r.codecAccuracy.exits
            .map((e) => {
              const drops = Object.entries(e.byCodec).map(
                ([c, accs]) => `${c} −${(100 * Math.max(0, (e.f32 ?? 0) - Math.min(...(accs as number[])))).toFixed(2)}`
              )
              return `exit ${e.exit} ${drops.join(', ')}`
            })
            .join('; ')} points at worst`
        ]
      : []),
    '',
    `plan with it: npx edgent model use ${m.id}`
  ].join('\n')
}

export function formatPolicies(r: PoliciesReport): string {
  const mmac = (v: number) => (v / 1e6).toFixed(1)
  const final = r.exits[r.exits.length - 1]!
  return [
    `${r.model}: confidence ${r.measure}, temperatures and policies chosen on ${r.fitSamples} frames, measured on ${r.heldOutSamples} others (${r.source})`,
    '',
    table(
      ['exit', 'MMAC', 'temperature', 'ECE before', 'ECE after', 'accuracy (held out)'],
      r.exits.map((e) => [String(e.exit), mmac(e.macs), e.temperature.toFixed(2), pct(e.eceBefore), pct(e.eceAfter), pct(e.accuracy)]),
      [true, true, true, true, true, true]
    ),
    '',
    `Pareto policies (thresholds per exit, – never; the last always answers), against the final exit alone (${mmac(final.macs)} MMAC, ${pct(final.accuracy)}):`,
    table(
      ['thresholds', 'frames leaving at each exit', 'MMAC', 'less compute', 'accuracy (held out)', 'chosen on'],
      r.policies.map((p) => [
        p.thresholds
          .slice(0, -1)
          .map((t) => (t === null ? '–' : String(t)))
          .join(' / '),
        p.leave.map((v) => `${(100 * v).toFixed(0)} %`).join(' / '),
        mmac(p.macs),
        `${(final.macs / p.macs).toFixed(2)}×`,
        pct(p.accuracy),
        pct(p.fitAccuracy)
      ]),
      [false, false, true, true, true, true]
    ),
    '',
    `stored in ${r.stored} (confidence)`
  ].join('\n')
}

export function formatImport(r: ImportReport): string {
  const m = r.manifest
  const byId = new Map(m.layers.map((l) => [l.id, l]))
  const inBytes = inputBytes(m)
  const last = m.exits[m.exits.length - 1]!
  return [
    `imported ${m.id} into ${r.dir}: ${m.layers.length} layers, ${m.exits.length} exit(s), input ${m.input.shape.join('×')}`,
    '',
    table(
      ['exit', 'layers', 'accuracy', 'output'],
      m.exits.map((e) => [
        String(e.exit),
        String(e.layers.length),
        `${pct(e.accuracy)}${e.accuracySource === 'supplied' ? ' (supplied)' : ` (measured on ${e.testSamples})`}`,
        e.output
      ]),
      [true, true, true, false]
    ),
    '',
    `cut points of exit ${last.exit} (deviceLayers = the number of layers before the cut):`,
    table(
      ['deviceLayers', 'cut tensor', 'layer', 'type', 'ops', 'bytes', 'vs input'],
      [
        ['0', m.input.name, '—', 'input', '', String(inBytes), '1.00×'],
        ...last.layers.map((id, i) => {
          const l = byId.get(id)!
          return [
            String(i + 1),
            l.output,
            l.id,
            l.type,
            l.type === 'block'
              ? Object.entries(l.ops)
                  .map(([op, n]) => `${op}×${n}`)
                  .join(' ')
              : '',
            String(l.outputBytes),
            `${(l.outputBytes / inBytes).toFixed(2)}×`
          ]
        })
      ],
      [true, false, false, false, false, true, true]
    ),
    ...(r.notes.length ? ['', ...r.notes] : [])
  ].join('\n')
}

export function formatModelList(list: readonly LibraryEntry[]): string {
  return table(
    ['model', 'source', 'input', 'exits (accuracy)', 'ONNX bytes', 'sha256'],
    list.map((e) => [
      e.id,
      e.source,
      e.inputShape.join('×'),
      e.exits.map((x) => `${x.exit}: ${pct(x.accuracy)}${x.accuracySource === 'supplied' ? ' supplied' : ''}`).join(', '),
      e.onnxBytes === null ? '—' : String(e.onnxBytes),
      e.sha256 ? e.sha256.slice(0, 12) : '—'
    ])
  )
}

/**
 * `edgent model use <id|default> [--agent <id>]`: the model a device (or every device without its
 * own choice) is planned and served with, on the running console. Agents that lack it fetch it.
 */
export async function modelUse(id: string, agent: string | undefined, dataDir: string): Promise<string> {
  const r = await callConsole(runningConsole(dataDir), 'modelUse', { model: id === 'default' ? null : id, ...(agent ? { agent } : {}) })
  const who = r.agentId ? `${r.agentId} is` : 'devices without their own model are'
  const using = r.devices.length ? ` (planned with it now: ${r.devices.join(', ')}; an agent that does not hold it fetches it from the console)` : ''
  return `${who} now planned and served with ${r.model}${using}`
}
