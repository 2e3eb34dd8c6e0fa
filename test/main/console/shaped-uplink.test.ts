import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../src/main/console/console.js'
import { lookupMap } from '../../../src/shared/algorithms/planner.js'
import { exitPath } from '../../../src/shared/contracts/manifest.js'
import { batchPageRows } from '../../../src/shared/contracts/agent-api.js'
import { AgentNetns, netnsUnavailable } from '../../../src/main/testbed/netns.js'
import { deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from './harness.js'

const why = netnsUnavailable()

// Needs root for the namespace and tc (CI runs as root); elsewhere the reason is printed as the skip.
describe.skipIf(why !== null)(`shaped uplink (tc in a network namespace)${why ? ` — skipped: ${why}` : ''}`, () => {
  const ns = new AgentNetns(150 + (process.pid % 90))
  let core: EdgentConsole
  let agent: AgentProc | null = null
  const REQUIREMENT_MS = 100

  beforeAll(async () => {
    ns.create()
    core = await startConsole({ mqttHost: ns.hostIp, probeIntervalMs: 1000 })
    // A device 80× slower than this machine (slowdown emulation), so that the link decides the plan with a
    // margin over timing noise: edge-only costs ≈ 52 ms of transfer at 500 kbps and ≈ 250 ms at 100 kbps,
    // and the map switches from a device-side plan to edge-only near 260–290 kbps (measured over runs here).
    // (With 40× it landed at 370–540 kbps over runs here, and at 524 once: the plan at 500 kbps flipped.)
    // The device offers f32 only: the raw u8 frame (a quarter of the bytes) would move that switch to ≈ 70 kbps.
    agent = spawnAgent(`mqtt://${ns.hostIp}:${core.mqttPort}`, 'pi-ns', core.pair('pi-ns').token, ['--slowdown', '80', '--codecs', 'f32'], ns.exec)
    await waitFor('pi-ns online', () => deviceState(core, 'pi-ns') === 'online', 60_000)
  }, 90_000)
  afterAll(async () => {
    await stopAgent(agent)
    await core?.stop()
    ns.destroy()
  })

  const estimate = () => core.devices().find((d) => d.id === 'pi-ns')!.uplinkEstimateKbps
  const current = () => core.devices().find((d) => d.id === 'pi-ns')!.plan

  it('tracks 500 then 100 kbps within 15 % in 5 s of each change, and the plan follows the configuration map', async () => {
    // plan once at the live estimate of the unshaped link: this sets the requirement the console
    // replans against; then shape it to 500 kbps and to 100 kbps
    await core.infer({ agent: 'pi-ns', count: 3, latencyMs: REQUIREMENT_MS })
    await waitFor('an estimate of the unshaped link', () => (estimate() ?? 0) > 2000, 10_000)
    const times: Record<string, number> = {}
    for (const kbps of [500, 100]) {
      ns.shapeUplink(kbps)
      const t0 = Date.now()
      await waitFor(
        `estimate within 15 % of ${kbps} kbps`,
        () => {
          const e = estimate()
          return e !== null && Math.abs(e - kbps) <= 0.15 * kbps
        },
        5_000,
        50
      ).catch((err: Error) => {
        const samples = core.store.bandwidth.latest('pi-ns', 12).reverse()
        throw new Error(`${err.message}; latest samples: ${JSON.stringify(samples)}`)
      })
      times[kbps] = Date.now() - t0
      const e = estimate()!
      const choice = lookupMap(core.planning.configMap('pi-ns', REQUIREMENT_MS), e)!
      await waitFor(
        "the plan of the map's interval",
        () => {
          const p = current()
          return p && p.exit === choice.exit && p.deviceLayers === choice.deviceLayers
        },
        2_000
      )
    }
    console.log(`shaped uplink: estimate within 15 % after ${times['500']} ms (500 kbps) and ${times['100']} ms (100 kbps)`)
    console.log(
      `shaped uplink: configuration map ${JSON.stringify(core.planning.configMap('pi-ns', REQUIREMENT_MS).map((r) => [Math.round(r.fromKbps), r.exit, r.deviceLayers]))}`
    )
    const p500 = lookupMap(core.planning.configMap('pi-ns', REQUIREMENT_MS), 500)!
    const p100 = lookupMap(core.planning.configMap('pi-ns', REQUIREMENT_MS), 100)!
    expect([p500.exit, p500.deviceLayers]).not.toEqual([p100.exit, p100.deviceLayers]) // the link really decides here
    expect(current()!.reason).toMatch(/configuration map/)
    expect(times['500']).toBeLessThanOrEqual(5_000)
    expect(times['100']).toBeLessThanOrEqual(5_000)
  }, 120_000)

  it('a batch whose rows would take longer than the keepalive grace to upload in one reply completes in pages, the device staying online', async () => {
    // 150 frames cut before exit 1's last layer (a few hundred bytes each, every stage timed) at 40 kbps:
    // one reply of their rows (~0.65 KB each) takes ~20 s, past the broker's 15 s keepalive grace.
    // Before paging, the device dropped offline there and, its reply sent again at every reconnect,
    // never came back.
    ns.shapeUplink(40)
    await waitFor('estimate within 15 % of 40 kbps', () => Math.abs((estimate() ?? 0) - 40) <= 6, 10_000, 50)
    const states = new Set<string>()
    const watch = setInterval(() => states.add(deviceState(core, 'pi-ns') ?? 'unknown'), 20)
    try {
      const deviceLayers = exitPath(core.model, 1).length - 1
      const { summary, rows } = await core.infer({ agent: 'pi-ns', count: 150, latencyMs: 1000, plan: { exit: 1, deviceLayers } })
      expect(summary.completed).toBe(150)
      expect(summary.lost).toBe(0)
      expect(rows.map((r) => r.sample)).toEqual(Array.from({ length: 150 }, (_, i) => i)) // each page continues where the last ended
      expect(rows.every((r) => r.stages)).toBe(true)
      expect(batchPageRows(estimate()!)).toBeLessThan(150)
    } finally {
      clearInterval(watch)
    }
    expect(states.has('offline')).toBe(false)
  }, 150_000)
})
