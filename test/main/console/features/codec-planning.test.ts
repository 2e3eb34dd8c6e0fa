/**
 * The console plans over (exit, deviceLayers, codec) with what the agent announces: a real agent
 * process 30× slower than this machine (the slowdown emulation), the shipped model.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../../src/main/console/console.js'
import { candidateAt, latencyOf, plan as planAt } from '../../../../src/shared/algorithms/planner.js'
import { CODECS } from '../../../../src/shared/algorithms/codecs.js'
import { deviceState, spawnAgent, startConsole, stopAgent, unsplitLabels, waitFor, type AgentProc } from '../harness.js'

describe('planning with codecs', () => {
  let core: EdgentConsole & { logPath: string }
  let agent: AgentProc | null = null

  beforeAll(async () => {
    core = await startConsole()
    const { token } = core.pair('slow-pi')
    agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'slow-pi', token, ['--slowdown', '30'])
    await waitFor('slow-pi online', () => deviceState(core, 'slow-pi') === 'online')
  }, 60_000)
  afterAll(async () => {
    await stopAgent(agent)
    await core?.stop()
  })

  it('prices every codec the agent announces with its measured encoding, and plans the raw u8 frame where it wins', async () => {
    const hello = core.devices().find((d) => d.id === 'slow-pi')!.hello!
    expect(hello.codecs).toEqual([...CODECS])
    for (const c of CODECS) expect(hello.codecEncodeNs?.[c]).toBeGreaterThanOrEqual(0)
    await core.sources.deviceTable('slow-pi')
    const table = core.planning.costTable('slow-pi')
    const last = table.exits[table.exits.length - 1]!
    const n = last[0]!.layers
    // u8 is offered edge-only, at a quarter of the float32 input's bytes
    const u8 = candidateAt(table, last[0]!.exit, 0, 'u8')!
    expect(u8.uploadBytes * 4).toBe(candidateAt(table, last[0]!.exit, 0)!.uploadBytes)
    expect(last.filter((c) => c.codec === 'u8').map((c) => c.deviceLayers)).toEqual([0])
    // a device 30× slower and a 2 Mbps link: the final exit on the edge, the frame sent raw
    const cond = { uplinkKbps: 2000, latencyMs: 1000 }
    const expected = planAt(table, cond)!
    expect(expected).toMatchObject({ exit: last[0]!.exit, deviceLayers: 0, codec: 'u8' })
    expect(latencyOf(u8, cond)).toBeLessThan(latencyOf(candidateAt(table, last[0]!.exit, n)!, cond))
    const { summary, rows } = await core.infer({ agent: 'slow-pi', count: 20, latencyMs: 1000, uplinkKbps: 2000 })
    expect(summary.plan).toMatchObject({ exit: expected.exit, deviceLayers: 0, codec: 'u8' })
    expect(rows.every((r) => r.codec === 'u8')).toBe(true)
    expect(rows.map((r) => r.predictedLabel)).toEqual(await unsplitLabels(expected.exit, 20))
    // the stored plan says so, and the configuration map names the codec of each interval
    expect(core.devices().find((d) => d.id === 'slow-pi')!.plan).toMatchObject({ codec: 'u8' })
    const map = core.planning.configMap('slow-pi', 1000)
    expect(map.some((iv) => iv.codec === 'u8' && iv.deviceLayers === 0)).toBe(true)
  }, 120_000)

  it('plans an agent restarted with fewer codecs with those only (its maps are not reused)', async () => {
    const before = core.planning.configMap('slow-pi', 1000)
    expect(before.some((iv) => iv.codec === 'u8')).toBe(true)
    await stopAgent(agent)
    await waitFor('slow-pi offline', () => deviceState(core, 'slow-pi') === 'offline')
    agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'slow-pi', core.pair('slow-pi', { force: true }).token, ['--slowdown', '30', '--codecs', 'f32'])
    await waitFor(
      'slow-pi online with f32 only',
      () => deviceState(core, 'slow-pi') === 'online' && core.devices().find((d) => d.id === 'slow-pi')!.hello!.codecs!.length === 1
    )
    const after = core.planning.configMap('slow-pi', 1000)
    expect(after.every((iv) => iv.codec === 'f32')).toBe(true)
    const { summary, rows } = await core.infer({ agent: 'slow-pi', count: 5, latencyMs: 1000, uplinkKbps: 2000 })
    expect(summary.plan.codec ?? 'f32').toBe('f32')
    expect(rows.every((r) => (r.codec ?? 'f32') === 'f32')).toBe(true)
  }, 120_000)
})
