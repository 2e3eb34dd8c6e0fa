import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { callConsole } from '../../../../../src/main/cli/client.js'
import { Store } from '../../../../../src/main/store/store.js'
import type { CampaignStatus } from '../../../../../src/main/console/features/campaigns/campaigns.js'
import { CHUNK, LAYER_PASSES } from '../../../../../src/main/console/features/campaigns/layers.js'
import { layerGrid } from '../../../../../src/main/calibration/layers.js'
import { freePort, spawnAgent, stopAgent, type AgentProc } from '../../harness.js'
import { startServe, type ServeProcess } from '../../../serve-process.js'

const KILLS = Number(process.env['CRASH_KILLS'] ?? 20)

describe(`crash safety: SIGKILL the console during a campaign ${KILLS} times`, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'edgent-crash-'))
  let serve: ServeProcess | null = null
  let agent: AgentProc | null = null
  afterAll(async () => {
    await serve?.kill('SIGKILL')
    await stopAgent(agent)
  })

  it('keeps the database intact, every committed chunk whole, and marks interrupted campaigns', async () => {
    const [mqttPort, httpPort] = [await freePort(), await freePort()]
    const start = async () => {
      rmSync(join(dataDir, 'console.json'), { force: true }) // a killed console leaves its file behind
      serve = await startServe({ dataDir, mqttPort, httpPort, args: ['--no-local-agent', '--no-mqtts'], timeoutMs: 60_000 })
      return serve.control
    }
    const died = () => serve?.died() ?? null
    /** callConsole, explaining a refused connection by the console's own exit when that is what happened. */
    const call = async <T>(
      cf: NonNullable<Awaited<ReturnType<typeof start>>>,
      method: Parameters<typeof callConsole>[1],
      args: Record<string, unknown>
    ): Promise<T> => {
      try {
        return (await callConsole(cf, method, args as never)) as T
      } catch (err) {
        await new Promise((r) => setTimeout(r, 300))
        throw died() ? new Error(died()!) : err
      }
    }
    let c = await start()
    const { token } = await call<{ token: string }>(c, 'pair', { id: 'pi-crash' })
    agent = spawnAgent(`mqtt://127.0.0.1:${mqttPort}`, 'pi-crash', token)
    const online = async (cf: NonNullable<typeof c>) => {
      for (let i = 0; i < 200; i++) {
        if (died()) throw new Error(died()!)
        const list = await call<{ id: string; state: string }[]>(cf, 'devices', {})
        if (list.some((d) => d.id === 'pi-crash' && d.state === 'online')) return
        await new Promise((r) => setTimeout(r, 100))
      }
      throw new Error('pi-crash did not come online')
    }
    for (let k = 0; k < KILLS; k++) {
      await online(c)
      const { id } = await call<{ id: string }>(c, 'campaignStart', { agent: 'pi-crash', kind: 'layers', reps: 1 })
      // kill at a different point of the campaign each time
      const target = 12 + ((k * 37) % 400)
      for (let i = 0; i < 300; i++) {
        const s = await call<CampaignStatus>(c, 'campaignStatus', { id })
        if (s.measurements >= target || s.status !== 'running') break
        await new Promise((r) => setTimeout(r, 20))
      }
      await serve!.kill('SIGKILL')
      c = await start()
    }
    await online(c)
    const campaigns = await call<CampaignStatus[]>(c, 'campaigns', {})
    await serve!.kill('SIGTERM')

    expect(campaigns).toHaveLength(KILLS)
    const store = new Store(join(dataDir, 'edgent.db'))
    store.start()
    try {
      expect(store.check()).toEqual({ integrity: 'ok', foreignKeyViolations: 0 })
      const grid = layerGrid().length
      for (const s of campaigns) {
        expect(['interrupted', 'done']).toContain(s.status)
        const rows = store.campaigns.measurements(s.id)
        const edge = rows.filter((r) => r.side === 'edge').length
        const device = rows.filter((r) => r.side === 'device').length
        // chunks are committed whole: each side holds whole passes over the grid, then whole chunks
        for (const n of [edge, device]) expect((n % grid) % CHUNK, `campaign ${s.id}: ${n} rows`).toBe(0)
        if (s.status === 'done') expect(edge + device).toBe(2 * grid * LAYER_PASSES)
        // in each pass the device side starts after the edge side
        expect(edge >= device && edge - device <= grid, `campaign ${s.id}: edge ${edge}, device ${device}`).toBe(true)
        if (device % grid !== 0) expect(edge).toBe(Math.ceil(device / grid) * grid)
      }
      expect(campaigns.filter((s) => s.status === 'interrupted').length).toBeGreaterThan(KILLS / 2)
    } finally {
      store.stop()
    }
    expect(existsSync(join(dataDir, 'console.json'))).toBe(false)
  }, 900_000)
})
