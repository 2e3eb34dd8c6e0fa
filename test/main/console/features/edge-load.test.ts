import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../../src/main/console/console.js'
import { EdgeLoad, LOAD_WINDOW_MS } from '../../../../src/main/console/features/edge-load.js'
import { LOAD_REPLAN_MS } from '../../../../src/main/console/features/planning.js'
import { latencyOf } from '../../../../src/shared/algorithms/planner.js'
import { deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../harness.js'

describe('the edge load and its queue model', () => {
  it('measures per device and overall, forgets what left the window, and predicts the wait from the others', () => {
    let now = 10_000
    const load = new EdgeLoad(
      () => 2,
      () => now
    )
    expect(load.waitFor('a')(1, 100)).toBe(0) // an idle edge: no wait
    // b and c each keep one worker 20 % busy (200 runs of 2 ms in the 2 s window): the pool of 2 is 20 % busy
    for (let i = 0; i < 200; i++) {
      now += LOAD_WINDOW_MS / 200
      load.addRun({ owner: 'b', at: now, queuedMs: 1, serviceMs: 2, runMs: 1.8 })
      load.addRun({ owner: 'c', at: now, queuedMs: 3, serviceMs: 2, runMs: 1.8 })
      load.addFrame('b')
    }
    const v = load.view()
    expect(v.utilisation).toBeCloseTo(0.2, 6)
    expect(v.runsPerSecond).toBeCloseTo(200, 6)
    expect(v.meanWaitMs).toBeCloseTo(2, 6)
    expect(v.devices.find((d) => d.id === 'b')).toMatchObject({ runsPerSecond: 100, framesPerSecond: 100, meanWaitMs: 1 })
    expect(load.meanHandoffMs()).toBeCloseTo(0.2, 6)
    const wait = load.waitFor('a')
    // more load from a, longer wait; never past the closed-loop bound (the 2 others, each one run ahead, over 2 workers)
    expect(wait(2, 50)).toBeGreaterThan(0)
    expect(wait(2, 200)).toBeGreaterThan(wait(2, 50))
    expect(wait(2, 10_000)).toBeCloseTo((2 * 2) / 2, 6)
    // a device's own runs are not its wait: b alone sees only c's load
    expect(load.waitFor('b')(2, 0)).toBeLessThan(wait(2, 0))
    now += LOAD_WINDOW_MS + 1
    expect(load.view()).toMatchObject({ runsPerSecond: 0, utilisation: 0, devices: [] })
    expect(load.waitFor('a')(2, 100)).toBe(0)
  })
})

describe('load-aware planning with a real agent', () => {
  let core: EdgentConsole
  let agent: AgentProc | null = null

  beforeAll(async () => {
    core = await startConsole()
    // a device 6× slower than this machine: on an idle edge, offloading wins
    agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'pi-l', core.pair('pi-l').token, ['--slowdown', '6'])
    await waitFor('pi-l online', () => deviceState(core, 'pi-l') === 'online')
  })
  afterAll(async () => {
    await stopAgent(agent)
    await core?.stop()
  })

  it('prices the edge by its measured wait, moves the device off a busy edge and back onto an idle one', async () => {
    const latencyMs = 40
    const idle = await core.infer({ agent: 'pi-l', count: 20, latencyMs, uplinkKbps: 100_000 })
    expect(idle.summary.plan.deviceLayers).toBeLessThan(idle.summary.plan.layers) // the idle edge takes work
    expect(core.load()).toMatchObject({ loadAware: true, workers: core.executor.size })
    const n = idle.summary.plan.layers
    // Other devices keep the pool saturated (their runs as the pool reports them): 10 devices, 15 ms runs.
    const saturate = () => {
      const t0 = performance.now()
      for (let i = 0; i < 400; i++)
        core.edgeLoad.addRun({ owner: `busy-${i % 10}`, at: t0 - (i * LOAD_WINDOW_MS) / 800, queuedMs: 30, serviceMs: 15, runMs: 14.8 })
    }
    saturate()
    const table = core.planning.costTable('pi-l')
    const blind = core.planning.costTable('pi-l', true)
    const exit = idle.summary.plan.exit
    const loaded = table.exits[exit - 1]![idle.summary.plan.deviceLayers]!
    expect(loaded.queueMs).toBeGreaterThan(10)
    expect(table.exits[exit - 1]![n]!.queueMs ?? 0).toBe(0) // device-only waits for nobody
    expect(latencyOf(loaded, { uplinkKbps: 100_000, latencyMs })).toBeGreaterThan(
      latencyOf(blind.exits[exit - 1]![idle.summary.plan.deviceLayers]!, { uplinkKbps: 100_000, latencyMs })
    )
    // a plan made now avoids the busy edge, and the device's frames keep it there while the others stay
    saturate()
    const busy = await core.infer({ agent: 'pi-l', count: 20, latencyMs, uplinkKbps: 100_000 })
    expect(busy.summary.plan.deviceLayers).toBe(n)
    expect(busy.rows.every((r) => r.deviceLayers === n)).toBe(true)
    // A device planned for the idle edge is moved off by load-aware replanning, one device per LOAD_REPLAN_MS.
    core.planning.loadAware = false
    await core.infer({ agent: 'pi-l', count: 5, latencyMs, uplinkKbps: 100_000 })
    expect(core.planning.currentPlan('pi-l')!.deviceLayers).toBeLessThan(n)
    core.planning.loadAware = true
    saturate()
    await new Promise((r) => setTimeout(r, LOAD_REPLAN_MS + 10))
    core.planning.loadTick()
    await waitFor('the load replan', () => core.planning.currentPlan('pi-l')!.deviceLayers === n, 5000)
    expect(core.planning.currentPlan('pi-l')!.reason).toMatch(/^edge load: exit \d+ with \d+ device layers predicted/)
    // Load-blind planning ignores the same load.
    core.planning.loadAware = false
    expect(core.planning.costTable('pi-l').exits[exit - 1]![idle.summary.plan.deviceLayers]!.queueMs).toBeUndefined()
    core.planning.loadAware = true
    // Once the others are gone (the window empties), the edge is idle again and the device comes back.
    await new Promise((r) => setTimeout(r, LOAD_WINDOW_MS + 50))
    await new Promise((r) => setTimeout(r, LOAD_REPLAN_MS + 10))
    await core.infer({ agent: 'pi-l', count: 20, latencyMs, uplinkKbps: 100_000 })
    expect(core.planning.currentPlan('pi-l')!.deviceLayers).toBeLessThan(n)
  })
})
