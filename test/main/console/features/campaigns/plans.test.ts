/**
 * Kind `plans`: every (exit, deviceLayers) of the served model co-infers, pinned, at a fixed uplink on
 * a real agent; predictions without online correction against the measured medians.
 */
import { median } from 'simple-statistics'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LINK_PASSES, LINK_PROBE_REPS, probePlans } from '../../../../../src/main/calibration/link-fit.js'
import { PLANS_PASSES, PLANS_WARMUP, errorStats, passParts, planErrors, retestErrors } from '../../../../../src/main/calibration/plans.js'
import { FEATURES, REGRESSOR_TEXT, evaluateRegression, featureValues, parseProfile, regressionKeyOf } from '../../../../../src/shared/algorithms/latency.js'
import { fitForest } from '../../../../../src/main/calibration/forest-fit.js'
import { mulberry32 } from '../../../../fixtures/prng.js'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { exportCalibration, formatPlans } from '../../../../../src/main/cli/campaign.js'
import { main } from '../../../../../src/main/cli/index.js'
import type { EdgentConsole } from '../../../../../src/main/console/console.js'
import { exitPath } from '../../../../../src/shared/contracts/manifest.js'
import { latencyOf } from '../../../../../src/shared/algorithms/planner.js'
import { campaignFinished, deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../../harness.js'

describe('plans campaign', () => {
  let core: EdgentConsole
  let agent: AgentProc | null = null
  let plain: AgentProc | null = null

  beforeAll(async () => {
    core = await startConsole()
    const broker = `mqtt://127.0.0.1:${core.mqttPort}`
    agent = spawnAgent(broker, 'pi-plans', core.pair('pi-plans').token, ['--uplink-kbps', '1000', '--slowdown', '4'])
    plain = spawnAgent(broker, 'pi-nolink', core.pair('pi-nolink').token)
    await waitFor('agents online', () => deviceState(core, 'pi-plans') === 'online' && deviceState(core, 'pi-nolink') === 'online')
  })
  afterAll(async () => {
    await stopAgent(agent)
    await stopAgent(plain)
    await core?.stop()
  })

  const finished = (id: string) => campaignFinished(core, id)

  it('co-infers every plan at the fixed uplink, compares the raw predictions with the measured medians, and teaches nothing', async () => {
    const m = core.model
    const candidates = m.exits.reduce((a, e) => a + exitPath(m, e.exit).length + 1, 0)
    const id = core.startCampaign('pi-plans', 'plans', 2, { uplinkKbps: 50_000 })
    const s = await finished(id)
    expect(s.status, s.error ?? '').toBe('done')
    const p = s.plans!
    expect(s.sweep).toBeNull()
    expect(p).toMatchObject({
      uplinkKbps: 50_000,
      inferencesPerPlan: 2 * PLANS_PASSES,
      passes: PLANS_PASSES,
      warmupPerPass: PLANS_WARMUP,
      source: { kind: 'measured', profileId: null }
    })
    // Every (exit, deviceLayers), in order, each with one stored run per pass.
    expect(p.points.map((x) => `${x.exit}/${x.deviceLayers}`)).toEqual(
      m.exits.flatMap((e) =>
        exitPath(m, e.exit)
          .map((_, i) => `${e.exit}/${i}`)
          .concat(`${e.exit}/${exitPath(m, e.exit).length}`)
      )
    )
    expect(p.points).toHaveLength(candidates)
    expect(p.points.every((x) => x.completed === 2 * PLANS_PASSES && x.runIds.length === PLANS_PASSES)).toBe(true)
    expect(core.store.runs.countForCampaign(id)).toBe(candidates * PLANS_PASSES)
    // The predictions are the raw cost table's (no online correction), at the campaign's uplink.
    const raw = core.planning.costTable('pi-plans', true)
    for (const x of p.points) {
      const c = raw.exits.find((g) => g[0]!.exit === x.exit)![x.deviceLayers]!
      expect(x.predicted.deviceMs).toBeCloseTo(c.deviceMs, 9)
      expect(x.predicted.edgeMs).toBeCloseTo(c.edgeMs, 9)
      expect(x.predicted.e2eMs).toBeCloseTo(latencyOf(c, { uplinkKbps: 50_000, latencyMs: 1 }), 9)
    }
    // The measured figures are the medians of the stored co-inferences of each plan's run.
    const stored = core.store.runs.inferences('pi-plans', 100_000, undefined, 'campaign')
    for (const x of [p.points[0]!, p.points.at(-1)!, p.points[Math.floor(candidates / 2)]!]) {
      // Each pass's warm-up inferences are stored with its run, and left out of the plan's medians.
      const runs = x.runIds.map((runId) => stored.filter((r) => r.runId === runId))
      expect(runs.map((r) => r.length)).toEqual(Array(PLANS_PASSES).fill(2 + PLANS_WARMUP))
      const mine = runs.flat()
      expect(mine.every((r) => r.exit === x.exit && r.deviceLayers === x.deviceLayers)).toBe(true)
      const measured = runs.flatMap((r) => r.slice(PLANS_WARMUP))
      expect(x.measured.e2eMs).toBeCloseTo(median(measured.map((r) => r.e2eMs!)), 9)
      expect(x.measured.edgeMs).toBeCloseTo(median(measured.map((r) => r.edgeMs)), 9)
    }
    // The noise ceiling: each plan's pass medians (from its stored runs) scored against its later passes'.
    const inferRows = (runId: string) =>
      stored
        .filter((r) => r.runId === runId)
        .slice(PLANS_WARMUP)
        .map((r) => ({ deviceMs: r.deviceMs, edgeMs: r.edgeMs, e2eMs: r.e2eMs! }))
    const retest = retestErrors(
      p.points.map((x) => ({ deviceLayers: x.deviceLayers, layers: x.layers, passes: x.runIds.map((id) => passParts(inferRows(id))) }))
    )
    expect(p.retest!.e2e.n).toBe(candidates * ((PLANS_PASSES * (PLANS_PASSES - 1)) / 2))
    for (const side of ['device', 'edge', 'e2e'] as const) {
      expect(p.retest![side].within10).toBeCloseTo(retest[side].within10!, 9)
      expect(p.retest![side].median).toBeCloseTo(retest[side].median!, 9)
    }
    // Device-only plans run nothing on the edge and edge-only ones nothing on the device.
    for (const x of p.points) {
      if (x.deviceLayers === 0) expect(x.measured.deviceMs).toBe(0)
      if (x.deviceLayers === x.layers) expect(x.measured.edgeMs).toBe(0)
    }
    // The errors: device segments of plans with device layers, edge segments of plans with edge layers.
    expect(p.errors).toEqual(planErrors(p.points))
    expect(p.errors.device.n).toBe(candidates - m.exits.length)
    expect(p.errors.edge.n).toBe(candidates - m.exits.length)
    expect(p.errors.e2e.n).toBe(candidates)
    expect(p.errors.e2e.median).toBeGreaterThan(0)
    // Every source that could plan the device, scored on the same plans; the one in use among them.
    const names = p.predictors!.map((q) => q.name)
    expect(names).toEqual(['measured per-layer tables', 'paper-2018'])
    expect(p.predictors![0]!.errors).toEqual(p.errors)
    const text = formatPlans(p).join('\n')
    expect(text).toMatch(/end to end +\d+ plans +within ±10 % +\d+\.\d % +±5 % +\d+\.\d % .* \(test–retest \d+\.\d % within ±10 %\)/)
    console.log(formatPlans(p).slice(-12).join('\n'))
    // Nothing learned: the corrected cost table is still the raw one.
    expect(core.planning.costTable('pi-plans').exits).toEqual(raw.exits)
    // The uplink went back to 1000 kbps.
    expect((await core.request('pi-plans', 'set-uplink', { kbps: 1000 }, 5000)).previousKbps).toBe(1000)
  }, 250_000)

  it("after a campaign with a link stage, predicts with its profile and reports the error without the stage's probe plans", async () => {
    const m = core.model
    const cal = await finished(core.startCampaign('pi-plans', 'model', 2))
    expect(cal.status, cal.error ?? '').toBe('done')
    // The link stage: the five probe plans, co-inferred for real, and the terms fitted from them.
    const link = cal.link!
    expect(link.why).toBeNull()
    expect(link.probes.map((q) => `${q.exit}/${q.deviceLayers}`)).toEqual(probePlans(m).map((q) => `${q.exit}/${q.deviceLayers}`))
    expect(link.probes.every((q) => q.n === LINK_PROBE_REPS * LINK_PASSES)).toBe(true)
    expect(link.messaging!.fixedMs).toBeGreaterThan(0)
    const stored = core.store.profiles.byCampaign(cal.id)!.profile
    // A model campaign has no blocks to fit junctions on: its layers add up plainly.
    // The profile keeps the messaging terms (the form and its leave-one-out error stay in the campaign's report).
    const { form: _form, looErrorMs: _loo, ...terms } = link.messaging!
    expect(stored).toMatchObject({ composition: 'sum', messaging: terms, segments: link.segments })
    expect(stored.messaging).toEqual(terms)
    // The probes' uplink went back to 1000 kbps.
    expect((await core.request('pi-plans', 'set-uplink', { kbps: 1000 }, 5000)).previousKbps).toBe(1000)
    const s = await finished(core.startCampaign('pi-plans', 'plans', 2))
    expect(s.status, s.error ?? '').toBe('done')
    const p = s.plans!
    expect(p.uplinkKbps).toBe(100_000)
    expect(p.source).toMatchObject({ kind: 'profile', profileId: cal.profileId })
    const probes = probePlans(m)
    expect(p.errorsWithoutProbes!.probes).toEqual(probes)
    const own = p.points.filter((x) => !probes.some((q) => q.exit === x.exit && q.deviceLayers === x.deviceLayers))
    expect(p.errorsWithoutProbes!.e2e).toEqual(planErrors(own).e2e)
    expect(p.errorsWithoutProbes!.e2e.n).toBe(p.points.length - probes.length)
    // The profile as fitted, without its segments-as-run terms, as a plain sum, the measured tables, the paper's.
    const names = p.predictors!.map((q) => q.name)
    expect(names[0]).toMatch(new RegExp(`^profile ${cal.profileId} \\(model\\): sum of layers \\+ segments as plans run them \\+ messaging$`))
    expect(names).toContain(`profile ${cal.profileId} (model): without the segments-as-run terms`)
    expect(names).toContain(`profile ${cal.profileId} (model): sum of layers + messaging`)
    expect(names.slice(-2)).toEqual(['measured per-layer tables', 'paper-2018'])
    expect(p.predictors![0]!.errors).toEqual(p.errors)
    expect(p.predictors![0]!.current).toBe(true)
    // A model campaign's profile has no tree ensembles (too few points per layer type): nothing to choose.
    expect(p.choice).toEqual({ regressor: 'linear', changed: false, why: 'the profile has one regressor: nothing to choose' })
    // The probes measured again: the machine's speed since the link stage, per side.
    expect(p.drift!.probes).toBe(probes.length)
    expect(p.drift!.device).toBeGreaterThan(0)
    console.log(formatPlans(p).slice(-12).join('\n'))
  }, 250_000)

  it('scores a profile’s tree ensembles beside its linear fits, plans with the better one end to end, and keeps the user’s choice', async () => {
    const m = core.model
    const row = core.store.profiles.current('pi-plans')!
    const base = row.profile
    // Ensembles for every layer type of both sides, fitted (ml-random-forest) on points around the served
    // model's own layers, timed as the profile's linear fits predict them ±20 %.
    const rand = mulberry32(5)
    const withForests = structuredClone(base) as unknown as Record<'device' | 'edge', Record<string, Record<string, unknown>>>
    for (const side of ['device', 'edge'] as const) {
      for (const [key, reg] of Object.entries(base[side])) {
        const layers = m.layers.filter((l) => regressionKeyOf(l) === key)
        if (!reg || !layers.length || key === 'modelLoad') continue
        const names = reg.features ?? FEATURES[key as 'conv']
        const pts = Array.from({ length: 50 }, (_, i) => {
          const x = featureValues(layers[i % layers.length]!, names).map((v) => v * (0.5 + 1.5 * rand()))
          return { x, y: Math.max(1e-3, evaluateRegression(reg, x)) * (0.8 + 0.4 * rand()) }
        })
        const f = fitForest(names, pts.slice(0, 40), pts.slice(40))
        if (f) withForests[side][key] = { ...withForests[side][key], forest: f }
      }
    }
    const id = `${row.id}-with-forests`
    core.store.profiles.insert(
      { id, agentId: 'pi-plans', campaignId: row.campaignId, createdAt: new Date().toISOString(), profile: parseProfile({ ...withForests, id }) },
      'yes'
    )
    core.sources.sourceChanged('pi-plans')
    const s = (await finished(core.startCampaign('pi-plans', 'plans', 1))).plans!
    const mine = s.predictors!.filter((q) => q.name.startsWith(`profile ${id} `) && /: (linear fits|tree ensembles \(ml-random-forest\)), /.test(q.name))
    expect(mine.map((q) => q.name.split(': ')[1]!.split(',')[0])).toEqual([REGRESSOR_TEXT.linear, REGRESSOR_TEXT.forest])
    const [lin, tree] = mine.map((q) => q.errors.e2e)
    const better = tree!.within10! > lin!.within10! || (tree!.within10 === lin!.within10 && tree!.median! < lin!.median!) ? 'forest' : 'linear'
    expect(s.choice).toMatchObject({ regressor: better, changed: better === 'forest' })
    expect(s.choice!.why).toMatch(
      /^end-to-end predictions within ±10 % on these plans \(median error\): linear [\d.]+ % \([\d.]+ %\), forest [\d.]+ % \([\d.]+ %\)$/
    )
    const stored = core.store.profiles.get(id)!.profile
    expect(stored.regressor).toBe(better)
    if (better === 'forest') expect(stored.regressorChosenBy).toMatch(/^plans campaign /)
    expect(mine.find((q) => q.current)!.name).toContain(better === 'forest' ? 'tree ensembles' : 'linear fits')
    // The user's choice stands: the next plans campaign leaves it, whatever it measures.
    const mineNow = better === 'forest' ? 'linear' : 'forest'
    core.useProfile('pi-plans', id, mineNow)
    expect(() => core.useProfile('pi-plans', row.id, 'forest')).toThrow(`profile "${row.id}" has no tree ensembles (ml-random-forest)`)
    core.useProfile('pi-plans', id)
    const again = (await finished(core.startCampaign('pi-plans', 'plans', 1))).plans!
    expect(again.choice).toEqual({ regressor: mineNow, changed: false, why: `the ${mineNow} regressor was chosen by the user` })
    expect(core.store.profiles.get(id)!.profile).toMatchObject({ regressor: mineNow, regressorChosenBy: 'user' })
  }, 250_000)

  it('exports every plan of every plans campaign, one named row each, as CSV and JSON', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-plans-export-'))
    const done = core.campaigns.list().filter((c) => c.kind === 'plans' && c.status === 'done')
    const points = done.reduce((a, c) => a + c.plans!.points.length, 0)
    const csv = core.store.runs.exportPlans('csv', 'pi-plans').content.trim().split('\n')
    expect(csv[0]!.split(',')).toEqual([
      'campaign_id',
      'campaign_status',
      'started_at',
      'device',
      'predictor',
      'uplink_kbps',
      'inferences_per_plan',
      'exit',
      'device_layers',
      'layers',
      'completed',
      'run_ids',
      'predicted_device_ms',
      'measured_device_ms',
      'predicted_edge_ms',
      'measured_edge_ms',
      'predicted_e2e_ms',
      'measured_e2e_ms'
    ])
    expect(csv).toHaveLength(points + 1)
    const doc = JSON.parse(core.store.runs.exportPlans('json').content) as { format: string; rows: Record<string, unknown>[] }
    expect(doc.format).toBe('edgent-plans-export')
    const first = done.at(-1)!.plans!.points[0]! // the oldest campaign's first plan comes first
    expect(doc.rows[0]).toMatchObject({
      exit: first.exit,
      device_layers: first.deviceLayers,
      run_ids: first.runIds.join(' '),
      measured_e2e_ms: first.measured.e2eMs
    })
    // The calibration export's summary names the newest plans campaign's share within ±10 % and its ceiling.
    const newest = done[0]!
    const pct = (v: number) => `${(v * 100).toFixed(1)} %`
    expect(exportCalibration({ dataDir: core.opts.dataDir, out: join(dir, 'cal.json'), format: 'json' })).toContain(
      `; plans campaign ${newest.id.slice(0, 8)}: ${pct(newest.plans!.errors.e2e.within10!)} of end-to-end predictions within ±10 % (test–retest ${pct(newest.plans!.retest!.e2e.within10!)})`
    )
    // The CLI writes the same, and refuses --campaign for it by name.
    expect(exportCalibration({ dataDir: core.opts.dataDir, out: join(dir, 'plans.csv'), format: 'csv', what: 'plans' })).toMatch(
      new RegExp(`: ${points} plans \\(csv\\)$`)
    )
    expect(() => exportCalibration({ dataDir: core.opts.dataDir, out: join(dir, 'x.csv'), format: 'csv', what: 'plans', campaign: done[0]!.id })).toThrow(
      '--campaign is for --what calibration (runs, bandwidth and plans take --agent)'
    )
  })

  it('fails clearly on an agent whose link cannot be set', async () => {
    const s = await finished(core.startCampaign('pi-nolink', 'plans', 1))
    expect(s.status).toBe('failed')
    expect(s.error).toContain('this agent has no emulated uplink (it was started without --uplink-kbps)')
    expect(s.plans!.points).toEqual([])
  })

  it('refuses options that are not its own, and a bad uplink, before starting', () => {
    expect(() => core.startCampaign('pi-plans', 'plans', 2, { uplinkKbps: 0 })).toThrow("a plans campaign's uplink must be 1..10000000 kbps, got 0")
    expect(() => core.startCampaign('pi-plans', 'sweep', 2, { uplinkKbps: 500 })).toThrow('a fixed uplink is for plans campaigns')
    expect(() => core.startCampaign('pi-plans', 'plans', 2, { timing: 'cold' })).toThrow('a timing regime is for layers campaigns')
    expect(() => core.startCampaign('pi-plans', 'layers', 2, { timing: 'tepid' as 'cold' })).toThrow('timing must be warm or cold, got tepid')
  })

  it('the CLI refuses flags of other kinds by name', async () => {
    const run = async (args: string[]) => {
      const err: string[] = []
      const code = await main([...args], { out: () => undefined, err: (t) => err.push(t) })
      return { code, err: err.join('') }
    }
    expect(await run(['campaign', 'run', '--agent', 'x', '--kind', 'layers', '--uplink-kbps', '500'])).toMatchObject({
      code: 2,
      err: expect.stringContaining('--uplink-kbps is for --kind plans')
    })
    expect(await run(['campaign', 'run', '--agent', 'x', '--kind', 'plans', '--timing', 'warm'])).toMatchObject({
      code: 2,
      err: expect.stringContaining('--timing is for --kind layers')
    })
    expect(await run(['campaign', 'run', '--agent', 'x', '--kind', 'plans', '--uplink-kbps', 'fast'])).toMatchObject({
      code: 2,
      err: expect.stringContaining('--uplink-kbps takes a positive number')
    })
  })
})

describe('plan errors', () => {
  it('are relative to the measured time, median and 90th percentile, over the points that have the part', () => {
    expect(errorStats([])).toEqual({ n: 0, median: null, p90: null, within5: null, within10: null })
    const e = errorStats([
      { predicted: 1, measured: 2 },
      { predicted: 3, measured: 2 },
      { predicted: 2, measured: 2 },
      { predicted: 9, measured: 0 }
    ])
    expect(e.n).toBe(3)
    expect(e.median).toBeCloseTo(0.5, 12)
    expect(e.p90).toBeCloseTo(0.5, 12)
    expect(e.within10).toBeCloseTo(1 / 3, 12)
    // the shares: ±5 % and ±10 % inclusive (a 10 % error printed is within), over the points measured
    const shares = errorStats([0.95, 1.04, 1.06, 1.1, 0.89, 1.5].map((predicted) => ({ predicted, measured: 1 })))
    expect(shares).toMatchObject({ n: 6, within5: 2 / 6, within10: 4 / 6 })
    const pt = (deviceLayers: number, d: [number, number], g: [number, number]) => ({
      exit: 1,
      deviceLayers,
      layers: 2,
      runIds: ['r'],
      completed: 1,
      predicted: { deviceMs: d[0], edgeMs: g[0], e2eMs: d[0] + g[0] },
      measured: { deviceMs: d[1], edgeMs: g[1], e2eMs: d[1] + g[1] }
    })
    const errs = planErrors([pt(0, [0, 0], [1, 2]), pt(1, [1, 1], [1, 1]), pt(2, [3, 2], [0, 0])])
    expect(errs.device).toMatchObject({ n: 2, median: 0.25 })
    expect(errs.edge).toMatchObject({ n: 2, median: 0.25 })
    expect(errs.e2e.n).toBe(3)
  })

  it('test–retest: every pair of a plan’s passes, the earlier scored against the later, over the plans that have the part', () => {
    const parts = (deviceMs: number, edgeMs: number) => ({ deviceMs, edgeMs, e2eMs: deviceMs + edgeMs })
    const r = retestErrors([
      { deviceLayers: 0, layers: 2, passes: [parts(0, 10), parts(0, 10.5), parts(0, 12)] },
      { deviceLayers: 2, layers: 2, passes: [parts(20, 0), parts(20, 0), parts(30, 0)] }
    ])
    // edge: 10 vs 10.5 (4.8 %), 10 vs 12 (16.7 %), 10.5 vs 12 (12.5 %); device: 0 %, 33 %, 33 %
    expect(r.edge).toMatchObject({ n: 3, within5: 1 / 3, within10: 1 / 3 })
    expect(r.device).toMatchObject({ n: 3, within5: 1 / 3, within10: 1 / 3 })
    expect(r.device.median).toBeCloseTo(1 / 3, 12)
    expect(r.e2e.n).toBe(6)
    expect(retestErrors([{ deviceLayers: 1, layers: 2, passes: [parts(1, 1)] }]).e2e.n).toBe(0) // one pass: nothing to compare
  })
})
