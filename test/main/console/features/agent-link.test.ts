/**
 * The agent link against an agent that answers wrongly: a reply that fails its command's schema, a
 * reply on another command's topic, an error reply and silence each give the caller one clear
 * error; the console logs it and stays up (a later request still works).
 */
import { readFileSync } from 'node:fs'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../../src/main/console/console.js'
import { encodeJson } from '../../../../src/shared/contracts/messages.js'
import { topics } from '../../../../src/shared/contracts/topics.js'
import { startConsole } from '../harness.js'

describe('the console refuses malformed agent replies', () => {
  let core: EdgentConsole & { logPath: string }
  let agent: mqtt.MqttClient
  /** What the fake agent answers to each request, by command. */
  let answer: (command: string, transaction: string) => { topic: string; body: unknown } | null

  beforeAll(async () => {
    core = await startConsole()
    const token = core.pair('pi-liar').token
    agent = await mqtt.connectAsync(`mqtt://127.0.0.1:${core.mqttPort}`, {
      clientId: 'pi-liar',
      username: 'pi-liar',
      password: token,
      reconnectPeriod: 0,
      protocolVersion: 4
    })
    await agent.subscribeAsync(`edgent/v1/agents/pi-liar/request/+`, { qos: 1 })
    agent.on('message', (topic, payload) => {
      const command = topic.split('/').pop()!
      const { transaction } = JSON.parse(payload.toString()) as { transaction: string }
      const a = answer(command, transaction)
      if (a) agent.publish(a.topic, Buffer.from(encodeJson(a.body)), { qos: 1 })
    })
  })
  afterAll(async () => {
    await agent?.endAsync(true)
    await core?.stop()
  })

  it('refuses a reply that fails the schema, naming the agent, the command and the field', async () => {
    answer = (command, transaction) => ({
      topic: topics.response('pi-liar', command),
      body: { transaction, status: 'ok', data: { bytes: 4096, ackMs: 3, rttMs: 1, uplinkSampleKbps: 'fast' } }
    })
    await expect(core.request('pi-liar', 'probe', { bytes: 4096 }, 5000)).rejects.toThrow(
      'agent pi-liar: malformed reply to "probe": uplinkSampleKbps: Invalid input: expected number, received string'
    )
    expect(readFileSync(core.logPath, 'utf8')).toMatch(/"command":"probe".*refused a malformed reply/)
  })

  it("refuses a reply published on another command's topic", async () => {
    answer = (_command, transaction) => ({
      topic: topics.response('pi-liar', 'set-uplink'),
      body: { transaction, status: 'ok', data: { previousKbps: 1, kbps: 2 } }
    })
    await expect(core.request('pi-liar', 'probe', { bytes: 4096 }, 1500)).rejects.toThrow('agent pi-liar did not answer "probe" within 2 s')
    expect(readFileSync(core.logPath, 'utf8')).toMatch(/response\/set-uplink: answers transaction [0-9a-f-]+, which was a \\"probe\\" request/)
  })

  it('passes on an error reply as the agent worded it, and the console answers the next request', async () => {
    answer = (command, transaction) => ({
      topic: topics.response('pi-liar', command),
      body: { transaction, status: 'error', error: 'this agent has no emulated uplink' }
    })
    await expect(core.request('pi-liar', 'set-uplink', { kbps: 500 }, 5000)).rejects.toThrow('agent pi-liar: this agent has no emulated uplink')
    answer = (command, transaction) => ({
      topic: topics.response('pi-liar', command),
      body: { transaction, status: 'ok', data: { previousKbps: 1000, kbps: 500 } }
    })
    expect(await core.request('pi-liar', 'set-uplink', { kbps: 500 }, 5000)).toEqual({ previousKbps: 1000, kbps: 500 })
  })
})
