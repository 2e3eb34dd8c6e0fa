/**
 * The testbed (Edgent's evaluation as one command): an emulated Pi in a network namespace behind a
 * veth pair whose uplink and downlink are shaped with tc for real (the paper used WonderShaper), its
 * CPU limited (a cgroup v1 CFS quota, or the steady slowdown), the console on the host side. It
 * calibrates the device (per-layer timings), then for every bandwidth × requirement co-infers with
 * Edgent's plan and with the baselines measured in the same run — device-only, edge-only,
 * partition-only (Neurosurgeon: final exit, best partition) and right-sizing-only (best exit, run
 * whole on the device) — plus the other partitions of Edgent's exit whose prediction is within 2×
 * of Edgent's (the candidates for "best configuration of the same exit"). Everything is torn down
 * whatever happens (failure, Ctrl-C).
 */
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { median } from 'simple-statistics'
import { probeBytes } from '../../shared/algorithms/bandwidth.js'
import { UserError } from '../../shared/errors.js'
import { exitPath } from '../../shared/contracts/manifest.js'
import { candidateAt, latencyOf, plan as planAt, type CostTable } from '../../shared/algorithms/planner.js'
import type { Codec } from '../../shared/algorithms/codecs.js'
import { DEFAULT_CONSOLE, EdgentConsole } from '../console/console.js'
import { LocalAgent } from '../console/features/local-agent.js'
import { AgentNetns, netnsUnavailable } from './netns.js'

export type Strategy = 'edgent' | 'device-only' | 'edge-only' | 'edge-only-u8' | 'partition-only' | 'right-sizing-only' | 'same-exit'

/** The single-side baselines: the final exit run whole on one side (edge-only as f32 floats, and as the raw u8 frame where the model allows it). */
export const SINGLE_SIDE: readonly Strategy[] = ['device-only', 'edge-only', 'edge-only-u8']

export interface TestbedOptions {
  bandwidthsKbps: number[]
  latenciesMs: number[]
  /** Share of one CPU for the device. */
  cpuQuota: number
  cpu: 'cgroup' | 'slowdown'
  /** Co-inferences per configuration and point. */
  reps: number
  modelDir: string
  log: Logger
  /** Bandwidth traces replayed through tc during long co-inference runs, static against adaptive planning. */
  traces?: BandwidthTrace[]
  /** The requirement the traces are run at, ms. */
  traceLatencyMs?: number
  /** Checked between points: a Ctrl-C stops the run (and everything is torn down). */
  signal?: AbortSignal
  progress?: (done: number, total: number, what: string) => void
}

export interface ConfigResult {
  /** The link's shaped rate (tc) at this point, kbit/s. */
  linkKbps: number
  latencyMs: number
  strategy: Strategy
  exit: number
  deviceLayers: number
  layers: number
  /** How the activation crossed the link (f32 where nothing was sent). */
  codec: Codec
  /** The configuration's measured accuracy: the exit's, less its codec's measured drop at the cut. */
  accuracy: number
  predictedMs: number
  /** Median measured end-to-end latency, ms. */
  measuredMs: number
  p95Ms: number
  /** The median met the requirement. */
  met: boolean
  /** Share of the inferences that met it. */
  metShare: number
  /** Top-1 on the shipped samples used. */
  sampleAccuracy: number | null
  runId: string
}

/** A bandwidth trace: consecutive segments of a shaped rate. */
export interface BandwidthTrace {
  name: string
  segments: { ms: number; kbps: number }[]
}

/** One co-inference of a trace run. */
export interface TracePoint {
  /** Seconds since the trace started (the batch's start). */
  t: number
  /** The shaped rate at that time. */
  shapedKbps: number
  exit: number
  deviceLayers: number
  e2eMs: number
  met: boolean
  accuracy: number
}

export interface TraceResult {
  trace: BandwidthTrace
  mode: 'static' | 'adaptive'
  latencyMs: number
  points: TracePoint[]
  misses: number
  missShare: number
  /** Mean of the exits' test accuracy over the inferences. */
  meanAccuracy: number
  planChanges: number
}

/** Step changes, and a fluctuating trace, around the rate where the best plan flips for this model. */
export function defaultTraces(scale = 1): BandwidthTrace[] {
  const s = (ms: number) => Math.round(ms * scale)
  const fluctuating = [20000, 400, 8000, 300, 15000, 600, 300, 12000, 500, 20000, 350, 9000].map((kbps) => ({ ms: s(2500), kbps }))
  return [
    {
      name: 'steps',
      segments: [
        { ms: s(8000), kbps: 20000 },
        { ms: s(8000), kbps: 400 },
        { ms: s(8000), kbps: 20000 }
      ]
    },
    { name: 'fluctuating', segments: fluctuating }
  ]
}

export interface TestbedResult {
  startedAt: string
  finishedAt: string
  options: Omit<TestbedOptions, 'log' | 'signal' | 'progress' | 'traces'>
  emulation: Record<string, unknown>
  device: { exitFusedMs: Record<string, number> }
  /** The console's uplink estimate after probing each shaped rate. */
  estimates: { linkKbps: number; uplinkEstimateKbps: number }[]
  results: ConfigResult[]
  traces: TraceResult[]
  checks: {
    /** Points where some measured configuration met the requirement, and how many of them Edgent met. */
    feasiblePoints: number
    edgentMetWhereFeasible: number
    /** Points where Edgent's measured latency is within 10 % of the best measured configuration of its exit. */
    withinTenPercent: number
    points: number
    /** Median over points of |predicted − measured| / measured for Edgent's plans. */
    medianAbsError: number
    /**
     * Per bandwidth, the fastest measured middle cut (0 < deviceLayers < N, any codec) with accuracy at
     * least the single-side baselines', against device-only and the faster edge-only (f32 or u8).
     */
    middleCuts: MiddleCut[]
    /** Per point: the best single-side baseline's measured latency over each strategy's (> 1: faster). */
    speedups: { linkKbps: number; latencyMs: number; baseline: Strategy; baselineMs: number; by: Partial<Record<Strategy, number>> }[]
  }
}

export interface MiddleCut {
  linkKbps: number
  exit: number
  deviceLayers: number
  layers: number
  codec: Codec
  accuracy: number
  measuredMs: number
  deviceOnlyMs: number
  edgeOnlyMs: number
  /** min(device-only, edge-only) / middle − 1: ≥ 0.10 is the "10 % faster than both". */
  gain: number
}

/** Why the testbed cannot run here, or null. */
export function testbedUnavailable(cpu: 'cgroup' | 'slowdown'): string | null {
  const net = netnsUnavailable()
  if (net) return net
  if (cpu === 'cgroup' && !existsSync('/sys/fs/cgroup/cpu'))
    return 'needs the cgroup v1 cpu controller (/sys/fs/cgroup/cpu) for --cpu cgroup; --cpu slowdown works without it'
  return null
}

/** A running testbed: the console on the host side, the emulated device in its namespace (online), and the teardown. */
export interface OpenTestbed {
  core: EdgentConsole
  agent: LocalAgent
  ns: AgentNetns
  id: string
  check(): void
  /** Shapes the link both ways to `kbps` and returns the console's estimate after three probes. */
  setLink(kbps: number): Promise<number>
  close(): Promise<void>
}

/** Sets the testbed up (namespace, console, device online): `close` tears everything down, whatever happened. */
export async function openTestbed(
  o: Pick<TestbedOptions, 'cpu' | 'cpuQuota' | 'modelDir' | 'log' | 'signal'>,
  dataDirPrefix = 'edgent-testbed-'
): Promise<OpenTestbed> {
  const why = testbedUnavailable(o.cpu)
  if (why) throw new UserError(`the testbed cannot run here: ${why}`)
  const ns = new AgentNetns(200 + (process.pid % 50))
  let core: EdgentConsole | null = null
  let agent: LocalAgent | null = null
  const check = () => {
    if (o.signal?.aborted) throw new UserError('testbed interrupted (everything was torn down)')
  }
  const close = async () => {
    await agent?.stop().catch(() => undefined)
    await core?.stop().catch(() => undefined)
    ns.destroy()
  }
  try {
    ns.create()
    core = new EdgentConsole({
      ...DEFAULT_CONSOLE,
      dataDir: mkdtempSync(join(tmpdir(), dataDirPrefix)),
      modelDir: o.modelDir,
      mqttHost: ns.hostIp,
      mqttPort: 0,
      probeIntervalMs: 0,
      log: o.log
    })
    await core.start()
    const id = 'testbed-pi'
    const { token } = core.pair(id, { force: true })
    agent = new LocalAgent({
      id,
      brokerUrl: `mqtt://${ns.hostIp}:${core.mqttPort}`,
      token,
      modelDir: o.modelDir,
      emulatedUplinkKbps: null,
      prefix: ns.exec,
      link: { method: 'tc tbf on both veth ends, in a network namespace', kbps: 'per point' },
      cpuQuota: o.cpuQuota,
      cpuMode: o.cpu,
      logLevel: o.log.level,
      log: o.log.child({ part: 'agent' })
    })
    agent.start()
    const c = core
    for (let i = 0; c.devices().find((d) => d.id === id)?.state !== 'online'; i++) {
      if (i > 600) throw new Error('the testbed agent did not come online within 60 s')
      check()
      await new Promise((r) => setTimeout(r, 100))
    }
    if (o.cpu === 'cgroup' && !(agent.emulation['cpu'] as { method?: string }).method?.startsWith('cgroup')) {
      throw new UserError('could not put the agent in a cgroup with a CPU quota (is /sys/fs/cgroup/cpu writable?); --cpu slowdown works without it')
    }
    // Edgent measures the bandwidth (it does not know the shaper's setting): three packet-train
    // probes, each about a quarter second at the shaped rate.
    const setLink = async (kbps: number) => {
      ns.shapeUplink(kbps)
      ns.shapeDownlink(kbps)
      let estimate = 0
      for (let i = 0; i < 3; i++) estimate = await c.monitor.probeUplink(id, probeBytes(kbps))
      return estimate
    }
    return { core: c, agent, ns, id, check, setLink, close }
  } catch (err) {
    await close()
    throw err
  }
}

export async function runTestbed(o: TestbedOptions): Promise<TestbedResult> {
  const startedAt = new Date().toISOString()
  const tb = await openTestbed(o)
  const { ns, id, check, agent } = tb
  const c = tb.core
  try {
    // Static Edgent as the paper has it: plans over static exits (confidence-exit policies: `--policies`).
    c.sources.setPolicyOptions(id, null)
    o.progress?.(0, 1, 'calibrating (every layer on the device and the edge)')
    const table = await c.sources.deviceTable(id)
    const m = c.model
    const lastExit = Math.max(...m.exits.map((e) => e.exit))
    const nOf = (exit: number) => exitPath(m, exit).length
    const accOf = (exit: number) => m.exits.find((e) => e.exit === exit)!.accuracy
    const results: ConfigResult[] = []
    const estimates: { linkKbps: number; uplinkEstimateKbps: number }[] = []
    const total = o.bandwidthsKbps.length * o.latenciesMs.length
    let done = 0
    for (const kbps of o.bandwidthsKbps) {
      check()
      const estimateKbps = await tb.setLink(kbps)
      estimates.push({ linkKbps: kbps, uplinkEstimateKbps: estimateKbps })
      // (timed again first, when a drift check dropped the device's table)
      await c.sources.deviceTable(id)
      const costs: CostTable = c.planning.costTable(id)
      const cond = (latencyMs: number) => ({ uplinkKbps: estimateKbps, latencyMs })
      const accuracyOf = (exit: number, deviceLayers: number, codec: Codec) => candidateAt(costs, exit, deviceLayers, codec)?.accuracy ?? accOf(exit)
      // Measured configurations at this bandwidth (latency does not depend on the requirement).
      const cache = new Map<string, Omit<ConfigResult, 'latencyMs' | 'strategy' | 'met'> & { e2e: number[] }>()
      const measure = async (exit: number, deviceLayers: number, latencyMs: number, codec: Codec = 'f32') => {
        const key = `${exit}/${deviceLayers}/${codec}`
        let r = cache.get(key)
        if (!r) {
          // Baselines are measured at the same bandwidth estimate and do not teach the online correction.
          const { summary, rows } = await c.infer({
            agent: id,
            count: o.reps,
            latencyMs,
            uplinkKbps: estimateKbps,
            plan: { exit, deviceLayers, ...(codec !== 'f32' ? { codec } : {}) },
            learn: false
          })
          if (!rows.length) throw new Error(`no co-inference completed for exit ${exit}, ${deviceLayers} device layers (${codec}) at ${kbps} kbps`)
          const e2e = rows.map((x) => x.e2eMs).sort((a, b) => a - b)
          r = {
            linkKbps: kbps,
            exit,
            deviceLayers,
            layers: nOf(exit),
            codec,
            accuracy: accuracyOf(exit, deviceLayers, codec),
            predictedMs: summary.plan.predictedMs,
            measuredMs: median(e2e),
            p95Ms: e2e[Math.min(e2e.length - 1, Math.ceil(0.95 * e2e.length) - 1)]!,
            metShare: 0,
            sampleAccuracy: summary.accuracy,
            runId: summary.runId,
            e2e
          }
          cache.set(key, r)
        }
        return r
      }
      for (const latencyMs of o.latenciesMs) {
        check()
        o.progress?.(done, total, `${kbps} kbps, ${latencyMs} ms`)
        const add = (strategy: Strategy, r: Omit<ConfigResult, 'latencyMs' | 'strategy' | 'met'> & { e2e: number[] }) => {
          const { e2e: all, ...rest } = r
          results.push({ ...rest, latencyMs, strategy, met: r.measuredMs <= latencyMs, metShare: all.filter((v) => v <= latencyMs).length / all.length })
        }
        // Edgent: the console plans (its prediction is the one the plan carries).
        const e = await c.infer({ agent: id, count: o.reps, latencyMs, uplinkKbps: estimateKbps })
        if (!e.rows.length) throw new Error(`no co-inference completed for Edgent's plan at ${kbps} kbps, ${latencyMs} ms`)
        const e2e = e.rows.map((x) => x.e2eMs).sort((a, b) => a - b)
        const ex = e.summary.plan.exit
        const p = e.summary.plan.deviceLayers
        const codec: Codec = p < nOf(ex) ? (e.summary.plan.codec ?? 'f32') : 'f32'
        results.push({
          linkKbps: kbps,
          latencyMs,
          strategy: 'edgent',
          exit: ex,
          deviceLayers: p,
          layers: nOf(ex),
          codec,
          accuracy: accuracyOf(ex, p, codec),
          predictedMs: e.summary.plan.predictedMs,
          measuredMs: median(e2e),
          p95Ms: e2e[Math.min(e2e.length - 1, Math.ceil(0.95 * e2e.length) - 1)]!,
          met: median(e2e) <= latencyMs,
          metShare: e.summary.metShare,
          sampleAccuracy: e.summary.accuracy,
          runId: e.summary.runId
        })
        const last = costs.exits.find((g) => g[0]!.exit === lastExit)!
        add('device-only', await measure(lastExit, nOf(lastExit), latencyMs))
        add('edge-only', await measure(lastExit, 0, latencyMs))
        if (m.preprocessing) add('edge-only-u8', await measure(lastExit, 0, latencyMs, 'u8'))
        // Neurosurgeon: the final exit at its best predicted cut, activations as f32
        const neuro = last
          .filter((x) => x.codec === 'f32')
          .reduce((best, cand) => (latencyOf(cand, cond(latencyMs)) < latencyOf(best, cond(latencyMs)) ? cand : best))
        add('partition-only', await measure(lastExit, neuro.deviceLayers, latencyMs))
        const whole = costs.exits.map((g) => g[g[0]!.layers]!)
        const feasible = whole.filter((w) => latencyOf(w, cond(latencyMs)) <= latencyMs)
        const rs = feasible.length
          ? feasible.reduce((a, b) => (b.accuracy > a.accuracy ? b : a))
          : whole.reduce((a, b) => (latencyOf(b, cond(latencyMs)) < latencyOf(a, cond(latencyMs)) ? b : a))
        add('right-sizing-only', await measure(rs.exit, rs.deviceLayers, latencyMs))
        // The other configurations (cut, codec) of Edgent's exit that could plausibly be faster (predicted within 2×).
        const group = costs.exits.find((g) => g[0]!.exit === ex)!
        const edgentPredicted = e.summary.plan.predictedMs
        for (const cand of group) {
          if ((cand.deviceLayers === p && cand.codec === codec) || latencyOf(cand, cond(latencyMs)) > 2 * edgentPredicted) continue
          add('same-exit', await measure(ex, cand.deviceLayers, latencyMs, cand.codec))
        }
        done++
        o.progress?.(done, total, `${kbps} kbps, ${latencyMs} ms`)
      }
    }
    // Dynamic bandwidth: the same trace replayed for a plan made once (static) and for the
    // console's change detection + configuration map with probes between batches (adaptive).
    const traces: TraceResult[] = []
    for (const trace of o.traces ?? []) {
      for (const mode of ['static', 'adaptive'] as const) {
        check()
        o.progress?.(done, total, `trace ${trace.name}, ${mode}`)
        traces.push(await runTrace(c, id, ns, trace, mode, o.traceLatencyMs ?? 10, accOf, check))
      }
    }
    // The acceptance checks, from the measurements.
    let feasiblePoints = 0
    let edgentMetWhereFeasible = 0
    let within = 0
    const errors: number[] = []
    for (const kbps of o.bandwidthsKbps) {
      for (const latencyMs of o.latenciesMs) {
        const here = results.filter((r) => r.linkKbps === kbps && r.latencyMs === latencyMs)
        const ed = here.find((r) => r.strategy === 'edgent')!
        if (here.some((r) => r.met)) {
          feasiblePoints++
          if (ed.met) edgentMetWhereFeasible++
        }
        const sameExit = here.filter((r) => r.exit === ed.exit)
        const best = Math.min(...sameExit.map((r) => r.measuredMs))
        if (ed.measuredMs <= 1.1 * best) within++
        errors.push(Math.abs(ed.predictedMs - ed.measuredMs) / ed.measuredMs)
      }
    }
    const { middleCuts, speedups } = compareWithSingleSide(results, o.bandwidthsKbps, o.latenciesMs)
    return {
      startedAt,
      finishedAt: new Date().toISOString(),
      options: { bandwidthsKbps: o.bandwidthsKbps, latenciesMs: o.latenciesMs, cpuQuota: o.cpuQuota, cpu: o.cpu, reps: o.reps, modelDir: o.modelDir },
      emulation: agent.emulation,
      device: { exitFusedMs: table.exitFusedMs },
      estimates,
      results,
      traces,
      checks: { feasiblePoints, edgentMetWhereFeasible, withinTenPercent: within, points: total, medianAbsError: median(errors), middleCuts, speedups }
    }
  } finally {
    await tb.close()
  }
}

/** The measured configuration with the least median latency (of a non-empty list). */
const fastest = (rs: readonly ConfigResult[]): ConfigResult => rs.reduce((a, b) => (b.measuredMs < a.measuredMs ? b : a))

/**
 * Per bandwidth, the fastest measured middle cut at no less accuracy than the single-side baselines,
 * against them; per point, each strategy's speedup over the best single-side baseline measured there.
 */
export function compareWithSingleSide(
  results: readonly ConfigResult[],
  bandwidthsKbps: readonly number[],
  latenciesMs: readonly number[]
): { middleCuts: MiddleCut[]; speedups: TestbedResult['checks']['speedups'] } {
  const middleCuts: MiddleCut[] = []
  const speedups: TestbedResult['checks']['speedups'] = []
  for (const kbps of bandwidthsKbps) {
    const here = results.filter((r) => r.linkKbps === kbps)
    const dev = here.find((r) => r.strategy === 'device-only')
    const edges = here.filter((r) => r.strategy === 'edge-only' || r.strategy === 'edge-only-u8')
    if (dev && edges.length) {
      const edge = fastest(edges)
      const floor = Math.max(dev.accuracy, edge.accuracy) - 1e-12
      const mids = here.filter((r) => r.deviceLayers > 0 && r.deviceLayers < r.layers && r.accuracy >= floor)
      if (mids.length) {
        const best = fastest(mids)
        middleCuts.push({
          linkKbps: kbps,
          exit: best.exit,
          deviceLayers: best.deviceLayers,
          layers: best.layers,
          codec: best.codec,
          accuracy: best.accuracy,
          measuredMs: best.measuredMs,
          deviceOnlyMs: dev.measuredMs,
          edgeOnlyMs: edge.measuredMs,
          gain: Math.min(dev.measuredMs, edge.measuredMs) / best.measuredMs - 1
        })
      }
    }
    for (const latencyMs of latenciesMs) {
      const point = here.filter((r) => r.latencyMs === latencyMs)
      const single = point.filter((r) => SINGLE_SIDE.includes(r.strategy))
      if (!single.length) continue
      const base = fastest(single)
      const by: Partial<Record<Strategy, number>> = {}
      for (const r of point) if (r.strategy !== 'same-exit') by[r.strategy] = base.measuredMs / r.measuredMs
      speedups.push({ linkKbps: kbps, latencyMs, baseline: base.strategy, baselineMs: base.measuredMs, by })
    }
  }
  return { middleCuts, speedups }
}

const BATCH = 5

async function runTrace(
  c: EdgentConsole,
  id: string,
  ns: AgentNetns,
  trace: BandwidthTrace,
  mode: 'static' | 'adaptive',
  latencyMs: number,
  accOf: (exit: number) => number,
  check: () => void
): Promise<TraceResult> {
  const first = trace.segments[0]!.kbps
  ns.shapeUplink(first)
  ns.shapeDownlink(first)
  let est = 0
  for (let i = 0; i < 3; i++) est = await c.monitor.probeUplink(id, probeBytes(first))
  // Static: the plan for the bandwidth measured at the start, kept for the whole trace.
  const fixed = planAt(c.planning.costTable(id), { uplinkKbps: est, latencyMs })!
  const t0 = performance.now()
  let shaped = first
  const ends: number[] = []
  let acc = 0
  for (const seg of trace.segments) {
    acc += seg.ms
    ends.push(acc)
  }
  const timers = trace.segments.slice(1).map((seg, i) =>
    setTimeout(() => {
      shaped = seg.kbps
      ns.shapeUplink(seg.kbps)
      ns.shapeDownlink(seg.kbps)
    }, ends[i]!)
  )
  const points: TracePoint[] = []
  try {
    while (performance.now() - t0 < acc) {
      check()
      const t = (performance.now() - t0) / 1000
      const at = shaped
      // Both modes run the same loop, probe included, so they see the same link conditions at the
      // same request cadence (per-inference miss shares are comparable); static ignores what it learns.
      await c.monitor.probeUplink(id).catch(() => undefined)
      const r =
        mode === 'static'
          ? await c.infer({
              agent: id,
              count: BATCH,
              latencyMs,
              uplinkKbps: est,
              plan: { exit: fixed.exit, deviceLayers: fixed.deviceLayers },
              learn: false
            })
          : await c.infer({ agent: id, count: BATCH, latencyMs })
      for (const row of r.rows)
        points.push({ t, shapedKbps: at, exit: row.exit, deviceLayers: row.deviceLayers, e2eMs: row.e2eMs, met: row.met, accuracy: accOf(row.exit) })
    }
  } finally {
    for (const tm of timers) clearTimeout(tm)
  }
  const misses = points.filter((p) => !p.met).length
  let changes = 0
  for (let i = 1; i < points.length; i++) if (points[i]!.exit !== points[i - 1]!.exit || points[i]!.deviceLayers !== points[i - 1]!.deviceLayers) changes++
  return {
    trace,
    mode,
    latencyMs,
    points,
    misses,
    missShare: points.length ? misses / points.length : 0,
    meanAccuracy: points.length ? points.reduce((a, p) => a + p.accuracy, 0) / points.length : 0,
    planChanges: changes
  }
}
