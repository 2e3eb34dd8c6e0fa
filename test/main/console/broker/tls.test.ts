/**
 * MQTT over TLS with the embedded broker: an agent pinning the console's CA co-infers (by flags, and
 * by the credentials file alone); a client with no CA, another console's CA, or plaintext on the TLS
 * port is refused, and the console carries on.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../../src/main/console/console.js'
import { ensureBrokerTls } from '../../../../src/main/console/broker/tls.js'
import { agentEntry, deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../harness.js'

describe('MQTT over TLS', () => {
  let core: EdgentConsole & { logPath: string }
  const dir = mkdtempSync(join(tmpdir(), 'edgent-tls-'))
  const agents: AgentProc[] = []
  let url = ''

  beforeAll(async () => {
    core = await startConsole({ mqttTlsPort: 0, mqttTlsHost: '127.0.0.1' })
    url = `mqtts://127.0.0.1:${core.mqttTlsPort}`
  })
  afterAll(async () => {
    for (const a of agents) await stopAgent(a)
    await core?.stop()
  })

  it('made a CA and listens for mqtts://', () => {
    expect(core.mqttTlsPort).toBeGreaterThan(0)
    expect(core.tls?.ca).toContain('BEGIN CERTIFICATE')
    expect(core.tls?.caSha256).toMatch(/^[0-9a-f]{64}$/)
  })

  it('an agent pinning the CA co-infers over TLS', async () => {
    const caFile = join(dir, 'ca.pem')
    writeFileSync(caFile, core.tls!.ca)
    const a = spawnAgent(url, 'secure', core.pair('secure').token, ['--ca', caFile])
    agents.push(a)
    await waitFor('secure online', () => deviceState(core, 'secure') === 'online', 30_000)
    const r = await core.infer({ agent: 'secure', count: 30, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 5, deviceLayers: 8 } })
    expect(r.summary).toMatchObject({ completed: 30, lost: 0 })
  }, 60_000)

  it('an agent started from its credentials file alone (token and CA inside, nothing on the command line)', async () => {
    const { token } = core.pair('from-file')
    const file = join(dir, 'from-file.json')
    writeFileSync(file, JSON.stringify({ schema: 1, id: 'from-file', broker: url, token, ca: core.tls!.ca }), { mode: 0o600 })
    let err = ''
    const child = spawn(process.execPath, [agentEntry, '--credentials', file, '--cache-dir', mkdtempSync(join(tmpdir(), 'edgent-cache-'))], {
      stdio: ['ignore', 'ignore', 'pipe']
    })
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
    agents.push({ child, stderr: () => err })
    await waitFor('from-file online', () => deviceState(core, 'from-file') === 'online', 30_000)
    expect(child.spawnargs.join(' ')).not.toContain(token)
    const r = await core.infer({ agent: 'from-file', count: 10, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 3, deviceLayers: 4 } })
    expect(r.summary).toMatchObject({ completed: 10, lost: 0 })
  }, 60_000)

  it('refuses a client with no CA, with another console CA, and plaintext on the TLS port', async () => {
    const { token } = core.pair('intruder')
    const opts = { clientId: 'intruder', username: 'intruder', password: token, protocolVersion: 4 as const, reconnectPeriod: 0, connectTimeout: 5000 }
    await expect(mqtt.connectAsync(url, { ...opts, rejectUnauthorized: true })).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i)
    const other = await ensureBrokerTls(mkdtempSync(join(tmpdir(), 'edgent-other-ca-')))
    await expect(
      mqtt.connectAsync(url, { ...opts, ca: other.ca, rejectUnauthorized: true, checkServerIdentity: () => undefined } as mqtt.IClientOptions)
    ).rejects.toThrow(/self[- ]signed|unable to verify|certificate|signature/i)
    const plain = await new Promise<string>((resolve) => {
      const s = connect(core.mqttTlsPort, '127.0.0.1', () => s.write(Buffer.from([0x10, 0x0c, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 2, 0, 30, 0, 0])))
      s.resume()
      s.on('close', () => resolve('closed'))
      s.on('error', () => resolve('closed'))
      setTimeout(() => resolve('open'), 5000)
    })
    expect(plain).toBe('closed')
    expect(deviceState(core, 'secure')).toBe('online')
  }, 30_000)
})
