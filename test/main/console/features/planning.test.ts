/** Planning: plans pushed retained, stored, and kept in a bounded record; what it learned dropped when the source changes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PLANS_KEPT, type StoredPlan } from '../../../../src/main/console/features/planning.js'
import { latencyOf, plan as planAt } from '../../../../src/shared/algorithms/planner.js'
import { topics } from '../../../../src/shared/contracts/topics.js'
import { sourcesFixture, type SourcesFixture } from '../sources-fixture.js'

describe('planning', () => {
  let f: SourcesFixture
  beforeAll(async () => {
    f = await sourcesFixture()
    f.store.devices.pair('pi-1', 'h')
    await f.sources.deviceTable('pi-1')
  }, 120_000)
  afterAll(() => f?.stop())

  it('pushes a plan retained to the agent, stores it, and makes it current', async () => {
    const plan = await f.planning.pushPlan('pi-1', 1000, 500, 'test')
    expect(f.published.at(-1)).toMatchObject({
      topic: topics.plan('pi-1'),
      payload: { planId: plan.planId, exit: plan.exit, deviceLayers: plan.deviceLayers, reason: 'test' }
    })
    expect(f.published.at(-1)!.payload).not.toHaveProperty('breakdown')
    expect(f.planning.currentPlan('pi-1')).toBe(plan)
    expect(f.planning.plan(plan.planId)).toBe(plan)
    // the plan is the planner's choice on the device's cost table, at that bandwidth and requirement
    const choice = planAt(f.planning.costTable('pi-1'), { uplinkKbps: 500, latencyMs: 1000 })!
    expect({ exit: plan.exit, deviceLayers: plan.deviceLayers, predictedMs: plan.predictedMs }).toEqual({
      exit: choice.exit,
      deviceLayers: choice.deviceLayers,
      predictedMs: choice.predictedMs
    })
  })

  it('keeps at most PLANS_KEPT plans of a device in memory, the newest', async () => {
    const first = f.planning.planIds('pi-1')[0]!
    for (let i = 0; i < PLANS_KEPT + 8; i++) await f.planning.pushPlan('pi-1', 1000, 100 + i, `replan ${i}`, { exit: 1, deviceLayers: i % 3 })
    const ids = f.planning.planIds('pi-1')
    expect(ids).toHaveLength(PLANS_KEPT)
    expect(f.planning.plan(first)).toBeUndefined()
    expect(f.planning.plan(ids.at(-1)!)).toBe(f.planning.currentPlan('pi-1'))
  }, 60_000)

  it('drops its configuration maps when the device’s latency source changes', () => {
    const map = f.planning.configMap('pi-1', 50)
    expect(f.planning.configMap('pi-1', 50)).toBe(map) // cached
    f.sources.sourceChanged('pi-1')
    expect(f.planning.configMap('pi-1', 50)).not.toBe(map)
  })

  it('keeps the online correction per plan family only while it measures better than none', async () => {
    f.planning.sourceChanged('pi-1') // a fresh correction and gate
    const n = f.planning.costTable('pi-1', true).exits.find((g) => g[0]!.exit === 5)![0]!.layers
    const rows = (plan: StoredPlan, times: (p: StoredPlan) => { deviceMs: number; edgeMs: number; e2eMs: number }) =>
      Array.from({ length: 5 }, (_, i) => ({
        requestId: `${plan.planId}-${i}`,
        sample: i,
        label: 0,
        predictedLabel: 0,
        correct: true,
        exit: plan.exit,
        deviceLayers: plan.deviceLayers,
        planId: plan.planId,
        predictedMs: plan.predictedMs,
        predicted: plan.breakdown,
        transferMs: 0,
        met: true,
        uplinkKbps: plan.uplinkKbps,
        uploadBytes: 0,
        ...times(plan)
      }))
    const raw = f.planning.costTable('pi-1', true)
    const at = (t: typeof raw, dl: number) => t.exits.find((g) => g[0]!.exit === 5)![dl]!
    const cond = { uplinkKbps: 500, latencyMs: 10_000 }
    // Device-only plans run 1.8× as slow as the tables predict: the correction learns it and helps them.
    const slow = at(raw, n)
    for (let b = 0; b < 4; b++) {
      const p = await f.planning.pushPlan('pi-1', 10_000, 500, 'device-only', { exit: 5, deviceLayers: n })
      f.planning.learn(
        'pi-1',
        rows(p, () => ({ deviceMs: 1.8 * slow.deviceMs, edgeMs: 0, e2eMs: latencyOf(slow, cond) + 0.8 * slow.deviceMs })),
        true,
        500
      )
    }
    // Split plans run exactly as the uncorrected tables predict: the device factors learned above
    // would make their predictions worse, so they stay uncorrected.
    const split = await f.planning.pushPlan('pi-1', 10_000, 500, 'split', { exit: 5, deviceLayers: 3 })
    const rawSplit = at(raw, 3)
    const exact = () => ({ deviceMs: rawSplit.deviceMs, edgeMs: rawSplit.edgeMs, e2eMs: latencyOf(rawSplit, cond) })
    const s = f.planning.learn('pi-1', rows(split, exact), true, 500)
    expect(s.families).toEqual([
      expect.objectContaining({ family: 'device-only', used: true }),
      expect.objectContaining({ family: 'split', used: false, batches: 1 })
    ])
    const gated = f.planning.costTable('pi-1')
    expect(at(gated, 3).deviceMs).toBe(rawSplit.deviceMs) // split: uncorrected
    expect(at(gated, n).deviceMs).toBeGreaterThan(1.3 * at(raw, n).deviceMs) // device-only: corrected
    // edge-only plans were never scored: corrected (the learned overhead holds for every plan)
    expect(s.families!.map((x) => x.family)).not.toContain('edge-only')
    expect(at(gated, 0).overheadMs).toBeGreaterThan(at(raw, 0).overheadMs)
  }, 60_000)

  it('reports a drift when device segments measure far from their predictions twice in a row, and times the layers again', async () => {
    f.store.devices.pair('pi-3', 'h')
    await f.sources.deviceTable('pi-3')
    const learnSlow = async (factor: number) => {
      const p = await f.planning.pushPlan('pi-3', 10_000, 500, 'drift', { exit: 5, deviceLayers: 3 })
      const raw = f.planning.costTable('pi-3', true).exits.find((g) => g[0]!.exit === 5)![3]!
      const rows = Array.from({ length: 5 }, (_, i) => ({
        requestId: `${p.planId}-${i}`,
        sample: i,
        label: 0,
        predictedLabel: 0,
        correct: true,
        exit: p.exit,
        deviceLayers: p.deviceLayers,
        planId: p.planId,
        predictedMs: p.predictedMs,
        predicted: p.breakdown,
        deviceMs: factor * raw.deviceMs,
        transferMs: 0,
        edgeMs: raw.edgeMs,
        e2eMs: p.predictedMs + (factor - 1) * raw.deviceMs,
        met: true,
        uplinkKbps: 500,
        uploadBytes: 0
      }))
      f.planning.learn('pi-3', rows, true, 500)
    }
    await learnSlow(1.1) // within the bound: no drift
    await learnSlow(5)
    expect(f.sources.latencySource('pi-3').stale).toBeNull() // one batch is not a drift
    await learnSlow(5)
    expect(f.sources.latencySource('pi-3').stale).toMatch(
      /^its device segments measured 5\.00× their predictions \(median\) in 2 batches in a row: planning with its layers measured again/
    )
    expect(f.sources.hasDeviceTable('pi-3')).toBe(false)
    // no profile: the tables timed again are the remedy, and the flag goes with them
    await f.sources.deviceTable('pi-3')
    expect(f.sources.latencySource('pi-3').stale).toBeNull()
  }, 60_000)

  it('forgets every device when stopped (plans stay in the store)', () => {
    const last = f.planning.currentPlan('pi-1')!
    f.planning.stop()
    expect(f.planning.currentPlan('pi-1')).toBeNull()
    expect(f.planning.planIds('pi-1')).toEqual([])
    expect(f.planning.plan(last.planId)).toBeUndefined()
    f.planning.start()
  })
})
