/**
 * Stale calibration is never silent (issue 35, item 4). A device calibrated at one speed (a model
 * campaign at slowdown 2 fits its profile) is restarted at slowdown 20, as the local device is when
 * its CPU share changes. Before: the console kept planning with the old profile — the plan ran on the
 * device, predicted in time, measured late, 0 % of requirements met, no warning anywhere. Now its
 * hello's announced speed no longer matches the profile's campaign: the source says so (the pages
 * show `latencySource.stale`), its layers are timed again before the next plan, and the requirement
 * is met again without any command. Measured drift of plans against predictions does the same for a
 * change nobody announced.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../src/main/console/console.js'
import { campaignFinished, deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from './harness.js'

describe('a device whose announced speed changes', () => {
  let core: EdgentConsole & { logPath: string }
  let agent: AgentProc | null = null
  const token = () => core.pair('pi', { force: true }).token
  const start = async (slowdown: number) => {
    await stopAgent(agent)
    if (agent) await waitFor('pi offline', () => deviceState(core, 'pi') === 'offline', 20_000)
    agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'pi', token(), ['--slowdown', String(slowdown)])
    await waitFor('pi online', () => deviceState(core, 'pi') === 'online', 30_000)
    await waitFor(`pi announcing slowdown ${slowdown}`, () =>
      JSON.stringify(core.devices().find((d) => d.id === 'pi')?.hello?.emulation ?? {}).includes(`"factor":${slowdown}`)
    )
  }
  // A requirement the device meets alone at slowdown 2 but not at 20, where the edge must take over.
  const batch = () => core.infer({ agent: 'pi', count: 20, latencyMs: 12, uplinkKbps: 1000 })

  beforeAll(async () => {
    core = await startConsole()
    await start(2)
  }, 60_000)
  afterAll(async () => {
    await stopAgent(agent)
    await core?.stop()
  })

  it('is flagged within one plan, planned with its layers timed again, and meets its requirement again unasked', async () => {
    const id = core.startCampaign('pi', 'model', 2)
    await campaignFinished(core, id, 120_000)
    const source = () => core.devices().find((d) => d.id === 'pi')!.latencySource!
    expect(source()).toMatchObject({ kind: 'profile', stale: null })
    const before = await batch()
    await start(20)
    // flagged as soon as the hello arrives: the Fleet, Planner and Live pages show this text
    expect(source().kind).toBe('measured')
    expect(source().stale).toMatch(
      /^profile \S+ was fitted when pi announced slowdown ×2 · .*; it now announces slowdown ×20 · .*: planning with its layers measured again/
    )
    const after = await batch()
    console.info(
      `slowdown 2 → 20: before the change exit ${before.summary.plan.exit}/${before.summary.plan.deviceLayers} met ${before.summary.metShare}; after it, planned on the tables timed again: exit ${after.summary.plan.exit}/${after.summary.plan.deviceLayers} (${after.summary.plan.predictedMs.toFixed(1)} ms predicted), p50 ${after.summary.p50Ms.toFixed(1)} ms, met ${after.summary.metShare}`
    )
    expect(after.summary.metShare).toBeGreaterThanOrEqual(0.9)
    expect(source().stale).not.toBeNull() // until it is recalibrated
    // recalibrated at its new speed: the flag goes, the new profile plans
    const again = core.startCampaign('pi', 'model', 2)
    await campaignFinished(core, again, 120_000)
    expect(source()).toMatchObject({ kind: 'profile', stale: null })
  }, 300_000)
})
