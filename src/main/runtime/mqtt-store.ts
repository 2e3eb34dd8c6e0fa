/**
 * QoS 1 publishes without a copy of their payload.
 *
 * mqtt.js keeps every QoS > 0 PUBLISH it sends in its outgoing store until the PUBACK, to send it
 * again after a reconnect. Before storing it deep-copies the packet, payload included (rfdc), so that
 * it can take an MQTT 5 topic alias out of the stored copy. Under MQTT 3.1.1 — the only version the
 * embedded broker (aedes) speaks, and the one the agent and the console use — there are no topic
 * aliases and the copy buys nothing: it is a memcpy and a garbage-collected allocation of every
 * activation frame, about half of what separated the broker's relay from raw TCP (`npm run bench --
 * relay`). The packet itself is stored instead, so a caller must not change a payload after handing
 * it to publish (the agent and the console build a new buffer for every message).
 *
 * The replaced method is private to mqtt.js: the client is changed only when mqtt.js still has the
 * pieces this relies on, and the function says whether it did (a test pins the installed version).
 */
import type { MqttClient } from 'mqtt'

interface StoreInternals {
  options: { protocolVersion?: number }
  outgoingStore: { put(packet: unknown, cb: (err?: Error) => void): unknown }
  _storeAndSend: (packet: { cmd: string }, cb: ((err?: Error) => void) | undefined, cbStorePut: () => void) => void
  _writePacket: (packet: unknown, cb: ((err?: Error) => void) | undefined) => void
}

/** Makes `client` store its MQTT 3.1.1 PUBLISH packets as they are; false (client unchanged) where it cannot. */
export function storePublishesUncopied(client: MqttClient): boolean {
  const c = client as unknown as StoreInternals
  if ((c.options.protocolVersion ?? 4) >= 5) return false // topic aliases exist: mqtt.js's copy is needed
  if (typeof c._storeAndSend !== 'function' || typeof c._writePacket !== 'function' || typeof c.outgoingStore?.put !== 'function') return false
  const original = c._storeAndSend
  c._storeAndSend = function (this: StoreInternals, packet, cb, cbStorePut) {
    if (packet.cmd !== 'publish') return original.call(this, packet, cb, cbStorePut)
    this.outgoingStore.put(packet, (err) => {
      if (err) return cb?.(err)
      cbStorePut()
      this._writePacket(packet, cb)
    })
  }
  return true
}
