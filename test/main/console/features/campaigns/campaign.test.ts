import { existsSync, readFileSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../../../src/main/console/console.js'
import { layerGrid } from '../../../../../src/main/calibration/layers.js'
import { LAYER_PASSES } from '../../../../../src/main/console/features/campaigns/campaigns.js'
import { exportCalibration, importCalibration } from '../../../../../src/main/cli/campaign.js'
import { main } from '../../../../../src/main/cli/index.js'
import { ConsoleService } from '../../../../../src/main/console/api/service.js'
import { FIT_FEATURES, fitRegression, parseProfile } from '../../../../../src/shared/algorithms/latency.js'
import { buildCostTable, candidateAt, latencyOf, profileSource } from '../../../../../src/shared/algorithms/planner.js'
import { campaignFinished, deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../../harness.js'

describe('layers campaign on a real agent and this edge', () => {
  let core: EdgentConsole
  let agent: AgentProc | null = null
  let token = ''
  const grid = layerGrid().length

  beforeAll(async () => {
    core = await startConsole()
    token = core.pair('pi-cal').token
    agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'pi-cal', token)
    await waitFor('pi-cal online', () => deviceState(core, 'pi-cal') === 'online')
  })
  afterAll(async () => {
    await stopAgent(agent)
    await core?.stop()
  })

  const finished = (id: string) => campaignFinished(core, id, 120_000)

  it('measures every configuration on both sides, fits every regression and stores the profile', async () => {
    const seen: number[] = []
    const passes: string[] = []
    core.on('campaign', (s: { progress: number; status: string; pass: { current: number; of: number } | null }) => {
      seen.push(s.progress)
      if (s.status === 'running') passes.push(s.pass ? `${s.pass.current}/${s.pass.of}` : 'none')
    })
    const id = core.startCampaign('pi-cal', 'layers', 1)
    const s = await finished(id)
    expect(s).toMatchObject({ status: 'done', progress: 1, measurements: 2 * grid * LAYER_PASSES, pass: null })
    // While it ran, its status named the pass under way, in order (the Campaigns page shows it).
    expect([...new Set(passes)]).toEqual(Array.from({ length: LAYER_PASSES }, (_, i) => `${i + 1}/${LAYER_PASSES}`))
    expect(seen.length).toBeGreaterThan(10)
    expect(seen.every((p, i) => i === 0 || p >= seen[i - 1]!)).toBe(true)
    const keys = ['conv', 'relu', 'pool', 'lrn', 'dropout', 'fc', 'modelLoad', 'flatten', 'softmax']
    for (const side of ['device', 'edge'])
      for (const k of keys)
        expect(
          s.fits!.some((f) => f.side === side && f.key === k && f.n > 0 && f.heldOutN > 0),
          `${side} ${k}`
        ).toBe(true)
    const row = core.store.profiles.byCampaign(id)!
    expect(row.current).toBe(true)
    const profile = row.profile
    const convs = layerGrid().filter((g) => g.type === 'conv').length
    const trained = convs - Math.floor(convs / 4)
    expect(profile.device.conv!.n).toBe(trained) // one point per configuration: the fastest of its passes
    const conv = core.store.campaigns.measurements(id).filter((r) => r.side === 'edge' && r.regressionKey === 'conv' && !r.heldOut)
    expect(new Set(conv.map((r) => r.pass))).toEqual(new Set([0, 1, 2]))
    const fastest = new Map<string, { x: number[]; y: number }>()
    for (const r of conv) {
      const prev = fastest.get(r.config)
      if (!prev || r.runMs < prev.y) fastest.set(r.config, { x: r.features, y: r.runMs })
    }
    expect(fastest.size).toBe(trained)
    // the stored edge conv regression is the fit of the per-configuration minima
    const refit = fitRegression('conv', [...fastest.values()], { features: FIT_FEATURES.conv, weighting: 'relative' })
    expect(profile.edge.conv!.coefficients).toEqual(refit.coefficients)
    expect(profile.edge.conv!.intercept).toBe(refit.intercept)
    expect(profile.edge.fc!.heldOut).toMatchObject({ n: 10 }) // a quarter of the 42 fc configurations
    // Fitted profiles compose fused segments, with junction terms fitted on the grid's blocks.
    expect(profile.composition).toBe('fused')
    expect(profile.junctions?.edge?.heldOut).toMatchObject({ n: 7 })
    // This agent's link cannot be set (no --uplink-kbps): no link stage, and the campaign says why.
    expect(s.link).toMatchObject({ messaging: null, segments: null, why: expect.stringContaining('link stage not run: ') })
    expect(profile.messaging).toBeUndefined()
  }, 150_000)

  it('plans the device with its current profile, and with the measured tables when told to', async () => {
    await core.sources.deviceTable('pi-cal')
    const src = core.sources.latencySource('pi-cal')
    expect(src).toMatchObject({ kind: 'profile', problem: null })
    const row = core.store.profiles.get(src.profileId!)!
    const profile = row.profile
    const m = core.model
    // with the codecs the agent announces, priced as the console prices them
    const want = buildCostTable(m, profileSource(profile), Infinity, core.sources.codecOptions('pi-cal'))
    expect(core.planning.costTable('pi-cal', true)).toEqual(want)
    // The configuration map and plans follow the profile: a plan's prediction is the profile's.
    const plan = await core.planning.pushPlan('pi-cal', 1000, 500, 'test')
    const cand = candidateAt(want, plan.exit, plan.deviceLayers, plan.codec)!
    expect(plan.predictedMs).toBeCloseTo(latencyOf(cand, { uplinkKbps: 500, latencyMs: 1000 }), 9)

    expect(core.useProfile('pi-cal', null)).toEqual({ kind: 'measured', profileId: null, problem: null, stale: null })
    expect(core.planning.costTable('pi-cal', true)).not.toEqual(want)
    expect(() => core.useProfile('pi-cal', 'no-such-profile')).toThrow('unknown profile "no-such-profile"')
    core.pair('pi-other')
    expect(() => core.useProfile('pi-other', src.profileId)).toThrow(`profile "${src.profileId}" was fitted for pi-cal, not pi-other`)
    expect(core.useProfile('pi-cal', src.profileId)).toEqual(src)
    expect(core.planning.costTable('pi-cal', true)).toEqual(want)
  })

  it('exports calibration data as JSON and CSV, atomically', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-export-'))
    const dataDir = core.opts.dataDir
    expect(exportCalibration({ dataDir, out: join(dir, 'cal.json'), format: 'json' })).toMatch(/1 campaign\(s\) \(1 done\), \d+ measurements \(json\)/)
    const doc = JSON.parse(readFileSync(join(dir, 'cal.json'), 'utf8'))
    expect(doc).toMatchObject({ format: 'edgent-calibration-export', schema: 1, software: { onnxruntime: '1.27.0' } })
    expect(doc.measurements).toHaveLength(2 * grid * LAYER_PASSES)
    expect(doc.measurements.filter((m: { pass: number }) => m.pass === 2)).toHaveLength(2 * grid)
    expect(doc.devices[0].hello.agentId).toBe('pi-cal')
    parseProfile(doc.profiles[0].profile, 'exported profile')
    // Every repetition beside the median (reps 1 here), and both machines with the campaign.
    for (const m of doc.measurements as { reps: number; reps_ms: number[]; run_ms: number }[]) {
      expect(m.reps_ms).toHaveLength(m.reps)
      expect(m.run_ms).toBeCloseTo(m.reps_ms[0]!, 9)
    }
    expect(doc.campaigns[0].machines.edge).toMatchObject({ cores: expect.any(Number), node: process.versions.node, onnxruntime: '1.27.0' })
    expect(doc.campaigns[0].machines.device).toMatchObject({ cpuModel: expect.any(String), arch: process.arch })
    expect(doc.profiles[0].campaign_kind).toBe('layers')
    exportCalibration({ dataDir, out: join(dir, 'cal.csv'), format: 'csv' })
    const csv = readFileSync(join(dir, 'cal.csv'), 'utf8').trim().split('\n')
    const head = csv[0]!.split(',')
    expect(head.slice(0, 8)).toEqual(['campaign', 'campaign_kind', 'campaign_status', 'device', 'side', 'pass', 'layer_type', 'config'])
    for (const c of ['inputElements', 'macs', 'run_ms', 'rep1_ms', 'held_out', 'edge_cpu_model', 'edge_os', 'device_cpu_model', 'device_onnxruntime'])
      expect(head, c).toContain(c)
    expect(head).not.toContain('rep2_ms')
    expect(csv).toHaveLength(2 * grid * LAYER_PASSES + 1)
    // Named columns only: no JSON in a cell, the device in its own column.
    expect(csv.slice(1).every((line) => !/[{[]/.test(line))).toBe(true)
    expect(csv[1]!.split(',')[3]).toBe('pi-cal')
    expect(() => exportCalibration({ dataDir, out: join(dir, 'x.json'), format: 'json', campaign: 'nope' })).toThrow('unknown campaign "nope"')
  })

  it('imports into a fresh data directory, all or nothing, and plans identically with the profile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-import-'))
    const file = join(dir, 'cal.json')
    exportCalibration({ dataDir: core.opts.dataDir, out: file, format: 'json' })
    const fresh = join(dir, 'fresh')
    const profileId = (JSON.parse(readFileSync(file, 'utf8')) as { profiles: { id: string }[] }).profiles[0]!.id
    // malformed and foreign files change nothing
    writeFileSync(join(dir, 'foreign.json'), JSON.stringify({ format: 'something-else', schema: 1 }))
    writeFileSync(join(dir, 'broken.json'), '{"format": "edgent-calibration-export", ')
    const doc = JSON.parse(readFileSync(file, 'utf8'))
    doc.profiles[0].profile.device.conv.coefficients = [1]
    writeFileSync(join(dir, 'badprofile.json'), JSON.stringify(doc))
    expect(() => importCalibration({ file: join(dir, 'foreign.json'), dataDir: fresh })).toThrow(/^import foreign\.json: format: /)
    expect(() => importCalibration({ file: join(dir, 'broken.json'), dataDir: fresh })).toThrow(/broken\.json is not valid JSON/)
    expect(() => importCalibration({ file: join(dir, 'badprofile.json'), dataDir: fresh })).toThrow(
      /device conv needs 3 coefficients \(inputElements, kernelOverStrideSquaredTimesFilters, macs\), got 1/
    )
    expect(existsSync(join(fresh, 'edgent.db'))).toBe(false)
    expect(importCalibration({ file, dataDir: fresh })).toMatch(new RegExp(`imported 1 campaign\\(s\\), 1 profile\\(s\\) \\(${profileId}\\)`))
    expect(() => importCalibration({ file, dataDir: fresh })).toThrow(/is already in/)
    const plans: string[] = []
    for (const [profile, dataDir] of [
      [profileId, core.opts.dataDir],
      [profileId, fresh],
      [`${file}#${profileId}`, fresh]
    ] as const) {
      let out = ''
      const code = await main(['plan', '--profile', profile, '--data-dir', dataDir, '--bandwidth-kbps', '500', '--latency-ms', '100', '--json', '--all'], {
        out: (t) => (out += t),
        err: (t) => (out += t)
      })
      expect(code, out).toBe(0)
      plans.push(out)
    }
    expect(JSON.parse(plans[0]!).profile).toBe(profileId)
    expect(plans[1]).toBe(plans[0])
    expect(plans[2]).toBe(plans[0])
  })

  it('refuses an imported campaign of unknown kind or status, ends a running one, and opens 150,000 measurements in a moment', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-import-big-'))
    const file = join(dir, 'cal.json')
    exportCalibration({ dataDir: core.opts.dataDir, out: file, format: 'json' })
    const doc = JSON.parse(readFileSync(file, 'utf8'))
    const write = (name: string, patch: (d: typeof doc) => void) => {
      const d = structuredClone(doc)
      patch(d)
      writeFileSync(join(dir, name), JSON.stringify(d))
      return join(dir, name)
    }
    const fresh = join(dir, 'fresh')
    expect(() => importCalibration({ file: write('kind.json', (d) => (d.campaigns[0].kind = 'bitcoin')), dataDir: fresh })).toThrow(
      /^import kind\.json: campaigns\[0\]\.kind: /
    )
    expect(() => importCalibration({ file: write('status.json', (d) => (d.campaigns[0].status = 'paused')), dataDir: fresh })).toThrow(
      /^import status\.json: campaigns\[0\]\.status: /
    )
    // One campaign, every measurement of one configuration: grouping them was quadratic (163 s).
    const big = write('big.json', (d) => {
      const m = d.measurements[0]
      d.campaigns = [{ ...d.campaigns[0], id: 'big-one', status: 'running' }]
      d.profiles = []
      d.measurements = Array.from({ length: 150_000 }, (_, i) => ({ ...m, campaign_id: 'big-one', run_ms: 1 + (i % 97) / 100 }))
    })
    expect(importCalibration({ file: big, dataDir: fresh })).toMatch(/150000 measurements/)
    const other = await startConsole({ dataDir: fresh })
    try {
      // Imported as running, it could never end: it is stored as interrupted.
      expect(other.campaigns.status('big-one')).toMatchObject({ status: 'interrupted' })
      const service = new ConsoleService(other, { shell: 'headless', brokerAddress: () => '127.0.0.1' })
      const t0 = performance.now()
      const cal = await service.call('calibration', { campaign: 'big-one' })
      const ms = performance.now() - t0
      console.info(`calibration view of 150,000 measurements: ${ms.toFixed(0)} ms`)
      expect(cal.pointsTotal).toBe(doc.measurements[0].model_bytes > 0 ? 2 : 1) // one configuration: its fastest pass (and its model-loading point)
      expect(ms).toBeLessThan(20_000)
    } finally {
      await other.stop()
    }
  }, 120_000)

  it('keeps the partial data of a campaign whose agent drops out, and marks it failed', async () => {
    const id = core.startCampaign('pi-cal', 'layers', 3)
    await waitFor(
      'device side under way',
      () => {
        const s = core.campaigns.status(id)!
        return s.measurements > grid && s
      },
      60_000
    )
    agent!.child.kill('SIGKILL')
    const s = await finished(id)
    expect(s.status).toBe('failed')
    expect(s.error).toMatch(/pi-cal went offline/)
    expect(s.measurements).toBeGreaterThan(grid)
    expect(s.measurements).toBeLessThan(2 * grid * LAYER_PASSES)
    expect(s.profileId).toBeNull()
    agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'pi-cal', token)
    await waitFor('pi-cal online', () => deviceState(core, 'pi-cal') === 'online')
  }, 150_000)

  it('measures every layer of the served model on both sides (kind model)', async () => {
    const id = core.startCampaign('pi-cal', 'model', 2)
    const s = await finished(id)
    const layers = core.model.layers.length
    expect(s).toMatchObject({ status: 'done', kind: 'model', measurements: 2 * layers })
    const rows = core.store.campaigns.measurements(id)
    expect(rows.filter((r) => r.side === 'device').map((r) => (JSON.parse(r.config) as { layer: string }).layer)).toEqual(core.model.layers.map((l) => l.id))
    for (const r of rows) expect(r.runMs).toBeGreaterThan(0)
    expect(s.fits!.some((f) => f.key === 'modelLoad')).toBe(false) // no whole-model loads in this kind
  }, 120_000)

  it('cancels between chunks', async () => {
    const id = core.startCampaign('pi-cal', 'layers', 1)
    core.campaigns.cancel(id)
    const s = await finished(id)
    expect(s.status).toBe('cancelled')
    expect(() => core.startCampaign('pi-cal', 'warp', 1)).toThrow('unknown campaign kind "warp" (kinds: layers, model, sweep, plans)')
  }, 60_000)

  it('exports every campaign, whatever its status, each marked, with each profile labelled by the kind that made it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-export-all-'))
    const dataDir = core.opts.dataDir
    const statuses = core.campaigns.list().map((c) => c.status)
    expect(statuses).toContain('failed') // the drop-out campaign above
    const summary = exportCalibration({ dataDir, out: join(dir, 'all.json'), format: 'json' })
    expect(summary).toContain(`${statuses.length} campaign(s) (`)
    expect(summary).toMatch(/\d+ failed/)
    const doc = JSON.parse(readFileSync(join(dir, 'all.json'), 'utf8'))
    expect(doc.campaigns.map((c: { status: string }) => c.status).sort()).toEqual([...statuses].sort())
    expect(new Set(doc.profiles.map((p: { campaign_kind: string }) => p.campaign_kind))).toEqual(new Set(['layers', 'model']))
    // A model campaign's layers were each timed reps × (exits through them) times: all of them are there.
    const model = doc.campaigns.find((c: { kind: string; status: string }) => c.kind === 'model' && c.status === 'done')
    const rows = doc.measurements.filter((m: { campaign_id: string }) => m.campaign_id === model.id) as { reps: number; reps_ms: number[] }[]
    expect(rows.length).toBeGreaterThan(0)
    for (const m of rows) expect(m.reps_ms.length % m.reps).toBe(0)
    exportCalibration({ dataDir, out: join(dir, 'all.csv'), format: 'csv' })
    const lines = readFileSync(join(dir, 'all.csv'), 'utf8').trim().split('\n')
    const failed = doc.campaigns.find((c: { status: string }) => c.status === 'failed').id
    expect(lines.some((l) => l.startsWith(`${failed},layers,failed,pi-cal,`))).toBe(true)
    expect(lines.slice(1).every((line) => !/[{[]/.test(line))).toBe(true)
  })

  it('gives the Calibration page model-loading points to plot, not an empty panel', async () => {
    const { ConsoleService } = await import('../../../../../src/main/console/api/service.js')
    const service = new ConsoleService(core, { shell: 'headless', brokerAddress: () => '127.0.0.1:1883' })
    const layers = core.campaigns.list().find((c) => c.kind === 'layers' && c.status === 'done')!
    const cal = await service.call('calibration', { campaign: layers.id })
    for (const side of ['device', 'edge'] as const) {
      const load = cal.points.filter((p) => p.side === side && p.key === 'modelLoad')
      expect(load.length, side).toBe(grid) // one per synthetic model: its bytes against its session creation time
      expect(load.every((p) => p.features[0]! > 0 && p.runMs > 0 && p.predictedMs !== null)).toBe(true)
      expect(cal.campaign.fits!.some((f) => f.side === side && f.key === 'modelLoad')).toBe(true)
    }
  })
})
