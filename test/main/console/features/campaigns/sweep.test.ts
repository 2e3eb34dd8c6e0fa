/** Kind `sweep`: co-inference over bandwidths × requirements on a real agent with an emulated uplink. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../../../src/main/console/console.js'
import { uploadBytes } from '../../../../../src/shared/contracts/manifest.js'
import { campaignFinished, deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../../harness.js'

describe('sweep campaign', () => {
  let core: EdgentConsole
  let agent: AgentProc | null = null
  let plain: AgentProc | null = null

  beforeAll(async () => {
    core = await startConsole()
    const broker = `mqtt://127.0.0.1:${core.mqttPort}`
    // A Pi-4-class device (factor 8) behind an application-level 1 Mbps uplink.
    agent = spawnAgent(broker, 'pi-sweep', core.pair('pi-sweep').token, ['--uplink-kbps', '1000', '--slowdown', '8'])
    plain = spawnAgent(broker, 'pi-real', core.pair('pi-real').token)
    await waitFor('agents online', () => deviceState(core, 'pi-sweep') === 'online' && deviceState(core, 'pi-real') === 'online')
  })
  afterAll(async () => {
    await stopAgent(agent)
    await stopAgent(plain)
    await core?.stop()
  })

  const finished = (id: string) => campaignFinished(core, id)

  it('plans and co-infers at every point, measures against predicted, and restores the uplink', async () => {
    const progress: number[] = []
    core.on('campaign', (s: { kind: string; progress: number }) => s.kind === 'sweep' && progress.push(s.progress))
    const id = core.startCampaign('pi-sweep', 'sweep', 4, { bandwidthsKbps: [50, 1000, 20000], latenciesMs: [30, 1000] })
    const s = await finished(id)
    expect(s.status, s.error ?? '').toBe('done')
    const w = s.sweep!
    expect(w.points.map((p) => [p.uplinkKbps, p.latencyMs])).toEqual([
      [50, 30],
      [50, 1000],
      [1000, 30],
      [1000, 1000],
      [20000, 30],
      [20000, 1000]
    ])
    expect(w.points.every((p) => p.completed === 4)).toBe(true)
    expect(progress.at(-1)).toBe(1)
    expect(progress.length).toBeGreaterThanOrEqual(6)
    // Different bandwidths, different plans: at 50 kbps the input alone takes ~0.5 s to send.
    const plans = new Set(w.points.map((p) => `${p.exit}/${p.deviceLayers}`))
    expect(plans.size).toBeGreaterThan(1)
    const slow = w.points.find((p) => p.uplinkKbps === 50 && p.latencyMs === 1000)!
    const m = core.model
    // Whatever was sent crossed the 50 kbps link for real: the measured time covers its transfer.
    const sent = slow.deviceLayers < slow.layers ? uploadBytes(m, slow.exit, slow.deviceLayers) : 0
    expect(slow.measuredMs).toBeGreaterThanOrEqual((sent * 8) / 50)
    console.log(
      `sweep: median error ${(w.medianRelError! * 100).toFixed(1)} %; points ${w.points.map((p) => `${p.uplinkKbps}/${p.latencyMs}: e${p.exit}/${p.deviceLayers} ${p.predictedMs.toFixed(1)}→${p.measuredMs.toFixed(1)}`).join(', ')}`
    )
    expect(w.medianRelError).not.toBeNull()
    // Each point is one stored run linked to the campaign.
    expect(core.store.runs.countForCampaign(id)).toBe(6)
    // The uplink went back to 1000 kbps.
    const again = await core.request('pi-sweep', 'set-uplink', { kbps: 1000 }, 5000)
    expect(again.previousKbps).toBe(1000)
  }, 250_000)

  it('fails clearly on an agent whose link cannot be set, keeping nothing half-done', async () => {
    const id = core.startCampaign('pi-real', 'sweep', 2)
    const s = await finished(id)
    expect(s.status).toBe('failed')
    expect(s.error).toContain('this agent has no emulated uplink (it was started without --uplink-kbps)')
    expect(s.sweep!.points).toEqual([])
  })

  it('refuses a malformed grid before starting', () => {
    expect(() => core.startCampaign('pi-sweep', 'sweep', 2, { bandwidthsKbps: [] })).toThrow('a sweep needs 1..50 bandwidths, got 0')
    expect(() => core.startCampaign('pi-sweep', 'sweep', 2, { latenciesMs: [100, -1] })).toThrow('sweep latency requirements must be numbers in 1..3600000')
    expect(() => core.startCampaign('pi-sweep', 'sweeps', 2)).toThrow('unknown campaign kind "sweeps" (kinds: layers, model, sweep, plans)')
  })
})
