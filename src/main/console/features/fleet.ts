/**
 * The fleet: paired devices (tokens, stored hashed) and their presence — the retained `state` and
 * `hello` topics each agent publishes (the state's last will marks a dead agent offline).
 */
import type { Logger } from 'pino'
import { UserError } from '../../../shared/errors.js'
import { HealthSchema, HelloSchema, StateSchema, parsePayload, type Health, type Hello } from '../../../shared/contracts/messages.js'
import { CONSOLE_CLIENT_PREFIX, WORKER_CLIENT_PREFIX, checkAgentId } from '../../../shared/contracts/topics.js'
import type { Store } from '../../store/store.js'
import type { Emit } from '../api/events.js'
import { checkPairedToken, hashToken, newToken } from '../broker/tokens.js'

interface Presence {
  state: string
  hello: Hello | null
  /** Its latest health report. */
  health: Health | null
  /** The plan id the agent last reported in its state. */
  reportedPlanId: string | null
}

export interface FleetDeps {
  store: Store
  emit: Emit
  log: Logger
  /** An agent went offline: whatever waits on it fails with this reason. */
  onOffline(agentId: string, reason: string): void
  /** An agent came online (its hello, published first, is known by then). */
  onOnline?(agentId: string): void
  /** Disconnects an agent from the embedded broker (false when not connected or external broker). */
  disconnect(agentId: string): boolean
}

export class Fleet {
  private readonly presence = new Map<string, Presence>()

  constructor(private readonly deps: FleetDeps) {}

  start(): void {}

  stop(): void {
    this.presence.clear()
  }

  /**
   * Issues a new token for an agent id. An id that is paired already keeps its token unless `force`:
   * re-pairing kills the old token at once (and disconnects the agent if it is online), which a user
   * must ask for — not get by typing an existing id.
   */
  pair(id: string, o: { force?: boolean } = {}): { id: string; token: string; replaced: boolean; disconnected: boolean } {
    checkAgentId(id)
    // an agent's client id is its id: these would take over the console's or an edge worker's connection
    if (id.startsWith(CONSOLE_CLIENT_PREFIX) || id.startsWith(WORKER_CLIENT_PREFIX))
      throw new UserError(
        `agent id "${id}" is reserved: ids starting with ${CONSOLE_CLIENT_PREFIX} or ${WORKER_CLIENT_PREFIX} name the console's and the edge workers' own MQTT clients`
      )
    const live = this.deps.store.devices.hasLiveToken(id)
    const online = this.connected().includes(id)
    if (live && !o.force)
      throw new UserError(
        `agent "${id}" is already paired${online ? ' and online' : ''}: pairing it again issues a new token and the old one stops working at once${online ? ' (the agent is disconnected)' : ''} — pair with force (edgent pair ${id} --force) to do so`
      )
    const token = newToken()
    this.deps.store.devices.pair(id, hashToken(token))
    const disconnected = live ? this.deps.disconnect(id) : false
    this.deps.log.info({ agentId: id, replaced: live, disconnected }, live ? 're-paired: the old token is dead' : 'paired')
    return { id, token, replaced: live, disconnected }
  }

  unpair(id: string): { id: string; revoked: boolean; disconnected: boolean } {
    checkAgentId(id)
    const revoked = this.deps.store.devices.revoke(id)
    if (!revoked && !this.deps.store.devices.get(id)) throw new UserError(`unknown agent "${id}"`)
    const disconnected = this.deps.disconnect(id)
    this.deps.log.info({ agentId: id, revoked, disconnected }, 'unpaired')
    return { id, revoked, disconnected }
  }

  /**
   * True when `token` is the pairing token of a paired, unrevoked agent (the broker's login check).
   * Unknown and revoked ids are checked against a dummy hash: the same work, the same time.
   */
  async checkToken(id: string, token: string): Promise<boolean> {
    return checkPairedToken(this.deps.store.devices.get(id), token, (old, hash) => this.deps.store.devices.rehash(id, old, hash))
  }

  /** A paired (not revoked) agent's id, else a UserError saying how to pair it. */
  paired(agent: string): string {
    const id = checkAgentId(agent)
    const dev = this.deps.store.devices.get(id)
    if (!dev || dev.revoked_at) throw new UserError(`unknown agent "${id}" (pair it first: edgent pair ${id})`)
    return id
  }

  /** A paired agent that is online now, else a UserError naming its state. */
  online(agent: string): string {
    const id = this.paired(agent)
    const s = this.state(id)
    if (s !== 'online') throw new UserError(`agent ${id} is ${s === 'unknown' ? 'not connected' : s}`)
    return id
  }

  /** A known (paired or once paired) agent's id. */
  known(agent: string): string {
    const id = checkAgentId(agent)
    if (!this.deps.store.devices.get(id)) throw new UserError(`unknown agent "${id}" (pair it first)`)
    return id
  }

  state(id: string): string {
    return this.presence.get(id)?.state ?? 'unknown'
  }

  /** Agents that are connected now (online or busy). */
  connected(): string[] {
    return [...this.presence].filter(([, p]) => p.state === 'online' || p.state === 'busy').map(([id]) => id)
  }

  view(id: string): { state: string | null; hello: Hello | null; reportedPlanId: string | null } {
    const p = this.presence.get(id)
    return { state: p?.state ?? null, hello: p?.hello ?? null, reportedPlanId: p?.reportedPlanId ?? null }
  }

  private entry(id: string): Presence {
    const p = this.presence.get(id) ?? { state: 'unknown', hello: null, health: null, reportedPlanId: null }
    this.presence.set(id, p)
    return p
  }

  onState(agentId: string, payload: Buffer, topic: string): void {
    if (payload.length === 0) return
    const s = parsePayload(StateSchema, payload, topic)
    const p = this.entry(agentId)
    const was = p.state
    p.state = s.state
    if (s.planId) p.reportedPlanId = s.planId
    if (this.deps.store.devices.get(agentId)) this.deps.store.devices.setState(agentId, s.state)
    if (s.state === 'offline') this.deps.onOffline(agentId, `agent ${agentId} went offline`)
    if (s.state === 'online' && was !== 'online' && was !== 'busy') this.deps.onOnline?.(agentId)
    if (was !== s.state) {
      this.deps.log.info({ agentId, state: s.state }, 'agent state')
      this.deps.emit('agent-state', { id: agentId, state: s.state })
    }
  }

  onHealth(agentId: string, payload: Buffer, topic: string): void {
    const h = parsePayload(HealthSchema, payload, topic)
    this.entry(agentId).health = h
    this.deps.emit('health', { id: agentId, health: h })
  }

  /** The latest health report of an agent, if it sent one. */
  health(agentId: string): Health | null {
    return this.presence.get(agentId)?.health ?? null
  }

  onHello(agentId: string, payload: Buffer, topic: string): void {
    if (payload.length === 0) return
    const h = parsePayload(HelloSchema, payload, topic)
    if (h.agentId !== agentId) throw new UserError(`${topic}: hello names agent "${h.agentId.slice(0, 64)}", not the topic's "${agentId}"`)
    const p = this.entry(agentId)
    p.hello = h
    if (this.deps.store.devices.get(agentId)) this.deps.store.devices.setState(agentId, p.state, h)
  }
}
