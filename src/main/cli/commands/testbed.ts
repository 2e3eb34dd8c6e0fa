/** `edgent testbed` and `edgent load-test`: the paper-reproduction testbed and the fleet load test. */
import { resolve } from 'node:path'
import { type Command, Option } from 'commander'
import { UserError } from '../../../shared/errors.js'
import { defaultModelDir } from '../../runtime/paths.js'
import { testbedCommand } from '../testbed.js'
import type { DriftOptions } from '../../testbed/drift.js'
import { type Io, ExitCode, latencyListAlias, nonNegativeInt, numberList, positive, positiveInt } from '../args.js'

export function registerTestbed(program: Command, io: Io): void {
  program
    .command('testbed')
    .description(
      'needs root: the device in a network namespace behind a tc-shaped link with a CPU quota, the console here; calibrate, sweep, and write a reproduction report with baselines'
    )
    .option('--bandwidths-kbps <list>', 'shaped link rates, comma-separated', numberList('--bandwidths-kbps'), [50, 100, 250, 500, 1000, 1500])
    .option('--latencies-ms <list>', 'latency requirements, comma-separated', numberList('--latencies-ms'), [10, 20, 50, 100, 1000])
    .addOption(latencyListAlias())
    .option('--cpu-quota <share>', 'CPU share of the device (0.15 ≈ 6.7× slower)', positive, 0.15)
    .addOption(
      new Option(
        '--cpu <mode>',
        'slowdown: each device segment takes 1/share × its median compute time here (a steadily slower CPU); cgroup: a CFS quota on the agent process (bursty: see README)'
      )
        .choices(['slowdown', 'cgroup'])
        .default('slowdown')
    )
    .option('--reps <n>', 'co-inferences per configuration and point (fewer: faster, noisier comparisons)', positiveInt, 30)
    .option('--no-traces', 'skip the dynamic-bandwidth traces (static against adaptive planning)')
    .option('--short', 'the CI variant: 3 bandwidths × 2 requirements, 3 reps, traces at 70 % length')
    .option(
      '--policies',
      "confidence-exit policies against static Edgent, side by side at every point on --frames labelled frames (the model's policies: edgent model policies)"
    )
    .option('--frames <n>', 'with --policies: labelled frames per run', positiveInt, 2000)
    .option('--percentile <p>', 'with --policies: plans hold the requirement at this percentile', positive, 95)
    .option('--out <dir>', 'report folder', 'testbed-report')
    .option('--model <dir>', 'model folder', defaultModelDir())
    .option('--log-level <level>', 'pino level (stderr)', 'warn')
    .action(
      async (raw: {
        policies?: boolean
        frames: number
        percentile: number
        bandwidthsKbps: number[]
        latenciesMs: number[]
        latencyMs?: number[]
        cpuQuota: number
        cpu: 'cgroup' | 'slowdown'
        reps: number
        short?: boolean
        traces: boolean
        out: string
        model: string
        logLevel: string
      }) => {
        const o = { ...raw, latencyMs: raw.latencyMs ?? raw.latenciesMs }
        if (o.cpuQuota > 1) throw new UserError(`--cpu-quota is a share of one CPU in (0, 1], got ${o.cpuQuota}`)
        if (o.policies) {
          if (!(o.percentile >= 50 && o.percentile <= 99.9)) throw new UserError(`--percentile must be in 50..99.9, got ${o.percentile}`)
          const { runPolicyComparison, writePolicyComparison, formatPolicyComparison } = await import('../../testbed/policies.js')
          const { pino } = await import('pino')
          // Ctrl-C stops the run between points, and everything is torn down.
          const abort = new AbortController()
          const onSignal = () => abort.abort()
          process.once('SIGINT', onSignal)
          process.once('SIGTERM', onSignal)
          const r = await runPolicyComparison({
            bandwidthsKbps: o.bandwidthsKbps,
            latenciesMs: o.latencyMs,
            cpuQuota: o.cpuQuota,
            cpu: o.cpu,
            frames: o.frames,
            percentile: o.percentile,
            modelDir: resolve(o.model),
            log: pino({ level: o.logLevel }, pino.destination(2)),
            signal: abort.signal,
            ...(io.progress ? { progress: io.progress } : {})
          }).finally(() => {
            process.off('SIGINT', onSignal)
            process.off('SIGTERM', onSignal)
          })
          const files = writePolicyComparison(r, resolve(o.out))
          io.out(`${formatPolicyComparison(r)}\n\nreport: ${files[1]}`)
          return
        }
        const opts = o.short ? { ...o, bandwidthsKbps: [100, 1000, 10000], latencyMs: [20, 100], reps: 3, traceScale: 0.7 } : o
        const r = await testbedCommand(opts, io.progress)
        io.out(r.text)
        if (r.failed.length) throw new ExitCode(1) // the report is written either way; the exit code says the checks failed
      }
    )
  program
    .command('drift')
    .description(
      "confidence exits under drift, in one run here: the model's frames, then shifted ones (lower contrast, noise) with fixed thresholds, then with audits tuning them; disagreement with the final exit per window"
    )
    .option('--model <dir>', 'model folder (with measured policies: edgent model policies)', defaultModelDir())
    .option('--brightness <delta>', 'the shifted frames: grey levels added to every pixel (an over-exposed camera)', (v) => Number(v), 60)
    .option('--contrast <k>', 'the shifted frames: 128 + k × (pixel − 128), before the brightness', positive, 1)
    .option('--noise <sigma>', 'the shifted frames: Gaussian noise, grey levels', (v) => nonNegativeInt(v), 0)
    .option('--frames <n>', 'frames per phase', positiveInt, 2000)
    .option('--window <n>', 'frames per reported window', positiveInt, 200)
    .option('--audit-share <share>', 'share of frames audited (run to the final exit)', positive, 0.2)
    .option('--bound <share>', 'the disagreement the audits keep the thresholds within', positive, 0.01)
    .option('--json <file>', 'also write the result as JSON')
    .option('--log-level <level>', 'pino level (stderr)', 'warn')
    .action(async (o: Omit<DriftOptions, 'log' | 'progress'> & { json?: string; logLevel: string }) => {
      if (o.auditShare > 1) throw new UserError(`--audit-share is a share in (0, 1], got ${o.auditShare}`)
      if (!Number.isFinite(o.brightness)) throw new UserError('--brightness must be a number of grey levels')
      if (o.bound >= 1) throw new UserError(`--bound is a share in (0, 1), got ${o.bound}`)
      const { runDrift, formatDrift } = await import('../../testbed/drift.js')
      const { pino } = await import('pino')
      const r = await runDrift({ ...o, model: resolve(o.model), log: pino({ level: o.logLevel }, pino.destination(2)), progress: (line) => io.err(line) })
      if (o.json) {
        const { writeFileSync } = await import('node:fs')
        writeFileSync(resolve(o.json), `${JSON.stringify(r, null, 2)}\n`)
      }
      io.out(formatDrift(r))
    })
  program
    .command('load-test')
    .description(
      'N emulated devices (agent processes) co-inferring at once against one console, with the embedded broker and with mosquitto; checks every result (0 lost, duplicated or mismatched) and compares load-blind with load-aware planning'
    )
    .option('--agents <n>', 'devices at once (1–64)', positiveInt, 20)
    .addOption(new Option('--broker <list>', 'brokers, comma-separated: embedded, mosquitto').default('embedded,mosquitto'))
    .option('--count <n>', 'co-inferences per device per phase', positiveInt, 50)
    .option('--latency-ms <ms>', 'the latency requirement', positive, 10)
    .option('--uplink-kbps <kbps>', 'the bandwidth plans are made for (the devices share loopback)', positive, 100_000)
    .option('--cpu-quota <share>', "each device's CPU share (0.25 ≈ 4× slower)", positive, 0.25)
    .option('--compare <rounds>', 'rounds of load-blind then load-aware planning (embedded broker); 0: load-aware only', (v) => nonNegativeInt(v), 2)
    .option('--mosquitto <path>', 'the mosquitto binary', '/usr/sbin/mosquitto')
    .option('--json <file>', 'also write the report as JSON')
    .option('--model <dir>', 'model folder', defaultModelDir())
    .option('--log-level <level>', 'pino level (stderr)', 'warn')
    .action(
      async (o: {
        agents: number
        broker: string
        count: number
        latencyMs: number
        uplinkKbps: number
        cpuQuota: number
        compare: number
        mosquitto: string
        json?: string
        model: string
        logLevel: string
      }) => {
        const brokers = o.broker.split(',').map((b) => b.trim())
        const bad = brokers.filter((b) => b !== 'embedded' && b !== 'mosquitto')
        if (bad.length || !brokers.length) throw new UserError(`--broker takes embedded, mosquitto or both (comma-separated), got "${o.broker}"`)
        if (o.cpuQuota > 1) throw new UserError(`--cpu-quota is a share of one CPU in (0, 1], got ${o.cpuQuota}`)
        const { runLoadTest, formatLoadReport } = await import('../../testbed/load.js')
        const { pino } = await import('pino')
        const r = await runLoadTest({
          agents: o.agents,
          brokers: brokers as ('embedded' | 'mosquitto')[],
          count: o.count,
          latencyMs: o.latencyMs,
          uplinkKbps: o.uplinkKbps,
          cpuQuota: o.cpuQuota,
          compareRounds: o.compare,
          modelDir: resolve(o.model),
          mosquitto: o.mosquitto,
          log: pino({ level: o.logLevel }, pino.destination(2)),
          progress: (line) => io.err(line)
        })
        if (o.json) {
          const { writeFileSync } = await import('node:fs')
          writeFileSync(resolve(o.json), `${JSON.stringify(r, null, 2)}\n`)
        }
        io.out(formatLoadReport(r))
        if (!r.clean) throw new ExitCode(1)
      }
    )
}
