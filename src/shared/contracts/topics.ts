/**
 * The MQTT topic tree (DESIGN.md, "MQTT protocol"): every topic string is built here and nowhere else.
 * Levels are lowercase [a-z0-9-]; the protocol's major version sits in the root.
 */
import { UserError } from '../errors.js'

export const ROOT = 'edgent/v1'

/** Agent ids: one topic level, lowercase letters, digits and '-', 1–64 characters, starting alphanumeric. */
/**
 * An agent id, as an HTML pattern too: browsers compile `pattern` with the `v` flag, where a bare
 * '-' at the end of a class is a syntax error (and the pattern silently ignored): it is escaped.
 */
export const AGENT_ID_PATTERN = '[a-z0-9][a-z0-9\\-]{0,63}'
export const AGENT_ID_RE = new RegExp(`^(?:${AGENT_ID_PATTERN})$`)
export const VERB_RE = /^[a-z0-9][a-z0-9-]{0,31}$/

export function checkAgentId(id: string): string {
  if (!AGENT_ID_RE.test(id)) throw new UserError(`agent id "${id}" is not valid: use 1–64 lowercase letters, digits and '-', starting with a letter or digit`)
  return id
}

const agent = (id: string): string => `${ROOT}/agents/${checkAgentId(id)}`

export const topics = {
  /** agent → console, retained; also the agent's last will. */
  state: (id: string) => `${agent(id)}/state`,
  /** agent → console, retained: capabilities. */
  hello: (id: string) => `${agent(id)}/hello`,
  /** agent → console, every few seconds: temperature, throttling, frequency, load, memory (not retained). */
  health: (id: string) => `${agent(id)}/health`,
  /** console → agent, retained: the current plan. */
  plan: (id: string) => `${agent(id)}/plan`,
  /** console → agent: a command (src/shared/contracts/agent-api.ts). */
  request: (id: string, verb: string) => `${agent(id)}/request/${checkVerb(verb)}`,
  /** agent → console: a command's reply. */
  response: (id: string, verb: string) => `${agent(id)}/response/${checkVerb(verb)}`,
  /** agent → console: binary activation frame. */
  activation: (id: string) => `${agent(id)}/activation`,
  /** console → agent: the edge's result for one activation. */
  result: (id: string) => `${agent(id)}/result`,
  /** console → agent: an upload probe's acknowledgement is the PUBACK; this topic carries probe bytes. */
  probe: (id: string) => `${agent(id)}/probe`,
  /** agent → console: a request for a model's package or a chunk of one of its files (src/shared/contracts/model-transfer.ts). */
  fetch: (id: string) => `${agent(id)}/fetch`,
  /** console → agent: a binary model chunk answering a fetch. */
  chunk: (id: string) => `${agent(id)}/chunk`,
  /** Subscription filters. */
  allAgents: {
    state: `${ROOT}/agents/+/state`,
    hello: `${ROOT}/agents/+/hello`,
    health: `${ROOT}/agents/+/health`,
    response: `${ROOT}/agents/+/response/+`,
    activation: `${ROOT}/agents/+/activation`,
    probe: `${ROOT}/agents/+/probe`,
    fetch: `${ROOT}/agents/+/fetch`
  },
  /** What an agent itself subscribes to. */
  agentInbox: (id: string) => [topics.plan(id), `${agent(id)}/request/+`, topics.result(id), topics.chunk(id)]
} as const

/**
 * Edge workers (issue 34): headless edge processes on other machines. Their ids live in their own
 * subtree (`edgent/v1/workers/{id}/`), apart from agents', and they log in as `worker:{id}` (a name
 * no agent id can take): a worker's credentials never act as an agent's, nor an agent's as a worker's.
 */
export const WORKER_USERNAME_PREFIX = 'worker:'
export const workerUsername = (id: string): string => `${WORKER_USERNAME_PREFIX}${checkAgentId(id)}`
/** MQTT client ids of the console's own clients and of edge workers: no agent may be paired under them (an agent's client id is its id). */
export const CONSOLE_CLIENT_PREFIX = 'edgent-console-'
export const WORKER_CLIENT_PREFIX = 'edgent-worker-'
/** A worker's MQTT client id (its username's id, prefixed: client ids cannot hold ':' everywhere). */
export const workerClientId = (id: string): string => `${WORKER_CLIENT_PREFIX}${checkAgentId(id)}`
const worker = (id: string): string => `${ROOT}/workers/${checkAgentId(id)}`

export const workerTopics = {
  /** worker → console, retained: version, pool size, the models it holds (with their digests). */
  hello: (id: string) => `${worker(id)}/hello`,
  /** worker → console, every WORKER_HEARTBEAT_MS: its load (the heartbeat its liveness is judged by). */
  health: (id: string) => `${worker(id)}/health`,
  /** console → worker: one segment to run (a tensor frame, worker-api.ts). */
  job: (id: string) => `${worker(id)}/job`,
  /** worker → console: a job's answer (a tensor frame) or its error. */
  done: (id: string) => `${worker(id)}/done`,
  all: {
    hello: `${ROOT}/workers/+/hello`,
    health: `${ROOT}/workers/+/health`,
    done: `${ROOT}/workers/+/done`
  }
} as const

export type WorkerTopicKind = 'hello' | 'health' | 'job' | 'done'

/** Parses a worker topic; undefined for anything else. */
export function parseWorkerTopic(topic: string): { workerId: string; kind: WorkerTopicKind } | undefined {
  const parts = topic.split('/')
  if (parts.length !== 5 || parts[0] !== 'edgent' || parts[1] !== 'v1' || parts[2] !== 'workers') return undefined
  const workerId = parts[3]!
  const kind = parts[4]
  if (!AGENT_ID_RE.test(workerId)) return undefined
  return kind === 'hello' || kind === 'health' || kind === 'job' || kind === 'done' ? { workerId, kind } : undefined
}

/** Topics a worker may publish to: its own hello, health and answers. */
export function workerMayPublish(workerId: string, topic: string): boolean {
  const t = parseWorkerTopic(topic)
  return !!t && t.workerId === workerId && (t.kind === 'hello' || t.kind === 'health' || t.kind === 'done')
}

/** The one filter a worker may subscribe to: its own jobs. */
export function workerMaySubscribe(workerId: string, filter: string): boolean {
  const t = parseWorkerTopic(filter)
  return !!t && t.workerId === workerId && t.kind === 'job'
}

function checkVerb(verb: string): string {
  if (!VERB_RE.test(verb)) throw new UserError(`verb "${verb}" is not valid`)
  return verb
}

export type TopicKind = 'state' | 'hello' | 'health' | 'plan' | 'request' | 'response' | 'activation' | 'result' | 'probe' | 'fetch' | 'chunk'

export interface ParsedTopic {
  agentId: string
  kind: TopicKind
  verb?: string
}

/** Parses a topic of the tree; undefined for anything else (foreign, deep, malformed). */
export function parseTopic(topic: string): ParsedTopic | undefined {
  const parts = topic.split('/')
  if (parts[0] !== 'edgent' || parts[1] !== 'v1' || parts[2] !== 'agents') return undefined
  const agentId = parts[3]
  if (agentId === undefined || !AGENT_ID_RE.test(agentId)) return undefined
  const kind = parts[4]
  if (parts.length === 5) {
    if (
      kind === 'state' ||
      kind === 'hello' ||
      kind === 'health' ||
      kind === 'plan' ||
      kind === 'activation' ||
      kind === 'result' ||
      kind === 'probe' ||
      kind === 'fetch' ||
      kind === 'chunk'
    )
      return { agentId, kind }
    return undefined
  }
  if (parts.length === 6 && (kind === 'request' || kind === 'response') && VERB_RE.test(parts[5]!)) return { agentId, kind, verb: parts[5]! }
  return undefined
}

/** Topics an agent may publish to: only its own state, hello, health, responses, activations, probes and model fetches. */
export function agentMayPublish(agentId: string, topic: string): boolean {
  const t = parseTopic(topic)
  return (
    !!t &&
    t.agentId === agentId &&
    (t.kind === 'state' ||
      t.kind === 'hello' ||
      t.kind === 'health' ||
      t.kind === 'response' ||
      t.kind === 'activation' ||
      t.kind === 'probe' ||
      t.kind === 'fetch')
  )
}

/** Filters an agent may subscribe to: its own plan, requests (one verb or '+'), results and model chunks. */
export function agentMaySubscribe(agentId: string, filter: string): boolean {
  if (filter === `${ROOT}/agents/${agentId}/request/+`) return AGENT_ID_RE.test(agentId)
  const t = parseTopic(filter)
  return !!t && t.agentId === agentId && (t.kind === 'plan' || t.kind === 'request' || t.kind === 'result' || t.kind === 'chunk')
}
