/**
 * storePublishesUncopied: a QoS 1 PUBLISH is stored as it is (mqtt.js copies it by default), and what
 * the store is for still works — a broker that drops the connection before its PUBACK gets the same
 * bytes again on the next connection, and the publish completes on that PUBACK.
 */
import mqtt, { type MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { afterEach, describe, expect, it } from 'vitest'
import { storePublishesUncopied } from '../../../src/main/runtime/mqtt-store.js'
import { tinyBroker, type Seen } from '../../fixtures/tiny-broker.js'

interface StoredPacket {
  payload: Buffer
}
function stored(client: MqttClient, messageId: number): Promise<StoredPacket> {
  return new Promise((resolve, reject) =>
    (client.outgoingStore as unknown as { get(p: { messageId: number }, cb: (e: Error | null, p: StoredPacket) => void): void }).get({ messageId }, (e, p) =>
      e ? reject(e) : resolve(p)
    )
  )
}

describe('storePublishesUncopied', () => {
  const cleanup: (() => void)[] = []
  afterEach(() => {
    for (const f of cleanup.splice(0)) f()
  })

  it('stores the publish itself where mqtt.js would store a copy; not under MQTT 5', async () => {
    const publishes: Seen[] = []
    const { server, port } = await tinyBroker((s) => s.packet.cmd === 'publish' && publishes.push(s))
    cleanup.push(() => server.close())
    const clients = await Promise.all([0, 1].map(() => mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 0 })))
    cleanup.push(() => {
      for (const c of clients) c.end(true)
    })
    const [plain, uncopied] = clients as [MqttClient, MqttClient]
    expect(storePublishesUncopied(uncopied)).toBe(true)
    const payload = Buffer.alloc(64 * 1024, 9)
    for (const c of clients) c.publish('t', payload, { qos: 1 })
    await expect.poll(() => publishes.length).toBe(2)
    const ids = publishes.map((p) => (p.packet as mqttPacket.IPublishPacket).messageId!)
    // the broker holds its PUBACKs: both packets wait in their clients' stores
    expect((await stored(uncopied, ids[1]!)).payload).toBe(payload)
    expect((await stored(plain, ids[0]!)).payload).not.toBe(payload) // mqtt.js's own copy (what this test would see without the helper)
    expect((await stored(plain, ids[0]!)).payload.equals(payload)).toBe(true)

    const v5 = mqtt.connect(`mqtt://127.0.0.1:${port}`, { protocolVersion: 5, reconnectPeriod: 0, manualConnect: true })
    expect(storePublishesUncopied(v5)).toBe(false) // topic aliases exist: the copy stays
  })

  it('sends the same bytes again after a connection lost before the PUBACK, and completes on that PUBACK', async () => {
    const arrivals: { messageId: number; payload: Buffer }[] = []
    const { server, port } = await tinyBroker(({ socket, packet }) => {
      if (packet.cmd !== 'publish') return
      arrivals.push({ messageId: packet.messageId!, payload: Buffer.from(packet.payload as Buffer) })
      if (arrivals.length === 1)
        socket.destroy() // lost before its PUBACK
      else socket.write(mqttPacket.generate({ cmd: 'puback', messageId: packet.messageId! }))
    })
    cleanup.push(() => server.close())
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, reconnectPeriod: 50 })
    cleanup.push(() => client.end(true))
    expect(storePublishesUncopied(client)).toBe(true)
    const payload = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 251))
    await client.publishAsync('edgent/test', payload, { qos: 1 })
    expect(arrivals).toHaveLength(2) // sent, lost, sent again from the store (mqtt.js does not set DUP)
    expect(arrivals[1]!.messageId).toBe(arrivals[0]!.messageId)
    expect(arrivals.every((a) => a.payload.equals(payload))).toBe(true)
  })
})
