import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../src/main/console/console.js'
import { deviceState, freePort, spawnAgent, spawnWorker, startConsole, stopAgent, unsplitLabels, waitFor, type AgentProc } from './harness.js'

const MOSQUITTO = '/usr/sbin/mosquitto'

describe("co-inference through Debian's mosquitto as the external broker", () => {
  let broker: ChildProcess
  let port = 0
  let core: EdgentConsole
  let agent: AgentProc | null = null
  let brokerLog = ''

  beforeAll(async () => {
    port = await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'edgent-mosquitto-'))
    const conf = join(dir, 'mosquitto.conf')
    // Loopback only; authentication and ACLs are the external broker's job (docs/brokers.md).
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n`)
    broker = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] })
    broker.stderr!.on('data', (d: Buffer) => (brokerLog += d.toString()))
    await waitFor('mosquitto listening', () => brokerLog.includes('running'), 10_000)
    core = await startConsole({ brokerUrl: `mqtt://127.0.0.1:${port}` })
    agent = spawnAgent(`mqtt://127.0.0.1:${port}`, 'pi-m', core.pair('pi-m').token)
    await waitFor('pi-m online', () => deviceState(core, 'pi-m') === 'online')
  })
  afterAll(async () => {
    await stopAgent(agent)
    await core?.stop()
    broker?.kill('SIGTERM')
  })

  it('runs the same co-inference, predictions equal to the unsplit model', async () => {
    const { summary, rows } = await core.infer({ agent: 'pi-m', count: 100, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 4, deviceLayers: 9 } })
    expect(summary).toMatchObject({ completed: 100, lost: 0, plan: { exit: 4, deviceLayers: 9 } })
    expect(rows.map((r) => r.predictedLabel)).toEqual(await unsplitLabels(4, 100))
    expect(brokerLog).toContain('New client connected')
  })

  it('carries an edge worker’s jobs and answers too (issue 34): the worker is tried, its answers are the unsplit model’s', async () => {
    const worker = spawnWorker(`mqtt://127.0.0.1:${port}`, 'w-m', core.workers.pair('w-m').token)
    try {
      await waitFor('w-m online', () => core.workers.list().find((w) => w.id === 'w-m')?.state === 'online', 30_000)
      const { summary, rows } = await core.infer({ agent: 'pi-m', count: 40, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 5, deviceLayers: 4 } })
      expect(summary).toMatchObject({ completed: 40, lost: 0 })
      expect(rows.map((r) => r.predictedLabel)).toEqual(await unsplitLabels(5, 40))
      // a worker that never answered is tried first; after that, the faster of it and the console's own pool
      expect(core.workers.list().find((w) => w.id === 'w-m')!.answered).toBeGreaterThanOrEqual(1)
    } finally {
      await stopAgent(worker)
    }
  }, 60_000)
})
