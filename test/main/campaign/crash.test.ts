import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { callConsole, findConsole } from '../../../src/main/cli/client.js'
import { Store } from '../../../src/main/store/store.js'
import type { CampaignStatus } from '../../../src/main/campaign/runner.js'
import { CHUNK, LAYER_PASSES } from '../../../src/main/campaign/runner.js'
import { layerGrid } from '../../../src/main/campaign/layers.js'
import { freePort, root, spawnAgent, stopAgent, waitFor, type AgentProc } from '../console/harness.js'

const KILLS = Number(process.env['CRASH_KILLS'] ?? 20)
const edgent = join(root, 'bin', 'edgent.js')

describe(`crash safety: SIGKILL the console during a campaign ${KILLS} times`, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'edgent-crash-'))
  let serve: ChildProcess | null = null
  let agent: AgentProc | null = null
  afterAll(async () => {
    serve?.kill('SIGKILL')
    await stopAgent(agent)
  })

  it('keeps the database intact, every committed chunk whole, and marks interrupted campaigns', async () => {
    const [mqttPort, httpPort] = [await freePort(), await freePort()]
    let starts = 0
    let died: string | null = null
    const start = async () => {
      rmSync(join(dataDir, 'console.json'), { force: true }) // a killed console leaves its file behind
      // Each console's stderr goes to its own file, so that a console dying on its own is explained.
      const log = openSync(join(dataDir, `serve-${starts++}.log`), 'w')
      serve = spawn(
        process.execPath,
        [
          edgent,
          'serve',
          '--no-local-agent',
          '--data-dir',
          dataDir,
          '--mqtt-port',
          String(mqttPort),
          '--mqtt-host',
          '127.0.0.1',
          '--http-port',
          String(httpPort),
          '--no-mqtts',
          '--log-level',
          'warn'
        ],
        { stdio: ['ignore', 'ignore', log] }
      )
      const child = serve
      child.once('exit', (code, signal) => {
        if (signal !== 'SIGKILL' && signal !== 'SIGTERM')
          died = `console ${starts - 1} exited by itself (code ${code}): ${readFileSync(join(dataDir, `serve-${starts - 1}.log`), 'utf8').slice(-2000)}`
      })
      return waitFor('console up', () => findConsole(dataDir), 60_000)
    }
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
        throw died ? new Error(died) : err
      }
    }
    let c = await start()
    const { token } = await call<{ token: string }>(c, 'pair', { id: 'pi-crash' })
    agent = spawnAgent(`mqtt://127.0.0.1:${mqttPort}`, 'pi-crash', token)
    const online = async (cf: NonNullable<typeof c>) => {
      for (let i = 0; i < 200; i++) {
        if (died) throw new Error(died)
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
      serve!.kill('SIGKILL')
      await new Promise<void>((r) => serve!.once('exit', () => r()))
      c = await start()
    }
    await online(c)
    const campaigns = await call<CampaignStatus[]>(c, 'campaigns', {})
    serve!.kill('SIGTERM')
    await new Promise<void>((r) => serve!.once('exit', () => r()))

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
