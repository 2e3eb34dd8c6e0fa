/**
 * The embedded MQTT broker (aedes 1.x, MQTT 3.1.1), closed where aedes' defaults are open:
 * - authentication: agents log in with username = their id = their client id, password = pairing
 *   token (checked against the stored hash); the console logs in with a per-start secret; anonymous,
 *   unknown, revoked and wrong-token clients are refused;
 * - authorisation: an agent publishes and subscribes only under `edgent/v1/agents/{its id}/`, and
 *   only to the topics the protocol gives it; nobody subscribes to `$SYS/#` or wildcards above that;
 * - a guard in front of the parser: CONNECT first and small, every later packet capped.
 */
import { Aedes, type AuthenticateError, type Client } from 'aedes'
import { createServer, type Server, type Socket } from 'node:net'
import type { Logger } from 'pino'
import { AGENT_ID_RE, ROOT, agentMayPublish, agentMaySubscribe } from '../../shared/topics.js'
import { guardSocket } from './mqtt-guard.js'

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
  checkAgent(agentId: string, token: string): boolean
  log: Logger
}

function authError(code: 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as AuthenticateError
}

const isConsole = (client: Client | null): boolean => !!client && (client as Client & { edgentRole?: string }).edgentRole === 'console'

export class EmbeddedBroker {
  private aedes: Aedes | null = null
  private server: Server | null = null
  private readonly sockets = new Set<Socket>()
  port = 0

  constructor(private readonly opts: BrokerOptions) {}

  async start(): Promise<void> {
    const { log } = this.opts
    const aedes = await Aedes.createBroker({
      maxTopicLevels: 8,
      maxClientsIdLength: 64,
      connectTimeout: 10_000,
      authenticate: (client, username, password, done) => {
        const pass = password ? password.toString('utf8') : ''
        if (username === CONSOLE_USERNAME) {
          if (pass === this.opts.consoleSecret && client.id.startsWith('edgent-console-')) {
            ;(client as Client & { edgentRole?: string }).edgentRole = 'console'
            return done(null, true)
          }
          log.warn({ clientId: client.id }, 'refused: bad console credentials')
          return done(authError(4, 'bad console credentials'), false)
        }
        if (!username) {
          log.warn({ clientId: client.id }, 'refused: anonymous client')
          return done(authError(4, 'anonymous clients are not allowed'), false)
        }
        if (!AGENT_ID_RE.test(username) || client.id !== username) {
          log.warn({ clientId: client.id, username }, 'refused: client id must equal the agent id')
          return done(authError(5, 'client id must equal the agent id'), false)
        }
        let ok = false
        try {
          ok = this.opts.checkAgent(username, pass)
        } catch (err) {
          log.error({ err, agentId: username }, 'token check failed')
        }
        if (!ok) {
          log.warn({ agentId: username }, 'refused: unknown agent, revoked, or wrong token')
          return done(authError(4, 'unknown agent or wrong token'), false)
        }
        ;(client as Client & { edgentRole?: string }).edgentRole = 'agent'
        done(null, true)
      },
      authorizePublish: (client, packet, done) => {
        if (!client) return done() // broker-internal (last wills are re-checked below)
        if (isConsole(client)) return packet.topic.startsWith(`${ROOT}/`) ? done() : done(new Error('console publishes only under edgent/v1/'))
        if (agentMayPublish(client.id, packet.topic)) return done()
        log.warn({ agentId: client.id, topic: packet.topic }, 'refused publish outside the agent prefix')
        done(new Error('not authorised'))
      },
      authorizeSubscribe: (client, sub, done) => {
        if (isConsole(client) ? sub.topic.startsWith(`${ROOT}/agents/`) : agentMaySubscribe(client.id, sub.topic)) return done(null, sub)
        log.warn({ clientId: client.id, filter: sub.topic }, 'refused subscription')
        done(null, null) // a SUBACK with 0x80 for this filter; the connection stays up [MQTT-3.9.3]
      }
    })
    aedes.on('clientError', (client, err) => log.debug({ clientId: client?.id, err: err.message }, 'client error'))
    aedes.on('connectionError', (client, err) => log.debug({ clientId: client?.id, err: err.message }, 'connection error'))
    const limits = { maxConnectBytes: this.opts.maxConnectBytes, maxPacketBytes: this.opts.maxPacketBytes }
    const server = createServer((socket) => {
      this.sockets.add(socket)
      socket.setNoDelay(true) // small packets (PUBACK, results) must not wait for Nagle's algorithm
      socket.on('close', () => this.sockets.delete(socket))
      socket.on('error', () => undefined)
      const stream = guardSocket(socket, limits, (reason) => log.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}`, reason }, 'dropped connection'))
      aedes.handle(stream)
    })
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
    log.info({ host: this.opts.host, port: this.port }, 'MQTT broker listening')
  }

  /** Disconnects an agent (after unpairing). */
  disconnect(agentId: string): boolean {
    const clients = (this.aedes as unknown as { clients: Record<string, Client> } | null)?.clients
    const c = clients && Object.hasOwn(clients, agentId) ? clients[agentId] : undefined
    if (!c) return false
    c.close()
    return true
  }

  async stop(): Promise<void> {
    const server = this.server
    const aedes = this.aedes
    this.server = null
    this.aedes = null
    for (const s of this.sockets) s.destroy()
    if (server) await new Promise<void>((r) => server.close(() => r()))
    if (aedes) await new Promise<void>((r) => aedes.close(() => r()))
  }
}
