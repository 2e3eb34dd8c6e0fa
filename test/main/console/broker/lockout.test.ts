/**
 * No device locked out (issue 30, item 2): an agent refused at CONNECT keeps trying, with backoff,
 * and says why; a flood of wrong tokens for a paired id, from rotating addresses, cannot keep the
 * holder of the right token out.
 */
import { spawn } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Aedes, type AuthenticateError } from 'aedes'
import { afterAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../../src/main/console/console.js'
import { deviceState, root, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../harness.js'

const attackerScript = join(root, 'test', 'fixtures', 'mqtt-attacker.ts')

describe('an agent refused at CONNECT', () => {
  let agent: AgentProc | null = null
  afterAll(() => stopAgent(agent))

  it('keeps trying with backoff after a refusal, says why, and connects once the broker lets it in', async () => {
    const connects: number[] = []
    const broker = await Aedes.createBroker({
      authenticate: (_client, _user, _pass, done) => {
        connects.push(Date.now())
        // the first two CONNECTs refused as a console under a login backoff refuses them (CONNACK 3)
        if (connects.length <= 2) return done(Object.assign(new Error('too many failed logins: retry later'), { returnCode: 3 }) as AuthenticateError, false)
        done(null, true)
      }
    })
    const server = createServer(broker.handle)
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    let online = false
    broker.on('client', () => (online = true))
    try {
      agent = spawnAgent(`mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`, 'pi-refused', 'a-token-of-sixteen-chars')
      await waitFor('the agent connected after two refusals', () => online, 30_000)
      expect(connects).toHaveLength(3)
      // backoff: the retries are spaced, not hammered
      expect(connects[2]! - connects[0]!).toBeGreaterThanOrEqual(1000)
      expect(agent.stderr()).toContain('the console is not accepting this agent for now')
    } finally {
      await stopAgent(agent)
      agent = null
      await new Promise<void>((r) => server.close(() => r()))
      await new Promise<void>((r) => broker.close(() => r()))
    }
  }, 60_000)
})

describe('a wrong-token flood against a paired id, from rotating addresses', () => {
  let core: EdgentConsole
  let agent: AgentProc | null = null
  afterAll(async () => {
    await stopAgent(agent)
    await core?.stop()
  })

  it('does not keep its restarted real agent out: back online within 30 s while the flood goes on', async () => {
    core = await startConsole()
    const { token } = core.pair('pi-lock')
    const url = `mqtt://127.0.0.1:${core.mqttPort}`
    agent = spawnAgent(url, 'pi-lock', token)
    await waitFor('pi-lock online', () => deviceState(core, 'pi-lock') === 'online', 30_000)
    const attacker = spawn(
      'nice',
      ['-n', '10', process.execPath, '--import', 'tsx', attackerScript, 'wrong-token', String(core.mqttPort), '120', '4', 'pi-lock'],
      {
        cwd: root,
        stdio: ['ignore', 'pipe', 'inherit']
      }
    )
    let out = ''
    attacker.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    const exited = new Promise<void>((r) => attacker.once('exit', () => r()))
    try {
      await waitFor('the attacker started', () => out.includes('attacking\n'), 60_000)
      // the id is under attack: more than the backoff's threshold of wrong tokens in its window
      await waitFor('the id marked as attacked', () => core.broker!.byId.blockedFor('pi-lock') > 0, 30_000)
      await stopAgent(agent)
      await waitFor('pi-lock offline', () => deviceState(core, 'pi-lock') === 'offline', 30_000)
      expect(core.broker!.byId.blockedFor('pi-lock')).toBeGreaterThan(0)
      const t0 = Date.now()
      agent = spawnAgent(url, 'pi-lock', token)
      await waitFor('the restarted agent online under the flood', () => deviceState(core, 'pi-lock') === 'online', 30_000)
      const backMs = Date.now() - t0
      attacker.kill('SIGUSR2')
      await exited
      const summary = JSON.parse(out.trim().split('\n').pop()!) as { tries: number; counts: Record<string, number> }
      console.log(
        `wrong-token flood on a paired id: ${summary.tries} tries (CONNACK codes ${JSON.stringify(summary.counts)}); the restarted agent was back online in ${backMs} ms`
      )
      expect(summary.counts['0']).toBeUndefined() // nobody else got in
      expect(summary.counts['4'] ?? 0).toBeGreaterThan(10)
    } finally {
      if (attacker.exitCode === null && attacker.signalCode === null) attacker.kill('SIGKILL')
    }
  }, 120_000)
})
