/**
 * The embedded MQTT broker (aedes 1.x, MQTT 3.1.1), closed where aedes' defaults are open:
 * - authentication: agents log in with username = their id = their client id, password = pairing
 *   token (checked against the stored hash); the console logs in with a per-start secret; anonymous,
 *   unknown, revoked and wrong-token clients are refused;
 * - authorisation: an agent publishes and subscribes only under `edgent/v1/agents/{its id}/`, and
 *   only to the topics the protocol gives it; nobody subscribes to `$SYS/#` or wildcards above that;
 * - a guard in front of the parser: CONNECT first and small, every later packet capped;
 * - logins cost microseconds (tokens.ts) and failures back off per address and per id (auth-backoff.ts):
 *   a blocked address is dropped at accept, a blocked id refused before its token is checked;
 * - bounded state per agent: retained messages only on its `state` and `hello` (each ≤ maxRetainedBytes),
 *   at most maxSubscriptions filters, and its retained messages cleared when it is unpaired;
 * - at most maxConnections sockets; refusals are logged once per burst (log-limit.ts).
 */
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from 'aedes'
import { createServer, type Server, type Socket } from 'node:net'
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls'
import type { Logger } from 'pino'
import {
  AGENT_ID_RE,
  CONSOLE_CLIENT_PREFIX,
  ROOT,
  WORKER_USERNAME_PREFIX,
  agentMayPublish,
  agentMaySubscribe,
  parseTopic,
  parseWorkerTopic,
  topics,
  workerClientId,
  workerMayPublish,
  workerMaySubscribe,
  workerTopics
} from '../../../shared/contracts/topics.js'
import { ADDRESS_BACKOFF, FailureBackoff, ID_BACKOFF, SLOW_CONSUMER_BACKOFF } from './auth-backoff.js'
import { PendingBudget } from '../../runtime/pending-budget.js'
import { LogLimiter, kindOf } from './log-limit.js'
import { guardSocket, type GuardedStream, type PublishRate } from './mqtt-guard.js'

export const CONSOLE_USERNAME = 'edgent-console'

export interface BrokerOptions {
  host: string
  port: number
  /** Largest packet accepted after CONNECT, bytes (activations must fit). */
  maxPacketBytes: number
  /** Largest CONNECT accepted, bytes. */
  maxConnectBytes: number
  /** Secret of the console's own client. */
  consoleSecret: string
  /** True when `token` is the valid pairing token of a paired, unrevoked agent `agentId`. */
  checkAgent(agentId: string, token: string): Promise<boolean>
  /** True when `token` is the valid token of a paired, unrevoked edge worker (issue 34); absent: workers are refused. */
  checkWorker?(workerId: string, token: string): Promise<boolean>
  log: Logger
  /** Sockets at once (agents and the console's own client); past it new ones are closed at accept. */
  maxConnections?: number
  /** Sockets at once from one address: one host cannot fill the table and lock the fleet out. */
  maxConnectionsPerAddress?: number
  /** A socket must complete CONNECT within this, ms. */
  connectTimeoutMs?: number
  /** Sockets not yet authenticated at once, on top of maxConnections (the oldest closed for a new one; PendingBudget). */
  maxPending?: number
  /** Largest retained message an agent may leave (its state or hello), bytes. */
  maxRetainedBytes?: number
  /** Subscription filters one agent may hold. */
  maxSubscriptions?: number
  /** PUBLISH packets per second one agent may send (TCP backpressure past it); null: unlimited. */
  agentPublishRate?: PublishRate | null
  /** Bytes written to one client and not yet read, past which it is dropped as a slow consumer (default BROKER_LIMITS). */
  maxQueuedBytes?: number
  /** A second listener speaking MQTT over TLS (mqtts://), with the console's certificate (tls.ts). */
  tls?: { host: string; port: number; cert: string; key: string }
}

export const BROKER_LIMITS = {
  maxConnections: 1024,
  maxConnectionsPerAddress: 64,
  connectTimeoutMs: 10_000,
  // Sockets before their CONNACK: an agent's CONNECT follows its connect (and TLS handshake) within
  // milliseconds on a LAN; idle sockets from any number of addresses only ever evict each other.
  maxPending: 128,
  maxRetainedBytes: 64 * 1024,
  maxSubscriptions: 16,
  // An agent publishes about one activation per inference: 300/s is a Pi-class device's ceiling many times over.
  // Bytes: 32 MiB/s (270 Mbit/s, past what a Pi's uplink carries), 16 MiB at once.
  agentPublishRate: { perSecond: 300, burst: 60, bytesPerSecond: 32 * 2 ** 20, burstBytes: 16 * 2 ** 20 } as PublishRate,
  // What the console may have written to one client that it has not read: 8 model chunks (an agent
  // fetches one at a time; a resend of one still queued is not answered, distribution.ts).
  maxQueuedBytes: 8 * 1024 * 1024
}

type EdgentClient = Client & { edgentRole?: string; edgentSubs?: Set<string>; edgentWorker?: string }
/** The guarded stream carries its socket's remote address (aedes sees the stream, not the socket), and the agent it authenticated as. */
type AddressedStream = GuardedStream & { edgentRemote?: string; edgentAgent?: string; edgentKey?: string }

function authError(code: 3 | 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as AuthenticateError
}

/** An in-process subscriber (the console's link): topic filters and who gets what matches them. */
export interface LocalSubscription {
  filters: string[]
  /**
   * Agent publishes taken as soon as the broker has authorised them (not through `filters`): the
   * console starts on an activation while aedes still routes and acknowledges it. A publish that
   * aedes then fails is resent by the agent under the same request id, which the console answers
   * once (coinference.ts, admission).
   */
  early?(topic: string): boolean
  deliver(topic: string, payload: Buffer): void
}

const isConsole = (client: Client | null): boolean => !!client && (client as EdgentClient).edgentRole === 'console'
/** The worker id a client logged in as (issue 34), else undefined. */
const workerOf = (client: Client | null): string | undefined => (client as EdgentClient | null)?.edgentWorker
const remoteOf = (client: Client): string => (client.conn as AddressedStream | undefined)?.edgentRemote ?? 'unknown'

export class EmbeddedBroker {
  private aedes: Aedes | null = null
  private server: Server | null = null
  private tlsServer: TlsServer | null = null
  private readonly sockets = new Set<Socket>()
  /** Open sockets per remote address. */
  private readonly perAddress = new Map<string, number>()
  readonly byAddress = new FailureBackoff(ADDRESS_BACKOFF)
  readonly byId = new FailureBackoff(ID_BACKOFF)
  /** Agents dropped as slow consumers: after SLOW_CONSUMER_BACKOFF's threshold, their next logins wait (CONNACK 3). */
  readonly slowDrops = new FailureBackoff(SLOW_CONSUMER_BACKOFF)
  private readonly limiter: LogLimiter
  /** Sockets not yet authenticated (PendingBudget): a budget that cannot starve paired agents. */
  readonly pending: PendingBudget
  port = 0
  /** The TLS listener's port (0: none). */
  tlsPort = 0
  private readonly locals: { sub: LocalSubscription; funcs: ((packet: { topic: string; payload: Buffer | string }, cb: () => void) => void)[] }[] = []

  constructor(private readonly opts: BrokerOptions) {
    this.limiter = new LogLimiter(opts.log)
    this.pending = new PendingBudget(
      { max: opts.maxPending ?? BROKER_LIMITS.maxPending, deadlineMs: opts.connectTimeoutMs ?? BROKER_LIMITS.connectTimeoutMs },
      (why, remote) =>
        this.limiter.warn(
          `pending:${why}`,
          { remote },
          why === 'evicted' ? 'closed the oldest unauthenticated socket to admit a new one' : 'closed a socket that did not authenticate in time'
        )
    )
  }

  /** A failed login: counted against the address and the id, logged once per burst. */
  private refuse(client: Client, key: string, reason: string, extra: Record<string, unknown> = {}): void {
    const remote = remoteOf(client)
    this.byAddress.fail(remote)
    if (typeof extra['agentId'] === 'string') this.byId.fail(extra['agentId'])
    this.limiter.warn(`refused:${remote}:${key}`, { clientId: client.id, remote, ...extra }, `refused: ${reason}`)
  }

  /**
   * CONNECT: the console's own client by its secret; an agent by its id (client id = user name) and
   * token; anyone else refused. An agent that was dropped as a slow consumer again and again waits.
   */
  private authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (err: AuthenticateError | null, ok: boolean | null) => void
  ): void {
    const { log } = this.opts
    const pass = password ? password.toString('utf8') : ''
    if (username === CONSOLE_USERNAME) {
      if (pass === this.opts.consoleSecret && client.id.startsWith(CONSOLE_CLIENT_PREFIX)) {
        ;(client as EdgentClient).edgentRole = 'console'
        done(null, true)
        return
      }
      this.refuse(client, 'console', 'bad console credentials')
      done(authError(4, 'bad console credentials'), false)
      return
    }
    if (username?.startsWith(WORKER_USERNAME_PREFIX)) {
      this.authenticateWorker(client, username.slice(WORKER_USERNAME_PREFIX.length), pass, done)
      return
    }
    if (!username) {
      this.refuse(client, 'anonymous', 'anonymous client')
      done(authError(4, 'anonymous clients are not allowed'), false)
      return
    }
    if (!AGENT_ID_RE.test(username) || client.id !== username) {
      this.refuse(client, 'client-id', 'client id must equal the agent id', { username: username.slice(0, 64) })
      done(authError(5, 'client id must equal the agent id'), false)
      return
    }
    // An id's failures never keep out the holder of its token: a token is 192 random bits, checked
    // in microseconds (tokens.ts), so anyone may try — and a flood of wrong tokens for a paired id
    // (which would otherwise lock its real agent out) only costs the flooder's addresses their backoff.
    this.opts.checkAgent(username, pass).then(
      (ok) => {
        if (!ok) {
          const attacked = this.byId.blockedFor(username) > 0
          this.refuse(
            client,
            attacked ? `attacked:${username}` : `agent:${username}`,
            attacked ? 'wrong token for an id under a flood of wrong tokens' : 'unknown agent, revoked, or wrong token',
            {
              agentId: username
            }
          )
          done(authError(4, 'unknown agent or wrong token'), false)
          return
        }
        const cooling = this.slowDrops.blockedFor(username)
        if (cooling > 0) {
          this.limiter.warn(`slow:${username}`, { agentId: username, retryInMs: cooling }, 'refused: dropped as a slow consumer again and again; retry later')
          done(authError(3, 'dropped as a slow consumer: retry later'), false)
          return
        }
        this.byId.succeed(username)
        this.byAddress.succeed(remoteOf(client))
        ;(client.conn as AddressedStream).edgentAgent = username
        ;(client as EdgentClient).edgentRole = 'agent'
        this.limitPublishes(client)
        done(null, true)
      },
      (err: unknown) => {
        log.error({ err, agentId: username }, 'token check failed')
        done(authError(3, 'token check failed'), false)
      }
    )
  }

  /** An agent's or a worker's publishes, rate-limited from now on (agentPublishRate; null: unlimited). */
  private limitPublishes(client: Client): void {
    const publishRate = this.opts.agentPublishRate === undefined ? BROKER_LIMITS.agentPublishRate : this.opts.agentPublishRate
    if (publishRate) (client.conn as AddressedStream).limitPublishes?.(publishRate)
  }

  /**
   * CONNECT of an edge worker (issue 34): username `worker:{id}`, client id `edgent-worker-{id}`,
   * password its token. Its failures back off like an agent's (by address and by `worker:{id}`).
   */
  private authenticateWorker(client: Client, id: string, pass: string, done: (err: AuthenticateError | null, ok: boolean | null) => void): void {
    if (!AGENT_ID_RE.test(id) || client.id !== workerClientId(id)) {
      this.refuse(client, 'worker-client-id', 'a worker logs in as worker:{id} with client id edgent-worker-{id}', { username: id.slice(0, 64) })
      done(authError(5, 'a worker logs in as worker:{id} with client id edgent-worker-{id}'), false)
      return
    }
    const check = this.opts.checkWorker
    if (!check) {
      this.refuse(client, `worker:${id}`, 'this console takes no edge workers', { workerId: id })
      done(authError(5, 'this console takes no edge workers'), false)
      return
    }
    check(id, pass).then(
      (ok) => {
        if (!ok) {
          this.refuse(client, `worker:${id}`, 'unknown worker, revoked, or wrong token', { workerId: id })
          this.byId.fail(`${WORKER_USERNAME_PREFIX}${id}`)
          done(authError(4, 'unknown worker or wrong token'), false)
          return
        }
        this.byAddress.succeed(remoteOf(client))
        ;(client as EdgentClient).edgentRole = 'worker'
        ;(client as EdgentClient).edgentWorker = id
        this.limitPublishes(client)
        done(null, true)
      },
      (err: unknown) => {
        this.opts.log.error({ err, workerId: id }, 'worker token check failed')
        done(authError(3, 'token check failed'), false)
      }
    )
  }

  /** PUBLISH: the console under edgent/v1/; an agent only under its own prefix, retained only on state and hello, and small. */
  private authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void {
    const maxRetained = this.opts.maxRetainedBytes ?? BROKER_LIMITS.maxRetainedBytes
    if (!client) {
      done() // broker-internal (last wills are re-checked below)
      return
    }
    if (isConsole(client)) {
      done(packet.topic.startsWith(`${ROOT}/`) ? null : new Error('console publishes only under edgent/v1/'))
      return
    }
    const worker = workerOf(client)
    if (worker !== undefined) {
      // a worker: its hello (retained, small), health and answers, under its own prefix only
      const kind = workerMayPublish(worker, packet.topic) ? parseWorkerTopic(packet.topic)?.kind : undefined
      const problem = !kind
        ? 'refused publish outside the worker prefix'
        : packet.retain && (kind !== 'hello' || packet.payload.length > maxRetained)
          ? 'refused a retained publish other than a small hello'
          : null
      if (problem) {
        this.limiter.warn(`publish:${client.id}`, { workerId: worker, topic: packet.topic.slice(0, 200) }, problem)
        done(new Error('not authorised'))
        return
      }
      done()
      return
    }
    if (!agentMayPublish(client.id, packet.topic)) {
      this.limiter.warn(`publish:${client.id}`, { agentId: client.id, topic: packet.topic.slice(0, 200) }, 'refused publish outside the agent prefix')
      done(new Error('not authorised'))
      return
    }
    if (packet.retain) {
      // Retained messages only where the protocol has them, and small: the broker keeps them after the agent left.
      const kind = parseTopic(packet.topic)?.kind
      if (kind !== 'state' && kind !== 'hello') {
        this.limiter.warn(`retain:${client.id}`, { agentId: client.id, topic: packet.topic }, 'refused a retained publish outside state and hello')
        done(new Error('retained messages only on state and hello'))
        return
      }
      if (packet.payload.length > maxRetained) {
        this.limiter.warn(
          `retain-size:${client.id}`,
          { agentId: client.id, bytes: packet.payload.length, limit: maxRetained },
          'refused an oversized retained message'
        )
        done(new Error(`retained messages are limited to ${maxRetained} bytes`))
        return
      }
    }
    for (const l of this.locals) if (l.sub.early?.(packet.topic)) l.sub.deliver(packet.topic, packet.payload as Buffer)
    done()
  }

  /** SUBSCRIBE: the console to the agents' topics; an agent to its own inbox, at most maxSubscriptions filters. */
  private authorizeSubscribe(client: Client, sub: Subscription, done: (err: Error | null, sub?: Subscription | null) => void): void {
    const maxSubs = this.opts.maxSubscriptions ?? BROKER_LIMITS.maxSubscriptions
    const worker = workerOf(client)
    if (isConsole(client)) {
      if (sub.topic.startsWith(`${ROOT}/agents/`) || sub.topic.startsWith(`${ROOT}/workers/`)) {
        done(null, sub)
        return
      }
    } else if (worker !== undefined) {
      if (workerMaySubscribe(worker, sub.topic)) {
        done(null, sub)
        return
      }
    } else if (agentMaySubscribe(client.id, sub.topic)) {
      const c = client as EdgentClient
      c.edgentSubs ??= new Set()
      const subs = c.edgentSubs
      if (subs.has(sub.topic) || subs.size < maxSubs) {
        subs.add(sub.topic)
        done(null, sub)
        return
      }
      this.limiter.warn(`subs:${client.id}`, { agentId: client.id, limit: maxSubs }, 'refused a subscription past the per-agent limit')
      done(null, null)
      return
    }
    this.limiter.warn(`sub:${client.id}`, { clientId: client.id, filter: sub.topic.slice(0, 200) }, 'refused subscription')
    done(null, null) // a SUBACK with 0x80 for this filter; the connection stays up [MQTT-3.9.3]
  }

  async start(): Promise<void> {
    const { log } = this.opts
    const perAddress = this.opts.maxConnectionsPerAddress ?? BROKER_LIMITS.maxConnectionsPerAddress
    const aedes = await Aedes.createBroker({
      maxTopicLevels: 8,
      maxClientsIdLength: 64,
      connectTimeout: this.opts.connectTimeoutMs ?? BROKER_LIMITS.connectTimeoutMs,
      authenticate: (client, username, password, done) =>
        this.authenticate(client, username, password, (err, ok) => {
          // Proved who it is: out of the unauthenticated budget.
          const key = (client.conn as AddressedStream | undefined)?.edgentKey
          if (ok && key) this.pending.settle(key)
          done(err, ok)
        }),
      authorizePublish: (client, packet, done) => this.authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => this.authorizeSubscribe(client, sub, done)
    })
    aedes.on('unsubscribe', (unsubs, client) => {
      const subs = (client as EdgentClient | null)?.edgentSubs
      if (subs) for (const t of unsubs) subs.delete(t)
    })
    aedes.on('clientError', (client, err) => log.debug({ clientId: client?.id, err: err.message }, 'client error'))
    aedes.on('connectionError', (client, err) => log.debug({ clientId: client?.id, err: err.message }, 'connection error'))
    // In-process subscribers first, before any agent can connect: they miss nothing (retained
    // messages are only replayed to subscribing clients, and there are none before the listener).
    for (const l of this.locals) await this.subscribeLocal(aedes, l)
    const limits = {
      maxConnectBytes: this.opts.maxConnectBytes,
      maxPacketBytes: this.opts.maxPacketBytes,
      maxQueuedBytes: this.opts.maxQueuedBytes ?? BROKER_LIMITS.maxQueuedBytes
    }
    /** A socket refused at accept, before a byte is read: logged once per burst. */
    const drop = (socket: Socket, key: string, fields: Record<string, unknown>, msg: string) => {
      this.limiter.warn(key, fields, msg)
      socket.on('error', () => undefined)
      socket.destroy()
    }
    /** `tls`: the raw socket was admitted to the pending budget before its handshake. */
    const onSocket = (socket: Socket, tls = false) => {
      const remote = socket.remoteAddress ?? 'unknown'
      if (!tls) this.pending.admit(socket)
      const blocked = this.byAddress.blockedFor(remote)
      if (blocked > 0) return drop(socket, `blocked:${remote}`, { remote, retryInMs: blocked }, 'dropped a connection from a blocked address')
      const held = this.perAddress.get(remote) ?? 0
      if (held >= perAddress) return drop(socket, `per-address:${remote}`, { remote, limit: perAddress }, 'dropped a connection past the per-address limit')
      this.perAddress.set(remote, held + 1)
      socket.once('close', () => {
        const n = (this.perAddress.get(remote) ?? 1) - 1
        if (n > 0) this.perAddress.set(remote, n)
        else this.perAddress.delete(remote)
      })
      this.sockets.add(socket)
      socket.setNoDelay(true) // small packets (PUBACK, results) must not wait for Nagle's algorithm
      socket.on('close', () => this.sockets.delete(socket))
      socket.on('error', () => undefined)
      const stream: AddressedStream = guardSocket(socket, limits, (reason) => {
        const agentId = stream.edgentAgent
        if (agentId && reason.startsWith('slow consumer')) this.slowDrops.fail(agentId)
        this.limiter.warn(
          `guard:${remote}:${kindOf(reason)}`,
          { remote: `${remote}:${socket.remotePort}`, ...(agentId ? { agentId } : {}), reason },
          'dropped connection'
        )
      })
      stream.edgentRemote = remote
      stream.edgentKey = PendingBudget.key(socket)
      aedes.handle(stream)
    }
    const server = createServer((socket) => onSocket(socket))
    // Unauthenticated sockets have a budget of their own on top of the authenticated ones' limit.
    server.maxConnections = (this.opts.maxConnections ?? BROKER_LIMITS.maxConnections) + (this.opts.maxPending ?? BROKER_LIMITS.maxPending)
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    const addr = server.address()
    this.port = typeof addr === 'object' && addr ? addr.port : this.opts.port
    this.aedes = aedes
    this.server = server
    if (this.opts.tls) {
      const t = this.opts.tls
      const tlsServer = createTlsServer({ cert: t.cert, key: t.key, minVersion: 'TLSv1.2', handshakeTimeout: 10_000 }, (socket) => onSocket(socket, true))
      tlsServer.maxConnections = server.maxConnections
      // The budget holds a socket from before its handshake (a handshake never finished is idle too).
      tlsServer.on('connection', (raw: Socket) => this.pending.admit(raw))
      // A failed handshake (no or wrong CA on the client, plaintext on the TLS port, a scanner) is the client's problem.
      tlsServer.on('tlsClientError', (err, socket) => {
        this.limiter.warn(`tls:${socket.remoteAddress}:${kindOf(err.message)}`, { remote: socket.remoteAddress, err: err.message }, 'TLS handshake failed')
        socket.destroy()
      })
      this.tlsServer = tlsServer
      await new Promise<void>((resolve, reject) => {
        tlsServer.once('error', reject)
        tlsServer.listen(t.port, t.host, () => {
          tlsServer.off('error', reject)
          resolve()
        })
      })
      const a = tlsServer.address()
      this.tlsPort = typeof a === 'object' && a ? a.port : t.port
      log.info({ host: t.host, port: this.tlsPort }, 'MQTT over TLS listening')
    }
    log.info({ host: this.opts.host, port: this.port }, 'MQTT broker listening')
  }

  /**
   * Subscribes in process (the console's own link, DESIGN.md "Messaging"): messages reach `deliver`
   * straight from aedes, with no MQTT client, socket or packet parsing between the console and its
   * own broker. Call before start() so that nothing published by an early agent is missed.
   */
  async attach(sub: LocalSubscription): Promise<void> {
    const l = { sub, funcs: [] as ((packet: { topic: string; payload: Buffer | string }, cb: () => void) => void)[] }
    this.locals.push(l)
    if (this.aedes) await this.subscribeLocal(this.aedes, l)
  }

  private async subscribeLocal(aedes: Aedes, l: (typeof this.locals)[number]): Promise<void> {
    for (const filter of l.sub.filters) {
      const fn = (packet: { topic: string; payload: Buffer | string }, cb: () => void) => {
        // aedes wants cb called before this returns; the subscriber's work is its own.
        cb()
        // The broker's $SYS notices and empty retained clears reach wildcard filters too: topics are checked by the subscriber.
        l.sub.deliver(packet.topic, typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload)
      }
      l.funcs.push(fn)
      await new Promise<void>((resolve, reject) => aedes.subscribe(filter, fn as never, (err?: Error) => (err ? reject(err) : resolve())))
    }
  }

  /**
   * Publishes in process, as the broker (the console's own link): no authorisation check (the
   * console is trusted), delivered to subscribed agents with their subscription's QoS.
   */
  publishLocal(topic: string, payload: Buffer, o: { qos: 0 | 1; retain?: boolean }): Promise<void> {
    const aedes = this.aedes
    if (!aedes) return Promise.reject(new Error('the broker is not started'))
    return new Promise((resolve, reject) =>
      aedes.publish({ cmd: 'publish', topic, payload, qos: o.qos, retain: o.retain ?? false, dup: false }, (err?: Error) => (err ? reject(err) : resolve()))
    )
  }

  /** Adds the TLS listener to a broker not started yet. */
  withTls(tls: NonNullable<BrokerOptions['tls']>): void {
    if (this.server) throw new Error('the broker is already listening')
    this.opts.tls = tls
  }

  /**
   * Disconnects an agent and removes its retained messages (after unpairing): nothing of it stays in
   * the broker. Its last will (a retained `offline` state) is published as it goes, so the retained
   * messages are cleared once it is gone.
   */
  disconnect(agentId: string): boolean {
    const aedes = this.aedes
    const c = this.connected(agentId)
    if (!aedes || !c) {
      this.clearRetained(agentId)
      return false
    }
    const onGone = (gone: Client) => {
      if (gone.id !== agentId) return
      aedes.off('clientDisconnect', onGone)
      setImmediate(() => this.clearRetained(agentId))
    }
    aedes.on('clientDisconnect', onGone)
    c.close()
    return true
  }

  /** Bytes written to a connected agent that it has not read yet (0 when it is not connected). */
  queuedBytes(agentId: string): number {
    const c = this.connected(agentId)
    return (c?.conn as AddressedStream | undefined)?.queuedBytes?.() ?? 0
  }

  /** The ids of the clients connected now (with the embedded broker, only agents: the console is in process). */
  clientIds(): string[] {
    const clients = this.clients()
    return clients ? Object.keys(clients) : []
  }

  /** aedes' table of connected clients by client id (null before start). */
  private clients(): Record<string, Client> | null {
    return (this.aedes as unknown as { clients: Record<string, Client> } | null)?.clients ?? null
  }

  /** The connected client with this client id, if any. */
  private connected(clientId: string): Client | undefined {
    const clients = this.clients()
    return clients && Object.hasOwn(clients, clientId) ? clients[clientId] : undefined
  }

  /** The retained messages under a filter, counted and summed (what an agent leaves in the broker). */
  async retained(filter: string): Promise<{ count: number; bytes: number }> {
    const persistence = (this.aedes as unknown as { persistence?: { createRetainedStream(f: string): AsyncIterable<{ payload: Buffer }> } } | null)?.persistence
    let count = 0
    let bytes = 0
    if (persistence)
      for await (const p of persistence.createRetainedStream(filter)) {
        count++
        bytes += p.payload.length
      }
    return { count, bytes }
  }

  /** Disconnects an edge worker (after unpairing) and clears its retained hello. */
  disconnectWorker(workerId: string): boolean {
    const c = this.connected(workerClientId(workerId))
    this.clearRetainedTopics([workerTopics.hello(workerId)])
    c?.close()
    return !!c
  }

  private clearRetained(agentId: string): void {
    this.clearRetainedTopics([topics.state(agentId), topics.hello(agentId)])
  }

  /** Empties the retained messages of these topics. */
  private clearRetainedTopics(names: string[]): void {
    const aedes = this.aedes
    if (!aedes) return
    for (const topic of names) aedes.publish({ cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false }, () => undefined)
  }

  async stop(): Promise<void> {
    this.limiter.close()
    this.pending.clear()
    const server = this.server
    const aedes = this.aedes
    const tlsServer = this.tlsServer
    this.server = null
    this.tlsServer = null
    this.aedes = null
    for (const s of this.sockets) s.destroy()
    if (server) await new Promise<void>((r) => server.close(() => r()))
    if (tlsServer) await new Promise<void>((r) => tlsServer.close(() => r()))
    if (aedes) await new Promise<void>((r) => aedes.close(() => r()))
  }
}
