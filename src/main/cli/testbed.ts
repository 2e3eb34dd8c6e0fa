/** `edgent testbed` (`npm run testbed`): the paper's evaluation on this machine, torn down on any exit. */
import { join, resolve } from 'node:path'
import { pino } from 'pino'
import { writeReport } from '../testbed/report.js'
import { failedChecks } from '../testbed/checks.js'
import { defaultTraces, runTestbed, type TestbedResult } from '../testbed/testbed.js'
import type { Progress } from './model.js'

export interface TestbedCliOptions {
  bandwidthsKbps: number[]
  latencyMs: number[]
  cpuQuota: number
  cpu: 'cgroup' | 'slowdown'
  reps: number
  out: string
  model: string
  logLevel: string
  traces: boolean
  /** Trace durations × this (the short variant runs them shorter). */
  traceScale?: number
}

/** The report's summary, the result, and the checks that did not hold (the command then exits 1). */
export async function testbedCommand(o: TestbedCliOptions, progress?: Progress): Promise<{ text: string; result: TestbedResult; failed: string[] }> {
  const abort = new AbortController()
  const onSignal = () => abort.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const result = await runTestbed({
      bandwidthsKbps: o.bandwidthsKbps,
      latenciesMs: o.latencyMs,
      cpuQuota: o.cpuQuota,
      cpu: o.cpu,
      reps: o.reps,
      modelDir: o.model,
      ...(o.traces ? { traces: defaultTraces(o.traceScale ?? 1), traceLatencyMs: 12 } : {}),
      log: pino({ level: o.logLevel }, pino.destination(2)),
      signal: abort.signal,
      ...(progress ? { progress: (d: number, t: number, what: string) => progress(d, t, what) } : {})
    })
    const dir = resolve(o.out)
    const files = writeReport(result, dir)
    const c = result.checks
    const failed = failedChecks(c)
    const text = [
      `testbed: ${o.bandwidthsKbps.length} bandwidths × ${o.latencyMs.length} requirements, ${result.results.length} measured configurations, ${Math.round((Date.parse(result.finishedAt) - Date.parse(result.startedAt)) / 1000)} s`,
      `  Edgent met the requirement at ${c.edgentMetWhereFeasible}/${c.feasiblePoints} points where some configuration did`,
      `  within 10 % of the best configuration of its exit at ${c.withinTenPercent}/${c.points} points`,
      `  predicted vs measured end-to-end latency: median absolute error ${(c.medianAbsError * 100).toFixed(1)} %`,
      ...result.traces.map(
        (t) =>
          `  trace ${t.trace.name}, ${t.mode}: ${t.misses}/${t.points.length} requirement misses (${(t.missShare * 100).toFixed(1)} %), mean exit accuracy ${(t.meanAccuracy * 100).toFixed(1)} %, ${t.planChanges} plan changes`
      ),
      `report: ${join(dir, 'report.md')} (${files.length} files)`,
      failed.length ? `checks did not hold (exit 1):\n${failed.map((f) => `  - ${f}`).join('\n')}` : 'checks held'
    ].join('\n')
    return { text, result, failed }
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}
