/**
 * `edgent drift` (issue 31): what fixed exit thresholds and audit-tuned ones do when the frames drift,
 * measured in one run on this machine (a console and a local emulated device on loopback). Phases, each
 * on the same policy plan: the model's own frames with its measured thresholds; shifted frames (another
 * brightness or contrast, added noise: shift.ts) with the same fixed thresholds; shifted frames again
 * with audits tuning the thresholds. Disagreement — the share of frames whose answer differs from the
 * final exit's on the same frame (computed here, independently) — is reported per window of frames.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { argmax, preprocess } from '../../shared/algorithms/preprocess.js'
import { UserError } from '../../shared/errors.js'
import { DEFAULT_CONSOLE, EdgentConsole } from '../console/console.js'
import type { AuditChange } from '../console/features/audits.js'
import { LocalAgent } from '../console/features/local-agent.js'
import { rankAccuracy } from '../../shared/algorithms/policy-plans.js'
import { OrtExecutor } from '../runtime/executor.js'
import { loadManifest, readShippedSamples } from '../runtime/files.js'
import { shiftModelSamples } from '../models/shift.js'

export interface DriftOptions {
  model: string
  contrast: number
  brightness: number
  noise: number
  /** Frames per phase (the model's samples from the first; at most as many as it keeps). */
  frames: number
  /** Frames per reported window (and per batch). */
  window: number
  auditShare: number
  bound: number
  log: Logger
  progress?: (line: string) => void
}

export interface DriftWindow {
  fromFrame: number
  frames: number
  disagreement: number
  /** Share of the window's frames answered before the final exit. */
  early: number
  meanMs: number
}

export interface DriftPhase {
  name: string
  frames: string
  tuned: boolean
  windows: DriftWindow[]
  disagreement: number
  early: number
  meanMs: number
  changes: AuditChange[]
}

export interface DriftResult {
  model: string
  policy: { index: number; thresholds: (number | null)[] }
  shift: { contrast: number; brightness: number; noise: number; meanChange: number }
  auditShare: number
  bound: number
  phases: DriftPhase[]
  /** With tuning: the first frame from which every window was within the bound (null: the last was not). */
  returnedAfterFrames: number | null
}

/** Each frame's final-exit answer, as the model computes it here. */
async function finalLabels(dir: string, n: number): Promise<number[]> {
  const loaded = loadManifest(dir)
  const m = loaded.manifest
  const s = readShippedSamples(loaded)
  const final = m.exits[m.exits.length - 1]!
  const ex = new OrtExecutor()
  await ex.start()
  try {
    await ex.openModel(dir)
    const out: number[] = []
    for (let k = 0; k < n; k++) {
      const x = preprocess(m, s.images.subarray(k * s.imageElements, (k + 1) * s.imageElements))
      out.push(argmax((await ex.runSegment(m.id, { exit: final.exit, from: 0, to: final.layers.length }, x)).output))
    }
    return out
  } finally {
    await ex.stop()
  }
}

/** A console serving `dir` and a local device on loopback, while `fn` runs. */
async function withDevice<T>(dir: string, log: Logger, fn: (c: EdgentConsole, id: string) => Promise<T>): Promise<T> {
  const c = new EdgentConsole({
    ...DEFAULT_CONSOLE,
    dataDir: mkdtempSync(join(tmpdir(), 'edgent-drift-')),
    modelDir: dir,
    mqttHost: '127.0.0.1',
    mqttPort: 0,
    probeIntervalMs: 0,
    log
  })
  await c.start()
  const id = 'drift-pi'
  let agent: LocalAgent | null = null
  try {
    const { token } = c.pair(id, { force: true })
    agent = new LocalAgent({ id, brokerUrl: `mqtt://127.0.0.1:${c.mqttPort}`, token, modelDir: dir, emulatedUplinkKbps: null, cpuQuota: 1, log })
    agent.start()
    for (let i = 0; c.devices().find((d) => d.id === id)?.state !== 'online'; i++) {
      if (i > 600) throw new Error('the drift device did not come online within 60 s')
      await new Promise((r) => setTimeout(r, 100))
    }
    await c.sources.deviceTable(id)
    return await fn(c, id)
  } finally {
    await agent?.stop().catch(() => undefined)
    await c.stop().catch(() => undefined)
  }
}

export async function runDrift(o: DriftOptions): Promise<DriftResult> {
  const loaded = loadManifest(o.model)
  const m = loaded.manifest
  const conf = m.confidence
  if (!conf?.policies.length) throw new UserError(`model ${m.id} has no measured policies: run edgent model policies on it first`)
  const kept = m.samples?.count ?? 0
  if (o.frames > kept) throw new UserError(`--frames ${o.frames}: model ${m.id} keeps ${kept} samples`)
  // The policy the planner would offer at the final exit's level: the cheapest within its tolerance.
  const top = m.exits[m.exits.length - 1]!.accuracy
  const index = conf.policies.reduce(
    (best, p, i) => (rankAccuracy(m, p.accuracy) >= top && p.macs < conf.policies[best]!.macs ? i : best),
    conf.policies.length - 1
  )
  const policy = { index, thresholds: conf.policies[index]!.thresholds }
  const shiftedDir = join(mkdtempSync(join(tmpdir(), 'edgent-shifted-')), 'model')
  const shifted = shiftModelSamples({ model: loaded.dir, out: shiftedDir, contrast: o.contrast, brightness: o.brightness, noise: o.noise })
  const finalExit = m.exits[m.exits.length - 1]!
  const n = finalExit.layers.length
  const run = async (c: EdgentConsole, id: string, name: string, frames: string, labels: number[], tune: boolean): Promise<DriftPhase> => {
    c.audits.reset(id)
    c.audits.configure(id, { share: o.auditShare, bound: o.bound, tune })
    const windows: DriftWindow[] = []
    for (let from = 0; from < o.frames; from += o.window) {
      const count = Math.min(o.window, o.frames - from)
      const { rows } = await c.infer({
        agent: id,
        count,
        offset: from,
        latencyMs: 1000,
        uplinkKbps: 100_000,
        plan: { exit: finalExit.exit, deviceLayers: n, policy: index },
        learn: false
      })
      const wrong = rows.filter((r) => r.sample !== null && r.predictedLabel !== labels[r.sample]).length
      windows.push({
        fromFrame: from,
        frames: rows.length,
        disagreement: rows.length ? wrong / rows.length : 0,
        early: rows.length ? rows.filter((r) => r.exit !== finalExit.exit).length / rows.length : 0,
        meanMs: rows.length ? rows.reduce((a, r) => a + r.e2eMs, 0) / rows.length : 0
      })
      o.progress?.(`${name}: frames ${from}..${from + count - 1}, disagreement ${(100 * windows.at(-1)!.disagreement).toFixed(1)} %`)
    }
    const total = windows.reduce((a, w) => a + w.frames, 0) || 1
    const avg = (f: (w: DriftWindow) => number) => windows.reduce((a, w) => a + f(w) * w.frames, 0) / total
    return {
      name,
      frames,
      tuned: tune,
      windows,
      disagreement: avg((w) => w.disagreement),
      early: avg((w) => w.early),
      meanMs: avg((w) => w.meanMs),
      changes: c.audits.view(id).changes
    }
  }
  o.progress?.('final-exit answers of every frame (original and shifted)')
  const [own, moved] = [await finalLabels(loaded.dir, o.frames), await finalLabels(shifted.dir, o.frames)]
  const phases: DriftPhase[] = []
  phases.push(await withDevice(loaded.dir, o.log, (c, id) => run(c, id, 'original frames, fixed thresholds', 'original', own, false)))
  await withDevice(shifted.dir, o.log, async (c, id) => {
    phases.push(await run(c, id, 'shifted frames, fixed thresholds', 'shifted', moved, false))
    phases.push(await run(c, id, 'shifted frames, audit-tuned thresholds', 'shifted', moved, true))
  })
  // the first window from which every window is within the bound
  const tuned = phases[2]!.windows
  let returned: number | null = null
  for (let i = tuned.length - 1; i >= 0 && tuned[i]!.disagreement <= o.bound; i--) returned = tuned[i]!.fromFrame
  return {
    model: m.id,
    policy,
    shift: { contrast: o.contrast, brightness: o.brightness, noise: o.noise, meanChange: shifted.meanChange },
    auditShare: o.auditShare,
    bound: o.bound,
    phases,
    returnedAfterFrames: returned
  }
}

const pct = (v: number) => `${(100 * v).toFixed(1)} %`

/** A phase's disagreement pooled over its frames from `from` on. */
function pooledFrom(p: DriftPhase, from: number): number {
  const rest = p.windows.filter((w) => w.fromFrame >= from)
  const frames = rest.reduce((a, w) => a + w.frames, 0)
  return frames ? rest.reduce((a, w) => a + w.disagreement * w.frames, 0) / frames : 0
}

export function formatDrift(r: DriftResult): string {
  const lines = [
    `drift on ${r.model}: policy ${r.policy.index} (thresholds ${r.policy.thresholds.map((t) => t ?? '–').join(' / ')}), audits ${pct(r.auditShare)} of frames, bound ${pct(r.bound)}`,
    `shifted frames: contrast ×${r.shift.contrast}, brightness ${r.shift.brightness >= 0 ? '+' : ''}${r.shift.brightness}, noise σ ${r.shift.noise} grey levels (mean change ${r.shift.meanChange.toFixed(1)} levels per pixel)`,
    ''
  ]
  for (const p of r.phases) {
    lines.push(`${p.name}: disagreement with the final exit ${pct(p.disagreement)}, ${pct(p.early)} answered early, mean ${p.meanMs.toFixed(2)} ms`)
    lines.push(`  per window: ${p.windows.map((w) => pct(w.disagreement)).join(', ')}`)
    for (const c of p.changes)
      lines.push(
        `  thresholds ${c.from.map((t) => t ?? '–').join('/')} → ${c.to.map((t) => t ?? '–').join('/')} after ${c.frames} audited frames (${pct(c.before)} → ${pct(c.after)} on them)`
      )
  }
  lines.push(
    '',
    r.returnedAfterFrames === null
      ? 'with tuning, the last window was not within the bound'
      : `with tuning, every window from frame ${r.returnedAfterFrames} on was within the bound (${pct(pooledFrom(r.phases[2]!, r.returnedAfterFrames))} over those frames; the fixed thresholds: ${pct(pooledFrom(r.phases[1]!, r.returnedAfterFrames))} on the same frames)`
  )
  return lines.join('\n')
}
