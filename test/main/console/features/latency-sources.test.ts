/** Latency sources: the one owner of what predicts a device's plans. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PAPER_2018, type CalibrationProfile } from '../../../../src/shared/algorithms/latency.js'
import { measuredSource } from '../../../../src/shared/algorithms/measured-source.js'
import { exitBranches } from '../../../../src/shared/algorithms/exit-paths.js'
import { buildCostTable, profileSource } from '../../../../src/shared/algorithms/planner.js'
import { sourcesFixture, type SourcesFixture } from '../sources-fixture.js'

describe('latency sources', () => {
  let f: SourcesFixture
  const changed: string[] = []
  beforeAll(async () => {
    f = await sourcesFixture()
    f.sources.onChange((id) => changed.push(id))
    f.store.devices.pair('pi-1', 'h')
    f.store.campaigns.create('c1', 'pi-1', 'layers', { reps: 1 })
    f.store.campaigns.create('c2', 'pi-1', 'model', { reps: 1 })
  }, 120_000)
  afterAll(() => f?.stop())

  const addProfile = (id: string, campaignId: string, over: Partial<CalibrationProfile> = {}, current: 'yes' | 'if-none' = 'yes') =>
    f.store.profiles.insert({ id, agentId: 'pi-1', campaignId, createdAt: new Date().toISOString(), profile: { ...PAPER_2018, id, ...over } }, current)

  it('plans a device without a profile with its measured tables, once they are timed', async () => {
    expect(f.sources.latencySource('pi-1')).toEqual({ kind: 'measured', profileId: null, problem: null, stale: null })
    expect(f.sources.hasDeviceTable('pi-1')).toBe(false)
    expect(() => f.sources.costTable('pi-1')).toThrow('agent pi-1 has not been profiled yet')
    const device = await f.sources.deviceTable('pi-1')
    await f.sources.deviceTable('pi-1') // timed once per agent and model
    expect(f.requests).toEqual(['pi-1 profile-layers'])
    const m = f.sources.modelOf('pi-1').manifest
    expect(f.sources.costTable('pi-1')).toEqual(buildCostTable(m, measuredSource(m, device, f.sources.edgeTable(m.id)), 2 * 1024 * 1024))
  }, 60_000)

  it("times a policy's sessions as the agent runs them: the trunk between branch points and each exit's head", () => {
    const m = f.sources.modelOf('pi-1').manifest
    const edge = f.sources.edgeTable(m.id)
    const branches = exitBranches(m)
    const final = branches.at(-1)!
    // independently of runWithPolicy: each head after the trunk up to its branch point, then the rest of the trunk
    const expected: string[] = []
    let at = 0
    for (const b of branches.slice(0, -1)) {
      if (b.branchAt > at) expected.push(`${final.exit}/${at}-${b.branchAt}`)
      at = Math.max(at, b.branchAt)
      expected.push(`${b.exit}/${b.branchAt}-${b.branchAt + b.headLayers}`)
    }
    const n = m.exits.at(-1)!.layers.length
    if (n > at) expected.push(`${final.exit}/${at}-${n}`)
    expect(Object.keys(edge.piecesMs!).sort()).toEqual(expected.sort())
    expect(Object.values(edge.piecesMs!).every((ms) => ms > 0)).toBe(true)
  })

  it('plans with the current profile once there is one, and says when it cannot predict the served model', () => {
    addProfile('p-paper', 'c1')
    f.sources.sourceChanged('pi-1')
    expect(f.sources.latencySource('pi-1')).toEqual({ kind: 'profile', profileId: 'p-paper', problem: null, stale: null })
    const m = f.sources.modelOf('pi-1').manifest
    expect(f.sources.costTable('pi-1')).toEqual(buildCostTable(m, profileSource({ ...PAPER_2018, id: 'p-paper', regressor: 'linear' }), 2 * 1024 * 1024))
    // a profile with no regression for the model's layer types: reported, and the measured tables plan
    addProfile('p-empty', 'c2', { device: {}, edge: {} })
    f.sources.sourceChanged('pi-1')
    const s = f.sources.latencySource('pi-1')
    expect(s).toMatchObject({ kind: 'measured', profileId: 'p-empty' })
    expect(s.problem).toMatch(/: planning with the measured tables instead$/)
  })

  it('selects a profile of the device, or none, and announces every change of source', () => {
    changed.length = 0
    expect(f.sources.useProfile('pi-1', 'p-paper')).toEqual({ kind: 'profile', profileId: 'p-paper', problem: null, stale: null })
    expect(f.store.profiles.current('pi-1')!.id).toBe('p-paper')
    expect(f.sources.useProfile('pi-1', null)).toEqual({ kind: 'measured', profileId: null, problem: null, stale: null })
    expect(changed).toEqual(['pi-1', 'pi-1'])
    expect(() => f.sources.useProfile('pi-1', 'nope')).toThrow('unknown profile "nope"')
    expect(() => f.sources.useProfile('pi-1', null, 'forest')).toThrow('a regressor is chosen for a profile, not for the measured tables')
    expect(() => f.sources.useProfile('pi-1', 'p-paper', 'forest')).toThrow(/profile "p-paper" has no tree ensembles .* it has: linear$/)
    f.store.devices.pair('pi-2', 'h')
    expect(() => f.sources.useProfile('pi-2', 'p-paper')).toThrow('profile "p-paper" was fitted for pi-1, not pi-2')
  })

  it('lets a plans campaign choose the regressor with the most end-to-end predictions within ±10 %, unless the user chose one', () => {
    f.sources.useProfile('pi-1', 'p-paper')
    // linear has the lower median, paper more plans within ±10 %: the share decides (the field's figure)
    const scored = [
      { profileId: 'p-paper', regressor: 'linear' as const, e2eWithin10: 0.6, e2eMedian: 0.06 },
      { profileId: 'p-paper', regressor: 'paper' as const, e2eWithin10: 0.8, e2eMedian: 0.07 }
    ]
    changed.length = 0
    expect(f.sources.chooseRegressor('pi-1', 'p-paper', scored, 'c9')).toEqual({
      regressor: 'paper',
      changed: true,
      why: 'end-to-end predictions within ±10 % on these plans (median error): linear 60.0 % (6.0 %), paper 80.0 % (7.0 %)'
    })
    expect(f.store.profiles.get('p-paper')!.profile).toMatchObject({ regressor: 'paper', regressorChosenBy: expect.stringMatching(/^plans campaign c9: /) })
    expect(changed).toEqual(['pi-1'])
    // a tie on the share: the lower median
    const tie = [
      { profileId: 'p-paper', regressor: 'paper' as const, e2eWithin10: 0.8, e2eMedian: 0.07 },
      { profileId: 'p-paper', regressor: 'linear' as const, e2eWithin10: 0.8, e2eMedian: 0.05 }
    ]
    expect(f.sources.chooseRegressor('pi-1', 'p-paper', tie, 'c9b')).toMatchObject({ regressor: 'linear', changed: true })
    f.store.profiles.chooseRegressor('p-paper', 'linear', 'user')
    expect(f.sources.chooseRegressor('pi-1', 'p-paper', scored, 'c10')).toEqual({
      regressor: 'linear',
      changed: false,
      why: 'the linear regressor was chosen by the user'
    })
  })

  it('offers the codecs an agent announces, priced with its encoding and this machine’s decoding', () => {
    expect(f.sources.codecOptions('pi-1')).toBeUndefined()
    f.hellos.set('pi-1', {
      schema: 1,
      agentId: 'pi-1',
      arch: 'arm64',
      platform: 'linux',
      cpus: 4,
      memoryBytes: 1e9,
      versions: {},
      models: [],
      codecs: ['f32', 'int8', 'nonsense'],
      codecEncodeNs: { int8: 3, nonsense: 1 }
    })
    const o = f.sources.codecOptions('pi-1')!
    expect(o.codecs).toEqual(['f32', 'int8'])
    expect(o.cost?.device).toEqual({ int8: 3 })
    expect(o.cost?.edge['int8']).toBeGreaterThan(0)
    f.hellos.delete('pi-1')
  })

  it('names every predictor a plans campaign scores: each profile’s variants, the measured tables, the paper’s', () => {
    const names = f.sources.predictorTables('pi-1').map((p) => p.name)
    expect(names).toContain('measured per-layer tables')
    expect(names.at(-1)).toBe('paper-2018')
    expect(names.some((n) => n.startsWith('profile p-paper (layers)'))).toBe(true)
    expect(names.some((n) => n.startsWith('profile p-empty'))).toBe(false) // it predicts nothing of this model
  })
})
