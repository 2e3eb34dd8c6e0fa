/**
 * `edgent load-test`: N emulated devices (real agent processes, each with its own CPU slowdown)
 * co-inferring at once against one console — with the embedded broker, and with Mosquitto as an
 * external broker — and, with `--compare`, load-blind against load-aware planning side by side in the
 * same run (rounds alternate, so that the machine's drift falls on both). Every result is checked:
 * matched to its request id once (no loss, no duplicate) and its label equal to the unsplit model's
 * for that sample and exit. Reports per-device p50/p95 and the share of requirements met.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { quantile } from 'simple-statistics'
import { DEFAULT_CONSOLE, EdgentConsole } from '../console/console.js'
import { LocalAgent } from '../console/features/local-agent.js'
import type { EdgeLoadView, InferRow } from '../../shared/contracts/console-api.js'
import { UserError, errorMessage } from '../../shared/errors.js'
import { exitPath } from '../../shared/contracts/manifest.js'
import { argmax, preprocess } from '../../shared/algorithms/preprocess.js'
import { loadManifest, readShippedSamples } from '../runtime/files.js'

export type LoadBroker = 'embedded' | 'mosquitto'
export type LoadPlanning = 'load-aware' | 'load-blind'

export interface LoadTestOptions {
  agents: number
  brokers: LoadBroker[]
  /** Co-inferences per device per phase. */
  count: number
  latencyMs: number
  /** The bandwidth plans are made for, kbit/s (the devices share this machine's loopback). */
  uplinkKbps: number
  /** Each device's CPU share (1/slowdown). */
  cpuQuota: number
  /** Load-blind against load-aware planning (embedded broker), this many rounds of each. */
  compareRounds: number
  modelDir: string
  mosquitto: string
  log: Logger
  progress?: (line: string) => void
}

export interface DeviceFigures {
  id: string
  completed: number
  lost: number
  p50Ms: number
  p95Ms: number
  metShare: number
  /** The plans it ran, as exit/deviceLayers → inferences. */
  plans: Record<string, number>
}

export interface LoadPhase {
  broker: LoadBroker
  planning: LoadPlanning
  round: number
  agents: number
  inferences: number
  lost: number
  duplicated: number
  mismatched: number
  p50Ms: number
  p95Ms: number
  metShare: number
  /** Inferences that ran on the device alone (deviceLayers = N). */
  deviceOnlyShare: number
  devices: DeviceFigures[]
  edge: EdgeLoadView
  wallMs: number
}

export interface LoadReport {
  options: Omit<LoadTestOptions, 'log' | 'progress'>
  phases: LoadPhase[]
  /** With a comparison: the share of requirements met, pooled over the rounds of each planning. */
  comparison: { loadBlindMetShare: number; loadAwareMetShare: number; loadBlindP95Ms: number; loadAwareP95Ms: number } | null
  /** 0 lost, 0 duplicated, 0 mismatched in every phase. */
  clean: boolean
}

/** A free TCP port on loopback (for Mosquitto; the test harness uses it too). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

async function startMosquitto(bin: string, port: number): Promise<ChildProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'edgent-load-mosquitto-'))
  const conf = join(dir, 'mosquitto.conf')
  // Loopback only; authentication and ACLs are the external broker's job (docs/brokers.md).
  writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\nmax_packet_size 4194304\n`)
  const child = spawn(bin, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  let log = ''
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()))
  const spawned = new Promise<never>((_, reject) =>
    child.once('error', (err) =>
      reject(new UserError(`cannot start mosquitto (${bin}): ${err.message}; install it (apt install mosquitto) or pass --mosquitto`))
    )
  )
  const running = (async () => {
    for (let i = 0; i < 200 && !log.includes('running'); i++) await new Promise((r) => setTimeout(r, 50))
    if (!log.includes('running')) throw new UserError(`mosquitto did not start: ${log.trim().slice(-300)}`)
  })()
  await Promise.race([running, spawned])
  return child
}

/** The unsplit model's label for every shipped sample at every exit (what each result must equal). */
async function unsplitLabels(core: EdgentConsole, modelDir: string): Promise<Map<number, number[]>> {
  const loaded = loadManifest(modelDir)
  const samples = readShippedSamples(loaded)
  const out = new Map<number, number[]>()
  for (const e of loaded.manifest.exits) {
    const n = exitPath(loaded.manifest, e.exit).length
    const labels: number[] = []
    for (let k = 0; k < samples.count; k++) {
      const x = preprocess(loaded.manifest, samples.images.subarray(k * samples.imageElements, (k + 1) * samples.imageElements))
      labels.push(argmax((await core.executor.runSegment(loaded.manifest.id, { exit: e.exit, from: 0, to: n }, x)).output))
    }
    out.set(e.exit, labels)
  }
  return out
}

const q = (xs: number[], p: number): number => (xs.length ? quantile(xs, p) : NaN)

function figures(id: string, rows: InferRow[], lost: number, latencyMs: number): DeviceFigures {
  const e2e = rows.map((r) => r.e2eMs)
  const plans: Record<string, number> = {}
  for (const r of rows) plans[`${r.exit}/${r.deviceLayers}`] = (plans[`${r.exit}/${r.deviceLayers}`] ?? 0) + 1
  return {
    id,
    completed: rows.length,
    lost,
    p50Ms: q(e2e, 0.5),
    p95Ms: q(e2e, 0.95),
    metShare: rows.length ? rows.filter((r) => r.e2eMs <= latencyMs).length / (rows.length + lost) : 0,
    plans
  }
}

/** One phase: every device runs `count` co-inferences at once; every result is checked. */
async function phase(
  core: EdgentConsole,
  ids: string[],
  labels: Map<number, number[]>,
  o: LoadTestOptions,
  broker: LoadBroker,
  planning: LoadPlanning,
  round: number
): Promise<LoadPhase> {
  core.planning.loadAware = planning === 'load-aware'
  const t0 = performance.now()
  let peak: EdgeLoadView = core.load()
  const watch = setInterval(() => {
    const v = core.load()
    if (v.utilisation >= peak.utilisation) peak = v
  }, 250)
  const results = await Promise.all(
    ids.map((id) => core.infer({ agent: id, count: o.count, latencyMs: o.latencyMs, uplinkKbps: o.uplinkKbps }).then((r) => ({ id, ...r })))
  ).finally(() => clearInterval(watch))
  const wallMs = performance.now() - t0
  const all: InferRow[] = []
  let lost = 0
  let duplicated = 0
  let mismatched = 0
  const devices: DeviceFigures[] = []
  for (const r of results) {
    lost += r.summary.lost
    const seen = new Set<string>()
    for (const row of r.rows) {
      if (seen.has(row.requestId)) duplicated++
      seen.add(row.requestId)
      const want = row.sample === null ? undefined : labels.get(row.exit)?.[row.sample]
      if (want === undefined || row.predictedLabel !== want) mismatched++
    }
    all.push(...r.rows)
    devices.push(figures(r.id, r.rows, r.summary.lost, o.latencyMs))
  }
  const e2e = all.map((r) => r.e2eMs)
  const layersOf = new Map(core.model.exits.map((e) => [e.exit, e.layers.length]))
  return {
    broker,
    planning,
    round,
    agents: ids.length,
    inferences: all.length,
    lost,
    duplicated,
    mismatched,
    p50Ms: q(e2e, 0.5),
    p95Ms: q(e2e, 0.95),
    metShare: all.length + lost ? all.filter((r) => r.e2eMs <= o.latencyMs).length / (all.length + lost) : 0,
    deviceOnlyShare: all.length ? all.filter((r) => r.deviceLayers >= layersOf.get(r.exit)!).length / all.length : 0,
    devices,
    edge: peak,
    wallMs
  }
}

/** A console with its broker, N paired agent processes online and profiled. */
async function withFleet<T>(o: LoadTestOptions, broker: LoadBroker, run: (core: EdgentConsole, ids: string[]) => Promise<T>): Promise<T> {
  const say = o.progress ?? (() => undefined)
  const dataDir = mkdtempSync(join(tmpdir(), 'edgent-load-'))
  let mosquitto: ChildProcess | null = null
  const agents: LocalAgent[] = []
  let core: EdgentConsole | null = null
  try {
    let brokerUrl: string | undefined
    if (broker === 'mosquitto') {
      const port = await freePort()
      mosquitto = await startMosquitto(o.mosquitto, port)
      brokerUrl = `mqtt://127.0.0.1:${port}`
    }
    core = new EdgentConsole({
      ...DEFAULT_CONSOLE,
      dataDir,
      modelDir: o.modelDir,
      mqttHost: '127.0.0.1',
      mqttPort: 0,
      probeIntervalMs: 0,
      profileReps: 4,
      log: o.log,
      ...(brokerUrl ? { brokerUrl } : {})
    })
    await core.start()
    const url = brokerUrl ?? `mqtt://127.0.0.1:${core.mqttPort}`
    const ids = Array.from({ length: o.agents }, (_, i) => `load-${String(i + 1).padStart(2, '0')}`)
    for (const id of ids) {
      const a = new LocalAgent({
        id,
        brokerUrl: url,
        token: core.pair(id).token,
        modelDir: o.modelDir,
        cacheDir: join(dataDir, 'agents', id),
        emulatedUplinkKbps: null,
        cpuQuota: o.cpuQuota,
        cpuMode: 'slowdown',
        logLevel: 'warn',
        log: o.log
      })
      a.start()
      agents.push(a)
    }
    say(`${broker}: ${o.agents} agents started; waiting for them online`)
    const c = core
    for (let i = 0; i < 1200 && !ids.every((id) => c.devices().find((d) => d.id === id)?.state === 'online'); i++) await new Promise((r) => setTimeout(r, 50))
    const offline = ids.filter((id) => c.devices().find((d) => d.id === id)?.state !== 'online')
    if (offline.length) throw new UserError(`${offline.length} of ${ids.length} agents did not come online within 60 s: ${offline.slice(0, 5).join(', ')}`)
    // Profiled and warm (each device's layers, its first plan), a few at a time: 20 profiles at once would time out on a small machine.
    for (let i = 0; i < ids.length; i += 4)
      await Promise.all(ids.slice(i, i + 4).map((id) => c.infer({ agent: id, count: 3, latencyMs: o.latencyMs, uplinkKbps: o.uplinkKbps })))
    say(`${broker}: ${ids.length} agents online and profiled`)
    return await run(c, ids)
  } finally {
    await Promise.all(agents.map((a) => a.stop().catch(() => undefined)))
    await core?.stop().catch((err: unknown) => o.log.warn({ err: errorMessage(err) }, 'console stop failed'))
    mosquitto?.kill('SIGTERM')
    rmSync(dataDir, { recursive: true, force: true })
  }
}

export async function runLoadTest(o: LoadTestOptions): Promise<LoadReport> {
  if (!Number.isInteger(o.agents) || o.agents < 1 || o.agents > 64) throw new UserError(`--agents must be 1..64, got ${o.agents}`)
  if (!Number.isInteger(o.count) || o.count < 1) throw new UserError(`--count must be a positive integer, got ${o.count}`)
  const say = o.progress ?? (() => undefined)
  const phases: LoadPhase[] = []
  for (const broker of o.brokers) {
    await withFleet(o, broker, async (core, ids) => {
      const labels = await unsplitLabels(core, o.modelDir)
      const comparing = broker === 'embedded' && o.compareRounds > 0
      const plan: LoadPlanning[] = comparing ? Array.from({ length: o.compareRounds }, () => ['load-blind', 'load-aware'] as const).flat() : ['load-aware']
      let round = 0
      for (const p of plan) {
        if (p === 'load-blind') round++
        const ph = await phase(core, ids, labels, o, broker, p, plan.length === 1 ? 1 : round)
        phases.push(ph)
        say(
          `${broker}, ${p}${plan.length > 1 ? ` (round ${round})` : ''}: ${ph.inferences} inferences, met ${(100 * ph.metShare).toFixed(1)} %, p50 ${ph.p50Ms.toFixed(2)} ms, p95 ${ph.p95Ms.toFixed(2)} ms; lost ${ph.lost}, duplicated ${ph.duplicated}, mismatched ${ph.mismatched}`
        )
      }
    })
  }
  const pooled = (p: LoadPlanning) => {
    const xs = phases.filter((x) => x.planning === p && x.broker === 'embedded')
    const n = xs.reduce((a, x) => a + x.inferences + x.lost, 0)
    return {
      met: n ? xs.reduce((a, x) => a + x.metShare * (x.inferences + x.lost), 0) / n : NaN,
      p95: xs.length
        ? q(
            xs.map((x) => x.p95Ms),
            0.5
          )
        : NaN
    }
  }
  const compared = o.compareRounds > 0 && o.brokers.includes('embedded')
  const { log: _l, progress: _p, ...options } = o
  return {
    options,
    phases,
    comparison: compared
      ? {
          loadBlindMetShare: pooled('load-blind').met,
          loadAwareMetShare: pooled('load-aware').met,
          loadBlindP95Ms: pooled('load-blind').p95,
          loadAwareP95Ms: pooled('load-aware').p95
        }
      : null,
    clean: phases.every((p) => p.lost === 0 && p.duplicated === 0 && p.mismatched === 0)
  }
}

export function formatLoadReport(r: LoadReport): string {
  const o = r.options
  const lines = [
    `Load test: ${o.agents} devices (agent processes, CPU ${(1 / o.cpuQuota).toFixed(1)}× slower), ${o.count} co-inferences each per phase, requirement ${o.latencyMs} ms, plans at ${o.uplinkKbps} kbps`,
    ''
  ]
  for (const p of r.phases) {
    lines.push(
      `${p.broker.padEnd(9)} ${p.planning.padEnd(10)} round ${p.round}: ${p.inferences} inferences in ${(p.wallMs / 1000).toFixed(1)} s; met ${(100 * p.metShare).toFixed(1)} %; p50 ${p.p50Ms.toFixed(2)} ms, p95 ${p.p95Ms.toFixed(2)} ms; device-only ${(100 * p.deviceOnlyShare).toFixed(0)} %; lost ${p.lost}, duplicated ${p.duplicated}, mismatched ${p.mismatched}`
    )
    lines.push(
      `          edge at its busiest: ${p.edge.workers} workers, utilisation ${(100 * p.edge.utilisation).toFixed(0)} %, mean wait ${p.edge.meanWaitMs.toFixed(2)} ms (p95 ${p.edge.p95WaitMs.toFixed(2)} ms)`
    )
    lines.push(
      `          per device p50/p95 ms, met %: ${p.devices.map((d) => `${d.id.replace('load-', '')} ${d.p50Ms.toFixed(1)}/${d.p95Ms.toFixed(1)} ${(100 * d.metShare).toFixed(0)}`).join(' · ')}`
    )
  }
  if (r.comparison) {
    const c = r.comparison
    lines.push(
      '',
      `Requirement met (embedded broker, pooled over the rounds): load-blind ${(100 * c.loadBlindMetShare).toFixed(1)} %, load-aware ${(100 * c.loadAwareMetShare).toFixed(1)} % (median p95 ${c.loadBlindP95Ms.toFixed(2)} against ${c.loadAwareP95Ms.toFixed(2)} ms)`
    )
  }
  lines.push(
    '',
    r.clean
      ? 'Every result matched its request once and equalled the unsplit model: 0 lost, 0 duplicated, 0 mismatched.'
      : 'RESULTS LOST, DUPLICATED OR MISMATCHED: see above.'
  )
  return lines.join('\n')
}
