/** The store's profile documents: parsed and schema-checked on the way out and in, changed by intent, one current per device. */
import Database from 'better-sqlite3'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { PAPER_2018, type CalibrationProfile } from '../../../src/shared/algorithms/latency.js'
import { Store } from '../../../src/main/store/store.js'

const profile = (id: string, over: Partial<CalibrationProfile> = {}): CalibrationProfile => ({ ...PAPER_2018, id, ...over })

describe('stored profiles', () => {
  let file: string
  let store: Store
  beforeEach(() => {
    file = join(mkdtempSync(join(tmpdir(), 'edgent-profiles-')), 'edgent.db')
    store = new Store(file)
    store.start()
    store.devices.pair('pi-1', 'hash')
    store.campaigns.create('c1', 'pi-1', 'layers', { reps: 3 })
    store.campaigns.create('c2', 'pi-1', 'model', { reps: 3, model: 'm' })
  })
  afterEach(() => store.stop())

  it('come back as the typed document that went in, with the schema defaults filled in', () => {
    store.campaigns.completeWithProfile('c1', { id: 'p1', agentId: 'pi-1', createdAt: '2026-12-07T00:00:00.000Z', profile: profile('p1') })
    const got = store.profiles.get('p1')!
    expect(got).toMatchObject({ id: 'p1', agentId: 'pi-1', campaignId: 'c1', current: true })
    expect(got.profile).toEqual({ ...profile('p1'), regressor: 'linear' })
    expect(got.profile.regressor).toBe('linear')
    expect(store.profiles.current('pi-1')!.id).toBe('p1')
    expect(store.campaigns.get('c1')).toMatchObject({ status: 'done', params: { reps: 3 } })
  })

  it('refuse an invalid document before anything is written', () => {
    const bad = { ...profile('p1'), edge: { conv: { intercept: 1, coefficients: [1] } } } as unknown as CalibrationProfile
    expect(() => store.campaigns.completeWithProfile('c1', { id: 'p1', agentId: 'pi-1', createdAt: 'now', profile: bad })).toThrow(
      /profile p1: .*edge conv needs \d+ coefficients/
    )
    expect(store.profiles.get('p1')).toBeUndefined()
    expect(store.campaigns.get('c1')!.status).toBe('running')
  })

  it('change the regressor by intent, in one transaction, and keep the rest of the document', () => {
    store.profiles.insert({ id: 'p1', agentId: 'pi-1', campaignId: 'c1', createdAt: 'now', profile: profile('p1', { overheadMs: 3 }) }, 'yes')
    const doc = store.profiles.chooseRegressor('p1', 'paper', 'user')
    expect(doc).toMatchObject({ regressor: 'paper', regressorChosenBy: 'user', overheadMs: 3 })
    expect(store.profiles.get('p1')!.profile).toEqual({ ...profile('p1', { overheadMs: 3 }), regressor: 'paper', regressorChosenBy: 'user' })
    expect(() => store.profiles.chooseRegressor('nope', 'linear', 'user')).toThrow('unknown profile "nope"')
  })

  it('keep one current profile per device: a campaign makes its own current, an import only where there is none', () => {
    store.profiles.insert({ id: 'p1', agentId: 'pi-1', campaignId: 'c1', createdAt: '1', profile: profile('p1') }, 'if-none')
    store.profiles.insert({ id: 'p2', agentId: 'pi-1', campaignId: 'c2', createdAt: '2', profile: profile('p2') }, 'if-none')
    expect(store.profiles.current('pi-1')!.id).toBe('p1')
    store.profiles.makeCurrent('pi-1', 'p2')
    expect(store.profiles.forDevice('pi-1').map((p) => [p.id, p.current, p.campaignKind])).toEqual([
      ['p2', true, 'model'],
      ['p1', false, 'layers']
    ])
    store.profiles.makeCurrent('pi-1', null)
    expect(store.profiles.current('pi-1')).toBeUndefined()
  })

  it('name a stored document that no longer passes the schema when it is read, and still list the others', () => {
    store.profiles.insert({ id: 'p1', agentId: 'pi-1', campaignId: 'c1', createdAt: '1', profile: profile('p1') }, 'yes')
    store.profiles.insert({ id: 'p2', agentId: 'pi-1', campaignId: 'c2', createdAt: '2', profile: profile('p2') }, 'if-none')
    store.stop()
    const db = new Database(file)
    db.prepare('UPDATE profiles SET json = \'{"format":"edgent-calibration"\' WHERE id = \'p1\'').run()
    db.prepare(`UPDATE profiles SET json = '{"format":"something else"}' WHERE id = 'p2'`).run()
    db.close()
    store.start()
    expect(store.profiles.forDevice('pi-1').map((p) => p.id)).toEqual(['p2', 'p1'])
    expect(() => store.profiles.get('p1')!.profile).toThrow(/^stored profile p1 is not JSON/)
    expect(() => store.profiles.get('p2')!.profile).toThrow(/^stored profile p2: format/)
  })
})
