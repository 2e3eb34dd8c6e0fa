/**
 * The agent's link drops the QoS 1 publishes a lost connection left unacknowledged: mqtt.js would send
 * them again at every reconnect, and a message that cannot cross a slow link within the broker's
 * keepalive grace (a 2,000-row batch reply at 250 kbps) then dropped every new connection in turn —
 * the testbed's device never came back. Here a broker drops the connection on the first activation
 * frame; the frame's publish fails by name, the link reconnects, and the frame is not sent again.
 */
import mqttPacket from 'mqtt-packet'
import pino from 'pino'
import { afterEach, describe, expect, it } from 'vitest'
import { AgentLink } from '../../pi-agent/src/link.js'
import { topics } from '../../src/shared/contracts/topics.js'
import { tinyBroker } from '../fixtures/tiny-broker.js'

describe('AgentLink after a lost connection', () => {
  const cleanup: (() => unknown)[] = []
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f()
  })

  it('fails the unacknowledged publish with "connection lost", reconnects, and does not send it again', async () => {
    const frames: Buffer[] = []
    let connects = 0
    const { server, port } = await tinyBroker(
      ({ socket, packet }) => {
        if (packet.cmd !== 'publish' || packet.topic !== topics.activation('pi-x')) return
        frames.push(Buffer.from(packet.payload as Buffer))
        if (frames.length === 1)
          socket.destroy() // lost before its PUBACK
        else if (packet.messageId) socket.write(mqttPacket.generate({ cmd: 'puback', messageId: packet.messageId }))
      },
      () => connects++
    )
    cleanup.push(() => server.close())
    let connected = 0
    const link = new AgentLink(
      { brokerUrl: `mqtt://127.0.0.1:${port}`, id: 'pi-x', token: 't', log: pino({ level: 'silent' }) },
      { connected: () => connected++, message: () => undefined }
    )
    link.start()
    cleanup.push(() => link.stop())
    await expect.poll(() => connected, { timeout: 5000 }).toBe(1)
    const first = Buffer.alloc(4096, 7)
    await expect(link.publishAcked(topics.activation('pi-x'), first)).rejects.toThrow(/connection lost before the console acknowledged/)
    // backoff: 2 s after the first close
    await expect.poll(() => connected, { timeout: 10_000 }).toBe(2)
    const second = Buffer.alloc(64, 3)
    const ackMs = await link.publishAcked(topics.activation('pi-x'), second)
    expect(ackMs).toBeGreaterThanOrEqual(0)
    expect({ connects, connected }).toEqual({ connects: 2, connected: 2 })
    expect(frames.map((f) => f.length)).toEqual([4096, 64]) // the lost frame was not sent again
  }, 20_000)
})
