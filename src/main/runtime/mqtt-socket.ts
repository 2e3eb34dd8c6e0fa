/** The socket under an mqtt.js client, as every client here wants it. */
import type { MqttClient } from 'mqtt'

/**
 * Turns Nagle's algorithm off on the client's current socket (call again on every `connect`: a
 * reconnect opens a new one): frames are written in several pieces, and small packets (PUBACKs,
 * results) must not wait for the peer's delayed ACK.
 */
export function noDelay(client: MqttClient): void {
  ;(client.stream as { setNoDelay?: (v: boolean) => void } | undefined)?.setNoDelay?.(true)
}
