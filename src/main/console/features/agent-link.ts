/**
 * The console's link to its agents over MQTT: one client (to the embedded broker or an external one),
 * the subscriptions, the dispatch of incoming messages by topic kind, and the typed commands of
 * `src/shared/contracts/agent-api.ts` — each request has a transaction id and a timeout, and its reply is
 * validated against the command's schema before anyone uses it.
 */
import mqtt, { type MqttClient } from 'mqtt'
import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import { isAgentCommand, parseCommandReply, type AgentCommand, type CommandArgsIn, type CommandReply } from '../../../shared/contracts/agent-api.js'
import { UserError, errorMessage } from '../../../shared/errors.js'
import { ResponseSchema, encodeJson, parsePayload } from '../../../shared/contracts/messages.js'
import { CONSOLE_CLIENT_PREFIX, parseTopic, parseWorkerTopic, topics, workerTopics } from '../../../shared/contracts/topics.js'
import { storePublishesUncopied } from '../../runtime/mqtt-store.js'
import { noDelay } from '../../runtime/mqtt-socket.js'
import { LogLimiter, kindOf } from '../broker/log-limit.js'
import { AGENT_MESSAGE_BYTES, AGENT_RATES, RateLimiter } from '../broker/rate-limit.js'

/** The embedded broker seen from inside the process (broker.ts): the link needs no MQTT client then. */
export interface LocalBroker {
  attach(sub: { filters: string[]; early?(topic: string): boolean; deliver(topic: string, payload: Buffer): void }): Promise<void>
  publishLocal(topic: string, payload: Buffer, o: { qos: 0 | 1; retain?: boolean }): Promise<void>
}

export interface AgentLinkOptions {
  /** The broker's URL, read at start (an embedded broker on port 0 knows its port only then). */
  url: () => string
  /**
   * The embedded broker, in process: subscriptions and publishes go straight to aedes (no loopback
   * client, socket or packet parsing on the hot path). Absent: an MQTT client to `url`.
   */
  local?: LocalBroker
  username?: string
  password?: string
  log: Logger
}

/** What the link hands on: the retained presence topics, the activation frames and the model fetches. */
export interface AgentMessageHandlers {
  state(agentId: string, payload: Buffer, topic: string): void
  hello(agentId: string, payload: Buffer, topic: string): void
  health(agentId: string, payload: Buffer, topic: string): void
  activation(agentId: string, payload: Buffer): void
  fetch(agentId: string, payload: Buffer, topic: string): void
  /** An edge worker's hello, heartbeat or answer (issue 34; workers.ts). */
  worker?(workerId: string, kind: 'hello' | 'health' | 'done', payload: Buffer): void
}

export interface PublishOptions {
  qos: 0 | 1
  retain?: boolean
}

interface Pending {
  agentId: string
  command: AgentCommand
  resolve(data: unknown): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

export class AgentLink {
  private client: MqttClient | null = null
  /** In-process link started (and not stopped). */
  private started = false
  private readonly pending = new Map<string, Pending>()
  private readonly rates = new RateLimiter()
  private readonly limiter: LogLimiter

  constructor(
    private readonly opts: AgentLinkOptions,
    private readonly handlers: AgentMessageHandlers
  ) {
    this.limiter = new LogLimiter(opts.log)
  }

  /** The broker's URL (after start). */
  get url(): string {
    return this.opts.url()
  }

  /** The topics the console listens to. */
  private static readonly FILTERS = [
    topics.allAgents.state,
    topics.allAgents.hello,
    topics.allAgents.health,
    topics.allAgents.response,
    topics.allAgents.activation,
    topics.allAgents.fetch,
    workerTopics.all.hello,
    workerTopics.all.health,
    workerTopics.all.done
  ]

  /**
   * With the embedded broker, subscribes in process — call before the broker listens, so that nothing
   * an early agent publishes is missed; otherwise connects an MQTT client to the broker's URL.
   */
  async start(): Promise<void> {
    if (this.opts.local) {
      this.started = true
      // Activations are taken as the broker authorises them, the rest as aedes routes it.
      await this.opts.local.attach({
        filters: AgentLink.FILTERS.filter((f) => f !== topics.allAgents.activation),
        early: (topic) => parseTopic(topic)?.kind === 'activation',
        deliver: (topic, payload) => this.started && this.onMessage(topic, payload)
      })
      return
    }
    const { log } = this.opts
    const url = this.opts.url()
    const client = mqtt.connect(url, {
      clientId: `${CONSOLE_CLIENT_PREFIX}${randomUUID().slice(0, 8)}`,
      protocolVersion: 4,
      clean: true,
      keepalive: 10,
      reconnectPeriod: 1000,
      ...(this.opts.username !== undefined ? { username: this.opts.username, password: this.opts.password } : {})
    })
    this.client = client
    if (!storePublishesUncopied(client)) log.warn('this mqtt.js cannot store publishes uncopied: every QoS 1 message is copied once more')
    await new Promise<void>((resolve, reject) => {
      const onErr = (err: Error) => {
        client.end(true)
        reject(new UserError(`cannot connect to the broker at ${url}: ${err.message}`))
      }
      client.once('error', onErr)
      client.once('connect', () => {
        client.off('error', onErr)
        resolve()
      })
    })
    client.on('error', (err) => log.warn({ err: err.message }, 'console mqtt error'))
    noDelay(client)
    client.on('connect', () => noDelay(client))
    client.on('message', (topic, payload) => this.onMessage(topic, payload))
    await client.subscribeAsync(AgentLink.FILTERS, { qos: 1 })
  }

  async stop(): Promise<void> {
    this.limiter.close()
    for (const p of this.pending.values()) {
      clearTimeout(p.timer)
      p.reject(new Error('console stopping'))
    }
    this.pending.clear()
    this.started = false
    const c = this.client
    this.client = null
    if (c) await c.endAsync(true)
  }

  publish(topic: string, payload: Uint8Array, opts: PublishOptions): void {
    this.publishAsync(topic, payload, opts).catch((err: unknown) =>
      this.limiter.warn(`publish:${kindOf(errorMessage(err))}`, { topic, err: errorMessage(err) }, 'publish failed')
    )
  }

  async publishAsync(topic: string, payload: Uint8Array, opts: PublishOptions): Promise<void> {
    const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
    if (this.opts.local) {
      if (!this.started) throw new Error('console not started')
      return this.opts.local.publishLocal(topic, buf, opts)
    }
    if (!this.client) throw new Error('console not started')
    await this.client.publishAsync(topic, buf, opts)
  }

  /** A command to an agent; resolves with its reply once the reply passed the command's schema. */
  request<C extends AgentCommand>(agentId: string, command: C, args: CommandArgsIn<C>, timeoutMs: number): Promise<CommandReply<C>> {
    if (!this.client && !this.started) return Promise.reject(new Error('console not started'))
    const transaction = randomUUID()
    return new Promise<CommandReply<C>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(transaction)
        reject(new UserError(`agent ${agentId} did not answer "${command}" within ${Math.round(timeoutMs / 1000)} s`))
      }, timeoutMs)
      this.pending.set(transaction, { agentId, command, resolve: resolve as (d: unknown) => void, reject, timer })
      this.publish(topics.request(agentId, command), encodeJson({ transaction, ...args }), { qos: 1 })
    })
  }

  /** Fails every request waiting on an agent (it went offline). */
  failAgent(agentId: string, reason: string): void {
    for (const [tx, p] of this.pending) {
      if (p.agentId !== agentId) continue
      clearTimeout(p.timer)
      this.pending.delete(tx)
      p.reject(new UserError(reason))
    }
  }

  private onMessage(topic: string, payload: Buffer): void {
    const t = parseTopic(topic)
    if (!t) {
      const w = parseWorkerTopic(topic)
      if (w && w.kind !== 'job' && this.handlers.worker) {
        try {
          this.handlers.worker(w.workerId, w.kind, payload)
        } catch (err) {
          this.limiter.warn(`dropped:${w.workerId}:${kindOf(errorMessage(err))}`, { topic, err: errorMessage(err) }, 'dropped message')
        }
      }
      return
    }
    // An empty retained payload is the broker clearing a retained message (an unpaired agent): nothing to handle.
    if (payload.length === 0 && (t.kind === 'state' || t.kind === 'hello')) return
    // Per-agent rates (rate-limit.ts): the excess is dropped here, before parsing; activations are
    // admitted by the co-inference, which answers a refused frame.
    // (Not `state`: every state change means something — a dropped "online" leaves the agent "busy" —
    // and the broker's per-agent publish rate already bounds how many an agent can send.)
    const kind = t.kind === 'hello' || t.kind === 'health' ? t.kind : t.kind === 'fetch' || t.kind === 'response' ? t.kind : null
    if (kind && !this.rates.take(`${t.agentId}/${kind}`, AGENT_RATES[kind])) {
      this.limiter.warn(`rate:${t.agentId}:${kind}`, { agentId: t.agentId, kind, limit: AGENT_RATES[kind] }, 'dropped a message over the per-agent rate')
      return
    }
    const cap = (AGENT_MESSAGE_BYTES as Record<string, number>)[t.kind]
    if (cap !== undefined && payload.length > cap) {
      this.limiter.warn(
        `oversized:${t.agentId}:${t.kind}`,
        { agentId: t.agentId, kind: t.kind, bytes: payload.length, limit: cap },
        `dropped a ${t.kind} message over ${cap} bytes`
      )
      return
    }
    try {
      if (t.kind === 'state') this.handlers.state(t.agentId, payload, topic)
      else if (t.kind === 'hello') this.handlers.hello(t.agentId, payload, topic)
      else if (t.kind === 'health') this.handlers.health(t.agentId, payload, topic)
      else if (t.kind === 'activation') this.handlers.activation(t.agentId, payload)
      else if (t.kind === 'fetch') this.handlers.fetch(t.agentId, payload, topic)
      else if (t.kind === 'response' && t.verb) this.onResponse(t.agentId, t.verb, payload, topic)
    } catch (err) {
      this.limiter.warn(`dropped:${t.agentId}:${kindOf(errorMessage(err))}`, { topic, err: errorMessage(err) }, 'dropped message')
    }
  }

  private onResponse(agentId: string, command: string, payload: Buffer, topic: string): void {
    const r = parsePayload(ResponseSchema, payload, topic)
    const p = this.pending.get(r.transaction)
    if (!p || p.agentId !== agentId) return
    if (!isAgentCommand(command) || command !== p.command)
      throw new UserError(`${topic}: answers transaction ${r.transaction}, which was a "${p.command}" request`)
    this.pending.delete(r.transaction)
    clearTimeout(p.timer)
    if (r.status !== 'ok') {
      p.reject(new UserError(`agent ${agentId}: ${r.error}`))
      return
    }
    try {
      p.resolve(parseCommandReply(p.command, r.data, agentId))
    } catch (err) {
      this.opts.log.warn({ agentId, command, err: errorMessage(err) }, 'refused a malformed reply')
      p.reject(err as Error)
    }
  }
}
