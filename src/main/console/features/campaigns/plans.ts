/**
 * Campaign kind `plans` (scoring: calibration/plans.ts): every (exit, deviceLayers) of the served
 * model co-infers `count` times, pinned, at the fixed uplink, without teaching the online correction;
 * each point compares the raw prediction with the measured medians. Every latency source that could
 * plan the device is scored on the same points, and the source profile then predicts with its
 * regressor with the most end-to-end predictions within ±10 % (unless the user chose one). The uplink goes back to what it
 * was, whatever happens.
 */
import type { InferRow, PlanParts, PlansSummary } from '../../../../shared/contracts/console-api.js'
import { errorMessage } from '../../../../shared/errors.js'
import { linkOf } from '../../../calibration/link-fit.js'
import {
  PLANS_PASSES,
  PLANS_WARMUP,
  passParts,
  planErrors,
  planPoint,
  plansSummary,
  retestErrors,
  scorePredictor,
  speedDrift
} from '../../../calibration/plans.js'
import { readHealth } from '../../../runtime/health.js'
import type { CampaignRun } from './run.js'

export async function runPlans(run: CampaignRun, count: number, uplinkKbps: number): Promise<void> {
  const { store, sources, fleet } = run.ctx
  const campaigns = store.campaigns
  const { id, agentId } = run
  let summary: PlansSummary | undefined
  let restore: number | null = null
  try {
    const { table, source } = await run.rawCosts()
    const s = plansSummary(uplinkKbps, count, source, table)
    summary = s
    // Every (exit, deviceLayers), sent as f32 (the segments' predictions are what a plans campaign
    // checks; a codec changes only the bytes on the link). Plans that send more than the console
    // accepts cannot run: listed, not measured.
    const plans = table.exits.flat().filter((c) => c.codec === 'f32')
    const candidates = plans.filter((c) => c.sendable)
    s.unsendable = plans.filter((c) => !c.sendable).map((c) => ({ exit: c.exit, deviceLayers: c.deviceLayers, bytes: c.uploadBytes }))
    // The probe plans of the source profile's link stage, with what it measured (none when it had none).
    const sourceProfile = source.kind === 'profile' && source.profileId ? store.profiles.get(source.profileId) : undefined
    const probes = sourceProfile ? (linkOf(sourceProfile.profile)?.probes ?? []) : []
    restore = (await run.setUplink(uplinkKbps)).previousKbps
    const got = new Map<string, { runIds: string[]; rows: InferRow[]; passes: PlanParts[] }>()
    const keyOf = (c: { exit: number; deviceLayers: number }) => `${c.exit}/${c.deviceLayers}`
    for (let pass = 0; pass < PLANS_PASSES; pass++) {
      run.pass = { current: pass + 1, of: PLANS_PASSES }
      for (const [i, c] of candidates.entries()) {
        run.check()
        const { summary: r, rows } = await run.infer({
          count: count + PLANS_WARMUP,
          latencyMs: 3_600_000,
          uplinkKbps,
          plan: { exit: c.exit, deviceLayers: c.deviceLayers },
          learn: false
        })
        // The first inferences of a plan run colder (a fresh session, caches left by the other plans): stored with the run, left out of its medians.
        const measured = rows.slice(PLANS_WARMUP)
        if (!measured.length) throw new Error(`no co-inference completed for exit ${c.exit} with ${c.deviceLayers} device layers (${r.lost} lost)`)
        const g = got.get(keyOf(c)) ?? { runIds: [], rows: [], passes: [] }
        g.runIds.push(r.runId)
        g.rows.push(...measured)
        g.passes.push(passParts(measured))
        got.set(keyOf(c), g)
        campaigns.saveProgress(id, (pass * candidates.length + i + 1) / (PLANS_PASSES * candidates.length))
        if (i % 8 === 7) run.progress()
      }
      // After each pass, every plan's medians over the passes so far.
      s.points = candidates.map((c) => planPoint(table, c.exit, c.deviceLayers, uplinkKbps, got.get(keyOf(c))!.runIds, got.get(keyOf(c))!.rows))
      s.errors = planErrors(s.points)
      if (pass > 0) s.retest = retestErrors(candidates.map((c) => ({ deviceLayers: c.deviceLayers, layers: c.layers, passes: got.get(keyOf(c))!.passes })))
      if (probes.length) {
        const own = s.points.filter((x) => !probes.some((q) => q.exit === x.exit && q.deviceLayers === x.deviceLayers))
        s.errorsWithoutProbes = { ...planErrors(own), probes: probes.map((q) => ({ exit: q.exit, deviceLayers: q.deviceLayers })) }
        s.drift = speedDrift(s.points, probes)
      }
      campaigns.addHealth(id, pass, { device: fleet.health(agentId), edge: await readHealth() })
      campaigns.saveProgress(id, (pass + 1) / PLANS_PASSES, s)
      run.progress()
    }
    const scored = sources.predictorTables(agentId).map((p) => ({ ...p, errors: scorePredictor(p.table, s.points, uplinkKbps) }))
    if (source.kind === 'profile' && source.profileId) {
      // The measurements stand whatever happens to the choice (a profile removed meanwhile, say).
      try {
        s.choice = sources.chooseRegressor(
          agentId,
          source.profileId,
          scored.map((x) => ({ profileId: x.profileId, regressor: x.regressor, e2eWithin10: x.errors.e2e.within10, e2eMedian: x.errors.e2e.median })),
          id
        )
      } catch (err) {
        s.choice = { regressor: 'linear', changed: false, why: `no choice made: ${errorMessage(err)}` }
      }
    }
    // What the device plans with now (after the choice): that profile, with its regressor.
    const now = store.profiles.current(agentId)
    const nowRegressor = now ? now.profile.regressor : null
    s.predictors = scored.map((x) => ({
      name: x.name,
      errors: x.errors,
      ...(x.gridHeldOut ? { gridHeldOut: x.gridHeldOut } : {}),
      ...(now && x.profileId === now.id && x.regressor === nowRegressor ? { current: true } : {})
    }))
    campaigns.finish(id, 'done', null, s)
  } catch (err) {
    run.stopped(err, summary)
  } finally {
    await run.release(restore)
  }
}
