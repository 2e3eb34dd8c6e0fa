import { afterAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../src/main/console/console.js'
import { deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from './harness.js'

describe('an agent reconnects after the console restarts', () => {
  let core: EdgentConsole | null = null
  let agent: AgentProc | null = null
  afterAll(async () => {
    await stopAgent(agent)
    await core?.stop()
  })

  it('comes back online by itself, with its pairing kept in the store', async () => {
    core = await startConsole()
    const { dataDir } = core.opts
    const port = core.mqttPort
    agent = spawnAgent(`mqtt://127.0.0.1:${port}`, 'pi-r', core.pair('pi-r').token)
    await waitFor('pi-r online', () => deviceState(core!, 'pi-r') === 'online')
    await core.stop()
    core = null
    await new Promise((r) => setTimeout(r, 1500)) // the agent retries, backing off
    core = await startConsole({ dataDir, mqttPort: port })
    await waitFor('pi-r back online', () => deviceState(core!, 'pi-r') === 'online', 40_000)
    // the agent logged two connections (its log is written asynchronously)
    await waitFor('second "connected" in the agent log', () => (agent!.stderr().match(/"msg":"connected"/g) ?? []).length >= 2, 5_000)
    expect(deviceState(core, 'pi-r')).toBe('online')
  }, 90_000)
})
