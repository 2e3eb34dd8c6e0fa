/** Planning: plans pushed retained, stored, and kept in a bounded record; what it learned dropped when the source changes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PLANS_KEPT } from '../../../../src/main/console/features/planning.js'
import { plan as planAt } from '../../../../src/shared/algorithms/planner.js'
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

  it('forgets every device when stopped (plans stay in the store)', () => {
    const last = f.planning.currentPlan('pi-1')!
    f.planning.stop()
    expect(f.planning.currentPlan('pi-1')).toBeNull()
    expect(f.planning.planIds('pi-1')).toEqual([])
    expect(f.planning.plan(last.planId)).toBeUndefined()
    f.planning.start()
  })
})
