/**
 * `edgent testbed --policies`: confidence-exit policies against static Edgent, side by side in one run
 * (issue 31). The testbed's device (network namespace, tc-shaped link, emulated CPU) co-infers the
 * same labelled frames at every bandwidth × requirement twice: with the planner restricted to static
 * exits (the paper's Edgent, with codecs) and with the model's measured policies offered. Each run
 * reports mean, median and p95 latency, the share within the requirement, accuracy on the frames, and
 * the plan's predicted mean and percentile against them. The frames are the model's shipped samples;
 * its policies must have been chosen on other frames (`edgent model policies --skip`).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { mean, median, quantileSorted } from 'simple-statistics'
import { UserError, errorMessage } from '../../shared/errors.js'
import type { InferSummary } from '../../shared/contracts/console-api.js'
import { openTestbed } from './testbed.js'

export interface PolicyComparisonOptions {
  bandwidthsKbps: number[]
  latenciesMs: number[]
  cpuQuota: number
  cpu: 'cgroup' | 'slowdown'
  /** Labelled frames per run (the model's samples, from the first). */
  frames: number
  /** Plans hold the requirement at this percentile (tail-aware: a policy's mixture quantile). */
  percentile: number
  modelDir: string
  log: Logger
  signal?: AbortSignal
  progress?: (done: number, total: number, what: string) => void
}

export interface PolicyRun {
  linkKbps: number
  latencyMs: number
  strategy: 'static' | 'policies'
  /** The plan: its policy (null: a static exit), exit (a policy's: the final one), cut and codec. */
  policy: number | null
  exit: number
  deviceLayers: number
  codec: string
  feasible: boolean
  predictedMeanMs: number
  predictedPercentileMs: number | null
  meanMs: number
  p50Ms: number
  p95Ms: number
  /** Share of the frames within the requirement. */
  metShare: number
  /** Top-1 on the frames. */
  accuracy: number | null
  completed: number
  lost: number
  /** Share of frames that left at each exit (a static plan: all at its exit), and on the device. */
  exitShares: Record<string, number>
  deviceShare: number
  /** A policy's mixture, predicted against measured: per exit and side, the share of frames and their mean latency. */
  byExit: { exit: number; side: 'device' | 'edge'; predictedShare: number; share: number; predictedMs: number; meanMs: number | null }[]
  runId: string
}

export interface PolicyComparison {
  startedAt: string
  finishedAt: string
  options: Omit<PolicyComparisonOptions, 'log' | 'signal' | 'progress'>
  emulation: Record<string, unknown>
  estimates: { linkKbps: number; uplinkEstimateKbps: number }[]
  runs: PolicyRun[]
  /** Runs that did not complete, and why. */
  failures: { linkKbps: number; latencyMs: number; strategy: 'static' | 'policies'; error: string }[]
  /** Per point where the planner chose a policy: static mean over the policy's, and the accuracy cost in points. */
  gains: { linkKbps: number; latencyMs: number; speedup: number; accuracyDropPts: number | null }[]
  checks: {
    points: number
    policyPoints: number
    /** Policy points with a mean at least 1.5× lower at ≤ 0.5 points lower accuracy. */
    paying: number
    /** Points where some run met the requirement at its percentile, and where the policies' run did. */
    feasiblePoints: number
    policiesMetWhereFeasible: number
    /** |predicted − measured| / measured of the policies' plans: mean and percentile. */
    meanErrors: number[]
    percentileErrors: number[]
  }
}

const q = (sorted: readonly number[], p: number): number => (sorted.length ? quantileSorted(sorted as number[], p) : Number.NaN)

export async function runPolicyComparison(o: PolicyComparisonOptions): Promise<PolicyComparison> {
  if (!Number.isInteger(o.frames) || o.frames < 10) throw new UserError(`--frames must be an integer ≥ 10, got ${o.frames}`)
  const startedAt = new Date().toISOString()
  const tb = await openTestbed(o, 'edgent-testbed-policies-')
  const { core: c, id, check } = tb
  try {
    const m = c.model
    if (!m.confidence?.policies.length) throw new UserError(`model ${m.id} has no measured policies: run edgent model policies on it first`)
    o.progress?.(0, 1, 'calibrating (every layer on the device and the edge)')
    await c.sources.deviceTable(id)
    /** Up to 3 minutes for a device that dropped off a saturated link to come back. */
    const waitOnline = async () => {
      for (let i = 0; i < 1800 && c.devices().find((d) => d.id === id)?.state !== 'online'; i++) await new Promise((r) => setTimeout(r, 100))
    }
    const runs: PolicyRun[] = []
    const failures: PolicyComparison['failures'] = []
    const estimates: PolicyComparison['estimates'] = []
    const total = o.bandwidthsKbps.length * o.latenciesMs.length * 2
    let done = 0
    for (const kbps of o.bandwidthsKbps) {
      check()
      let est: number
      try {
        est = await tb.setLink(kbps)
      } catch (err) {
        // the device unreachable at this rate: its points are reported as failed, the sweep goes on
        for (const latencyMs of o.latenciesMs)
          for (const strategy of ['static', 'policies'] as const)
            failures.push({ linkKbps: kbps, latencyMs, strategy, error: `probing the link: ${errorMessage(err)}` })
        done += 2 * o.latenciesMs.length
        await waitOnline()
        continue
      }
      estimates.push({ linkKbps: kbps, uplinkEstimateKbps: est })
      for (const latencyMs of o.latenciesMs) {
        for (const strategy of ['static', 'policies'] as const) {
          check()
          o.progress?.(done, total, `${kbps} kbps, ${latencyMs} ms, ${strategy}`)
          c.sources.setPolicyOptions(id, strategy === 'static' ? null : {})
          await c.sources.deviceTable(id)
          // Neither run teaches the online correction: both are planned on the same calibration.
          try {
            const { summary, rows } = await c.infer({ agent: id, count: o.frames, latencyMs, uplinkKbps: est, percentile: o.percentile, learn: false })
            runs.push(toRun(kbps, latencyMs, strategy, summary, rows))
          } catch (err) {
            // a run that failed (the device dropped off a saturated link, say) is reported, and the sweep goes on
            o.log.warn({ kbps, latencyMs, strategy, err: errorMessage(err) }, 'testbed run failed')
            failures.push({ linkKbps: kbps, latencyMs, strategy, error: errorMessage(err) })
            await waitOnline()
          }
          done++
        }
      }
    }
    return { startedAt, finishedAt: new Date().toISOString(), options: strip(o), emulation: tb.agent.emulation, estimates, runs, failures, ...judge(runs, o) }
  } finally {
    await tb.close()
  }
}

function strip(o: PolicyComparisonOptions): PolicyComparison['options'] {
  const { log: _l, signal: _s, progress: _p, ...rest } = o
  return rest
}

function toRun(
  linkKbps: number,
  latencyMs: number,
  strategy: 'static' | 'policies',
  s: InferSummary,
  rows: readonly { e2eMs: number; exit: number; side?: 'device' | 'edge'; met: boolean }[]
): PolicyRun {
  const e2e = rows.map((r) => r.e2eMs).sort((a, b) => a - b)
  const exitShares: Record<string, number> = {}
  for (const r of rows) exitShares[r.exit] = (exitShares[r.exit] ?? 0) + 1 / rows.length
  const onDevice = rows.filter((r) => (r.side ? r.side === 'device' : s.plan.deviceLayers >= s.plan.layers)).length
  return {
    linkKbps,
    latencyMs,
    strategy,
    policy: s.plan.policy ?? null,
    exit: s.plan.exit,
    deviceLayers: s.plan.deviceLayers,
    codec: s.plan.codec ?? 'f32',
    feasible: s.plan.feasible,
    predictedMeanMs: s.plan.predictedMs,
    predictedPercentileMs: s.plan.predictedPercentileMs ?? null,
    meanMs: e2e.length ? mean(e2e) : Number.NaN,
    p50Ms: q(e2e, 0.5),
    p95Ms: q(e2e, 0.95),
    metShare: s.metShare,
    accuracy: s.accuracy,
    completed: s.completed,
    lost: s.lost,
    exitShares,
    deviceShare: rows.length ? onDevice / rows.length : 0,
    byExit: (s.plan.mixture ?? []).map((x) => {
      const mine = rows.filter((r) => r.exit === x.exit && r.side === x.side)
      return {
        exit: x.exit,
        side: x.side,
        predictedShare: x.share,
        share: rows.length ? mine.length / rows.length : 0,
        predictedMs: x.ms,
        meanMs: mine.length ? mean(mine.map((r) => r.e2eMs)) : null
      }
    }),
    runId: s.runId
  }
}

/** The acceptance figures of issue 31 from the runs. */
function judge(runs: readonly PolicyRun[], o: PolicyComparisonOptions): Pick<PolicyComparison, 'gains' | 'checks'> {
  const gains: PolicyComparison['gains'] = []
  let feasiblePoints = 0
  let policiesMet = 0
  const meanErrors: number[] = []
  const percentileErrors: number[] = []
  let points = 0
  for (const kbps of o.bandwidthsKbps) {
    for (const latencyMs of o.latenciesMs) {
      const st = runs.find((r) => r.linkKbps === kbps && r.latencyMs === latencyMs && r.strategy === 'static')
      const po = runs.find((r) => r.linkKbps === kbps && r.latencyMs === latencyMs && r.strategy === 'policies')
      if (!st || !po) continue
      points++
      const atPercentile = (r: PolicyRun) => r.metShare >= o.percentile / 100
      if (atPercentile(st) || atPercentile(po)) {
        feasiblePoints++
        if (atPercentile(po)) policiesMet++
      }
      if (po.policy === null) continue
      gains.push({
        linkKbps: kbps,
        latencyMs,
        speedup: st.meanMs / po.meanMs,
        accuracyDropPts: st.accuracy !== null && po.accuracy !== null ? 100 * (st.accuracy - po.accuracy) : null
      })
      meanErrors.push(Math.abs(po.predictedMeanMs - po.meanMs) / po.meanMs)
      if (po.predictedPercentileMs !== null) percentileErrors.push(Math.abs(po.predictedPercentileMs - po.p95Ms) / po.p95Ms)
    }
  }
  const paying = gains.filter((g) => g.speedup >= 1.5 && g.accuracyDropPts !== null && g.accuracyDropPts <= 0.5).length
  return {
    gains,
    checks: { points, policyPoints: gains.length, paying, feasiblePoints, policiesMetWhereFeasible: policiesMet, meanErrors, percentileErrors }
  }
}

const f1 = (v: number | null) => (v === null || !Number.isFinite(v) ? '–' : v.toFixed(1))
const pct = (v: number | null) => (v === null ? '–' : `${(v * 100).toFixed(1)} %`)

/** The report: a table per point (static against policies), the gains, and the prediction errors. */
export function formatPolicyComparison(r: PolicyComparison): string {
  const lines = [
    `# Confidence-exit policies against static Edgent (testbed)`,
    '',
    `${r.options.frames} labelled frames per run (the model's samples), requirement at p${r.options.percentile}, device ${JSON.stringify(r.emulation['cpu'] ?? r.emulation)}, link: tc in a network namespace. ${r.startedAt} – ${r.finishedAt}.`,
    '',
    '| link kbps | req ms | plan | predicted mean / p | mean | p50 | p95 | within req | accuracy | left on device | exits (share) |',
    '|---|---|---|---|---|---|---|---|---|---|---|'
  ]
  for (const x of r.runs) {
    const plan = `${x.strategy === 'static' ? 'static' : x.policy === null ? 'policies → static' : `policy ${x.policy}`}: ${x.policy === null ? `exit ${x.exit}` : `to exit ${x.exit}`}, cut ${x.deviceLayers}${x.codec !== 'f32' ? ` ${x.codec}` : ''}${x.feasible ? '' : ' (infeasible)'}`
    const exits = Object.entries(x.exitShares)
      .map(([e, s]) => `${e}: ${(s * 100).toFixed(0)} %`)
      .join(', ')
    lines.push(
      `| ${x.linkKbps} | ${x.latencyMs} | ${plan} | ${f1(x.predictedMeanMs)} / ${f1(x.predictedPercentileMs)} | ${f1(x.meanMs)} | ${f1(x.p50Ms)} | ${f1(x.p95Ms)} | ${pct(x.metShare)} | ${pct(x.accuracy)} | ${pct(x.deviceShare)} | ${exits} |`
    )
  }
  for (const f of r.failures) lines.push(`| ${f.linkKbps} | ${f.latencyMs} | ${f.strategy}: failed — ${f.error} | | | | | | | | |`)
  const mixtures = r.runs.filter((x) => x.byExit.length)
  if (mixtures.length) {
    lines.push('', "Policies' mixtures, predicted against measured (share of frames, mean ms, per exit and side):", '')
    for (const x of mixtures)
      lines.push(
        `- ${x.linkKbps} kbps, ${x.latencyMs} ms: ${x.byExit
          .map((b) => `exit ${b.exit} ${b.side} ${pct(b.predictedShare)} / ${pct(b.share)}, ${f1(b.predictedMs)} / ${f1(b.meanMs)} ms`)
          .join('; ')}`
      )
  }
  const c = r.checks
  const spread = (xs: number[]) => (xs.length ? `median ${pct(median(xs))}, max ${pct(Math.max(...xs))} (${xs.length} points)` : '–')
  lines.push(
    '',
    `Policies chosen at ${c.policyPoints} of ${c.points} points; at ${c.paying} of them the mean latency was ≥ 1.5× lower than static Edgent's at ≤ 0.5 points lower accuracy.`,
    ...r.gains.map(
      (g) =>
        `- ${g.linkKbps} kbps, ${g.latencyMs} ms: ${g.speedup.toFixed(2)}× lower mean, accuracy ${g.accuracyDropPts === null ? '–' : `${g.accuracyDropPts >= 0 ? '−' : '+'}${Math.abs(g.accuracyDropPts).toFixed(2)} points`}`
    ),
    `Requirement met at p${r.options.percentile} by the policies' plans at ${c.policiesMetWhereFeasible} of ${c.feasiblePoints} points where either run met it.`,
    `Prediction of the policies' plans: mean ${spread(c.meanErrors)}; p${r.options.percentile} ${spread(c.percentileErrors)}.`
  )
  return lines.join('\n')
}

export function writePolicyComparison(r: PolicyComparison, dir: string): string[] {
  mkdirSync(dir, { recursive: true })
  const files = [join(dir, 'results.json'), join(dir, 'report.md')]
  writeFileSync(files[0]!, `${JSON.stringify(r, null, 2)}\n`)
  writeFileSync(files[1]!, `${formatPolicyComparison(r)}\n`)
  return files
}
