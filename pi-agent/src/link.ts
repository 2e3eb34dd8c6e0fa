/**
 * The agent's link to the console's broker: one MQTT connection with a last will (a retained
 * `offline` state), reconnecting with exponential backoff after every refusal (mqtt.js 5 gives up
 * after a refused CONNECT unless told otherwise) and saying why; the inbox subscription; and the
 * publishes the agent makes — retained presence (hello, state), health reports, fetches, responses
 * and activation frames (QoS 1, timed to their PUBACK).
 */
import mqtt, { type MqttClient } from 'mqtt'
import type { Logger } from 'pino'
import { SCHEMA, encodeJson } from '../../src/shared/contracts/messages.js'
import { topics } from '../../src/shared/contracts/topics.js'
import { storePublishesUncopied } from '../../src/main/runtime/mqtt-store.js'
import { noDelay } from '../../src/main/runtime/mqtt-socket.js'

/** How long an agent refused for its token waits between tries (it needs re-pairing, not hammering). */
export const AUTH_RETRY_MS = 5 * 60_000

export interface LinkOptions {
  brokerUrl: string
  id: string
  token: string
  /** For mqtts://: the console's CA (PEM), pinned — the broker's certificate must chain to it, whatever its host name. */
  ca?: string
  log: Logger
}

export interface LinkEvents {
  /** Connected (again): announce, subscribe done, resume what the lost connection cut. */
  connected(): void
  /** A message on one of the agent's topics. */
  message(topic: string, payload: Buffer): void
}

/**
 * Forgets the QoS 1 publishes the broker has not acknowledged when the connection is lost; their
 * callers get `connection lost`. mqtt.js would send them again at every reconnect, but the console
 * fails whatever waited on a device that went offline (a reply, a frame), and the agent announces
 * itself afresh on connecting; and a message that cannot cross the link within the broker's
 * keepalive grace would drop every new connection in turn: the device would never come back.
 */
function dropUnacknowledged(client: MqttClient): void {
  const outgoing = (client as unknown as { outgoing?: Record<string, unknown> }).outgoing
  for (const messageId of Object.keys(outgoing ?? {})) client.removeOutgoingMessage(Number(messageId))
}

/** mqtt.js says `Message removed` for a publish dropped above. */
function lostOr(err: Error): Error {
  return err.message === 'Message removed' ? new Error('connection lost before the console acknowledged the message') : err
}

export class AgentLink {
  private client: MqttClient | null = null
  private reconnectMs = 1000

  constructor(
    private readonly o: LinkOptions,
    private readonly events: LinkEvents
  ) {}

  get connected(): boolean {
    return !!this.client?.connected
  }

  start(): void {
    const { id, log } = this.o
    const will = { topic: topics.state(id), payload: Buffer.from(encodeJson({ schema: SCHEMA, state: 'offline' })), qos: 1 as const, retain: true }
    const client = mqtt.connect(this.o.brokerUrl, {
      clientId: id,
      username: id,
      password: this.o.token,
      protocolVersion: 4,
      keepalive: 10,
      clean: true,
      reconnectPeriod: this.reconnectMs,
      // mqtt.js 5 stops for good after a refused CONNECT unless told otherwise: an agent keeps trying,
      // with the backoff below, whatever the refusal (a console restoring a backup, an id under attack).
      reconnectOnConnackError: true,
      connectTimeout: 10_000,
      will,
      // The pinned CA is the broker's identity; the address a Pi dials changes with DHCP, so no host-name check.
      ...(this.o.ca ? { ca: this.o.ca, rejectUnauthorized: true, checkServerIdentity: () => undefined } : {})
    })
    this.client = client
    // Activation frames are published at QoS 1 (their PUBACK times the uplink): stored, not copied, until it comes.
    if (!storePublishesUncopied(client)) log.warn('this mqtt.js cannot store publishes uncopied: every activation frame is copied once more')
    client.on('connect', () => {
      noDelay(client)
      this.reconnectMs = 1000
      client.options.reconnectPeriod = this.reconnectMs
      log.info({ broker: this.o.brokerUrl }, 'connected')
      client.subscribe(topics.agentInbox(id), { qos: 1 }, (err, granted) => {
        if (err) log.error({ err: err.message }, 'subscribe failed')
        const refused = (granted ?? []).filter((g) => g.qos === 128)
        if (refused.length) log.error({ refused: refused.map((g) => g.topic) }, 'broker refused subscriptions')
      })
      this.events.connected()
    })
    client.on('close', () => {
      dropUnacknowledged(client)
      // Exponential backoff between reconnects (mqtt.js retries at a fixed period by default).
      this.reconnectMs = Math.min(this.reconnectMs * 2, Math.max(30_000, this.reconnectMs))
      client.options.reconnectPeriod = this.reconnectMs
    })
    client.on('error', (err) => this.onError(client, err))
    client.on('message', (topic, payload) => this.events.message(topic, payload))
  }

  /** A refused CONNECT says why and how long until the next try; anything else is logged. */
  private onError(client: MqttClient, err: Error): void {
    const { id, log } = this.o
    const code = (err as Error & { code?: number }).code
    if (code === 4 || code === 5) {
      // Refused for its credentials: retrying the same token cannot help until the device is re-paired,
      // so say what to do and wait long between tries (the console may be restoring a backup).
      this.reconnectMs = Math.max(this.reconnectMs, AUTH_RETRY_MS)
      client.options.reconnectPeriod = this.reconnectMs
      log.error(
        { broker: this.o.brokerUrl, retryInS: Math.round(this.reconnectMs / 1000) },
        `the console refused this agent's token (unknown, revoked or re-paired): re-pair this device (edgent pair ${id} on the console) and restart the agent with the new credentials file`
      )
      return
    }
    if (code === 3)
      log.warn(
        { err: err.message, retryInS: Math.round(Math.min(this.reconnectMs * 2, Math.max(30_000, this.reconnectMs)) / 1000) },
        'the console is not accepting this agent for now (too many failed logins from this address): retrying with backoff'
      )
    else log.warn({ err: err.message }, 'mqtt error')
  }

  /** Publishes while connected (a message for a console that cannot hear it now is not kept). */
  publish(topic: string, payload: Uint8Array, o: { qos: 0 | 1; retain?: boolean }): void {
    const c = this.client
    if (!c) return
    c.publish(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos: o.qos, retain: o.retain ?? false })
  }

  /** A JSON document, retained or not. */
  publishJson(topic: string, body: unknown, o: { qos: 0 | 1; retain?: boolean }): void {
    this.publish(topic, encodeJson(body), o)
  }

  /**
   * QoS 1 publish; resolves with the time until the broker's PUBACK, ms. `sent`, when given, gets
   * the times (performance.now) the publish call began and returned.
   */
  publishAcked(topic: string, payload: Uint8Array, sent?: { called: number; returned: number }): Promise<number> {
    const c = this.client
    if (!c) return Promise.reject(new Error('not connected'))
    const t0 = performance.now()
    return new Promise((resolve, reject) => {
      c.publish(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos: 1 }, (err) =>
        err ? reject(lostOr(err)) : resolve(performance.now() - t0)
      )
      if (sent) {
        sent.called = t0
        sent.returned = performance.now()
      }
    })
  }

  /** Says goodbye when the console can hear it (at most 2 s), then closes; a disconnected agent stops at once. */
  async stop(): Promise<void> {
    const c = this.client
    this.client = null
    if (!c) return
    if (c.connected) {
      await Promise.race([
        new Promise<void>((r) =>
          c.publish(topics.state(this.o.id), Buffer.from(encodeJson({ schema: SCHEMA, state: 'offline' })), { qos: 1, retain: true }, () => r())
        ),
        new Promise<void>((r) => setTimeout(r, 2000).unref())
      ])
    }
    await c.endAsync(true)
  }
}
