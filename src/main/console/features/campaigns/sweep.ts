/**
 * Campaign kind `sweep`: for every bandwidth, the device's emulated uplink is set to it, and for every
 * requirement a batch of co-inferences is planned at that bandwidth; each point records the plan, its
 * prediction and the measured end-to-end latencies (stored as the point's run). The uplink goes back
 * to what it was, whatever happens. Progress after each point; a cancel or a failure keeps the points
 * so far.
 */
import { median } from 'simple-statistics'
import type { SweepPoint, SweepSummary } from '../../../../shared/contracts/console-api.js'
import { readHealth } from '../../../runtime/health.js'
import type { CampaignRun } from './run.js'

/**
 * The paper's bandwidth range (50 kbps–1.5 Mbps) plus two fast links where the edge wins with this
 * model's 3 kB input, and requirements around the shipped model's latencies (2–20 ms here; the
 * paper's Pi took hundreds of ms for its AlexNet, hence its 100–1000 ms requirements).
 */
export const SWEEP_DEFAULTS = { bandwidthsKbps: [50, 100, 250, 500, 1000, 1500, 10_000, 100_000], latenciesMs: [5, 10, 20, 50, 100] } as const

export async function runSweep(run: CampaignRun, count: number, grid: { bandwidthsKbps: number[]; latenciesMs: number[] }): Promise<void> {
  const campaigns = run.ctx.store.campaigns
  const { id, agentId } = run
  const summary: SweepSummary = { ...grid, inferencesPerPoint: count, points: [], medianRelError: null }
  const errors: number[] = []
  const total = grid.bandwidthsKbps.length * grid.latenciesMs.length
  let restore: number | null = null
  try {
    for (const kbps of grid.bandwidthsKbps) {
      run.check()
      const set = await run.setUplink(kbps)
      if (restore === null) restore = set.previousKbps
      for (const latencyMs of grid.latenciesMs) {
        run.check()
        const { summary: s, rows } = await run.infer({ count, latencyMs, uplinkKbps: kbps })
        if (!rows.length) throw new Error(`no co-inference completed at ${kbps} kbps, ${latencyMs} ms (${s.lost} lost)`)
        const rel = rows.map((r) => Math.abs(r.predictedMs - r.e2eMs) / r.e2eMs)
        errors.push(...rel)
        const point: SweepPoint = {
          uplinkKbps: kbps,
          latencyMs,
          runId: s.runId,
          exit: s.plan.exit,
          deviceLayers: s.plan.deviceLayers,
          layers: s.plan.layers,
          feasible: s.plan.feasible,
          predictedMs: median(rows.map((r) => r.predictedMs)),
          measuredMs: median(rows.map((r) => r.e2eMs)),
          relError: median(rel),
          metShare: s.metShare,
          accuracy: s.accuracy,
          completed: rows.length
        }
        summary.points.push(point)
        summary.medianRelError = median(errors)
        campaigns.addHealth(id, summary.points.length - 1, { device: run.ctx.fleet.health(agentId), edge: await readHealth() })
        campaigns.saveProgress(id, summary.points.length / total, summary)
        run.progress()
      }
    }
    campaigns.finish(id, 'done', null, summary)
  } catch (err) {
    run.stopped(err, summary)
  } finally {
    await run.release(restore)
  }
}
