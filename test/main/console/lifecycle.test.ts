/** The console's one lifecycle list, and a console stopped in the middle of a campaign. */
import { join } from 'node:path'
import pino from 'pino'
import { afterAll, describe, expect, it } from 'vitest'
import { Lifecycle } from '../../../src/main/console/lifecycle.js'
import { Store } from '../../../src/main/store/store.js'
import { deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from './harness.js'

describe('the lifecycle list', () => {
  const quiet = pino({ level: 'silent' })
  const module = (name: string, seen: string[], fail?: 'start' | 'stop') => ({
    name,
    module: {
      start: async () => {
        seen.push(`start ${name}`)
        if (fail === 'start') throw new Error(`${name} cannot start`)
      },
      stop: () => {
        seen.push(`stop ${name}`)
        if (fail === 'stop') throw new Error(`${name} cannot stop`)
      }
    }
  })

  it('starts in order and stops in reverse, each once', async () => {
    const seen: string[] = []
    const l = new Lifecycle([module('a', seen), module('b', seen), module('c', seen)], quiet)
    expect(l.names).toEqual(['a', 'b', 'c'])
    await l.start()
    await l.stop()
    await l.stop()
    expect(seen).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a'])
  })

  it('stops what had started when a start fails, and rethrows', async () => {
    const seen: string[] = []
    const l = new Lifecycle([module('a', seen), module('b', seen), module('c', seen, 'start'), module('d', seen)], quiet)
    await expect(l.start()).rejects.toThrow('c cannot start')
    expect(seen).toEqual(['start a', 'start b', 'start c', 'stop b', 'stop a'])
  })

  it('still stops the others when one stop fails', async () => {
    const seen: string[] = []
    const l = new Lifecycle([module('a', seen), module('b', seen, 'stop'), module('c', seen)], quiet)
    await l.start()
    await l.stop()
    expect(seen.slice(3)).toEqual(['stop c', 'stop b', 'stop a'])
  })
})

describe('a console stopped in the middle of a campaign', () => {
  let agent: AgentProc | null = null
  afterAll(() => stopAgent(agent))

  it('interrupts the campaign, keeps what it measured, leaves nothing running and a sound database', async () => {
    const core = await startConsole()
    expect((core as unknown as { lifecycle: Lifecycle }).lifecycle.names).toEqual([
      'store',
      'uploads',
      'model jobs',
      'edge runtime',
      'served models',
      'fleet',
      'latency sources',
      'planning',
      'audits',
      'agent link',
      'broker',
      'distribution',
      'edge workers',
      'co-inference',
      'link monitor',
      'campaigns'
    ])
    const { token } = core.pair('pi-stop')
    agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'pi-stop', token)
    await waitFor('pi-stop online', () => deviceState(core, 'pi-stop') === 'online', 30_000)
    const id = core.startCampaign('pi-stop', 'layers', 3)
    // at least one chunk stored, the next one under way
    await waitFor('a chunk measured', () => (core.campaigns.status(id)?.measurements ?? 0) > 0, 60_000)
    expect(core.campaigns.active).toEqual([id])
    const measured = core.campaigns.status(id)!.measurements
    await core.stop()
    expect(core.campaigns.active).toEqual([])
    // nothing the campaign was waiting for writes after the stop (an orphan would hit a closed store)
    await new Promise((r) => setTimeout(r, 1000))
    const store = new Store(join(core.opts.dataDir, 'edgent.db'))
    store.start()
    try {
      const c = store.campaigns.get(id)!
      expect(c).toMatchObject({ status: 'interrupted', error: 'the console stopped while it ran (its measurements are kept)' })
      expect(c.finishedAt).not.toBeNull()
      expect(store.campaigns.measurementCount(id)).toBeGreaterThanOrEqual(measured)
      expect(store.check()).toEqual({ integrity: 'ok', foreignKeyViolations: 0 })
      // a stopped console started again does not call it a crash: nothing was left running
      expect(store.recoverFromCrash()).toEqual({ runs: 0, campaigns: 0 })
    } finally {
      store.stop()
    }
  }, 120_000)
})
