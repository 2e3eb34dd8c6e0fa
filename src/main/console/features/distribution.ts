/**
 * Model distribution, the console's half (src/shared/contracts/model-transfer.ts): agents pull the model they
 * are assigned over their MQTT connection. A fetch names the model and its SHA-256; the console
 * answers only for the model that agent is planned with, from the files of its package, at most a
 * chunk at a time, each chunk with its own SHA-256. `ensureOnAgent` makes an agent hold a model (the
 * `load-model` command, once per agent and model at a time) and is what planning waits on; progress
 * is counted from the chunks sent and raised as `transfer` events.
 */
import { createHash } from 'node:crypto'
import type { Logger } from 'pino'
import type { AgentRequest, CommandReply } from '../../../shared/contracts/agent-api.js'
import type { TransferView } from '../../../shared/contracts/console-api.js'
import { UserError, errorMessage } from '../../../shared/errors.js'
import type { Hello } from '../../../shared/contracts/messages.js'
import { parsePayload } from '../../../shared/contracts/messages.js'
import { FetchSchema, MAX_CHUNK_BYTES, encodeChunk, packageBytes, type ChunkHeader } from '../../../shared/contracts/model-transfer.js'
import { topics } from '../../../shared/contracts/topics.js'
import type { Emit } from '../api/events.js'
import type { Models, ServedModel } from './models.js'

export interface DistributionDeps {
  models: Models
  request: AgentRequest
  publish(topic: string, payload: Uint8Array): void
  /** The agent's latest hello (the models it holds). */
  hello(agentId: string): Hello | null
  emit: Emit
  log: Logger
  /** Largest chunk sent, bytes (≤ MAX_CHUNK_BYTES). */
  chunkBytes?: number
  /** How long an agent may take to fetch and open a model, ms. */
  loadTimeoutMs?: number
  /** Bytes written to the agent that it has not read yet (absent: not known, an external broker). */
  queuedBytes?(agentId: string): number
}

interface Sending {
  model: string
  sha256: string
  /** Per file, the end of the furthest chunk sent. */
  ends: Map<string, number>
  lastEmit: number
}

export class Distribution {
  private readonly sending = new Map<string, Sending>()
  private readonly loading = new Map<string, Promise<CommandReply<'load-model'>>>()
  private readonly views = new Map<string, TransferView>()
  /** Each agent's last answered fetch (its transfer id): a resend of it while bytes still wait for the agent is not answered twice. */
  private readonly lastTransfer = new Map<string, string>()

  constructor(private readonly deps: DistributionDeps) {}

  start(): void {}

  stop(): void {
    this.sending.clear()
    this.lastTransfer.clear()
  }

  /** The latest transfer of every agent that had one. */
  transfers(): TransferView[] {
    return [...this.views.values()]
  }

  /** True when the agent announced it holds exactly this model. */
  holds(agentId: string, m: ServedModel): boolean {
    return !!this.deps.hello(agentId)?.models.some((x) => x.id === m.id && x.sha256 === m.package.sha256)
  }

  /** Makes the agent hold the model (fetching it if needed); resolves when the agent has opened it. */
  async ensureOnAgent(agentId: string, m: ServedModel): Promise<void> {
    if (this.holds(agentId, m)) return
    const key = `${agentId}\n${m.id}\n${m.package.sha256}`
    let p = this.loading.get(key)
    if (!p) {
      p = this.deps.request(agentId, 'load-model', { model: m.id, sha256: m.package.sha256 }, this.deps.loadTimeoutMs ?? 30 * 60_000)
      this.loading.set(key, p)
      p.then(
        (r) => {
          this.deps.log.info({ agentId, ...r }, 'agent holds its model')
          this.report(agentId, m, 'done', packageBytes(m.package))
        },
        (err: unknown) => this.report(agentId, m, 'failed', this.sentBytes(agentId), errorMessage(err))
      ).finally(() => this.loading.delete(key))
    }
    await p
  }

  /** A fetch from an agent: the package, or one chunk of one of its files. */
  onFetch(agentId: string, payload: Buffer, topic: string): void {
    let header: ChunkHeader | null = null
    try {
      const f = parsePayload(FetchSchema, payload, topic)
      // An agent resends a fetch it has no answer to after a while; on a slow link the answer may still
      // be on its way: sending it again would only queue a second copy behind the first.
      if (this.lastTransfer.get(agentId) === f.transfer && (this.deps.queuedBytes?.(agentId) ?? 0) > 0) {
        this.deps.log.debug({ agentId, transfer: f.transfer }, 'fetch resent while its answer is still queued: not answered twice')
        return
      }
      this.lastTransfer.set(agentId, f.transfer)
      header = { transfer: f.transfer, model: f.model, sha256: f.sha256, offset: f.offset }
      const m = this.deps.models.forDevice(agentId)
      if (f.model !== m.id || f.sha256 !== m.package.sha256) {
        throw new UserError(`agent ${agentId} is planned with ${m.id} (sha256 ${m.package.sha256.slice(0, 12)}…), not ${f.model} (${f.sha256.slice(0, 12)}…)`)
      }
      if (!f.file) {
        this.deps.publish(topics.chunk(agentId), encodeChunk({ ...header, package: m.package }))
        return
      }
      const limit = Math.min(f.length, this.deps.chunkBytes ?? MAX_CHUNK_BYTES)
      const { data, totalBytes } = this.deps.models.readChunk(m.id, f.file, f.offset, limit)
      const chunkSha256 = createHash('sha256').update(data).digest('hex')
      this.deps.publish(topics.chunk(agentId), encodeChunk({ ...header, file: f.file, totalBytes, chunkSha256 }, data))
      this.sent(agentId, m, f.file, f.offset + data.length)
    } catch (err) {
      const message = errorMessage(err)
      this.deps.log.warn({ agentId, err: message }, 'refused model fetch')
      if (header && err instanceof UserError) this.deps.publish(topics.chunk(agentId), encodeChunk({ ...header, error: message }))
    }
  }

  private sent(agentId: string, m: ServedModel, file: string, end: number): void {
    let s = this.sending.get(agentId)
    if (!s || s.model !== m.id || s.sha256 !== m.package.sha256) {
      s = { model: m.id, sha256: m.package.sha256, ends: new Map(), lastEmit: 0 }
      this.sending.set(agentId, s)
    }
    s.ends.set(file, Math.max(s.ends.get(file) ?? 0, end))
    const now = Date.now()
    if (now - s.lastEmit >= 200) {
      s.lastEmit = now
      this.report(agentId, m, 'sending', this.sentBytes(agentId))
    }
  }

  private sentBytes(agentId: string): number {
    const s = this.sending.get(agentId)
    return s ? [...s.ends.values()].reduce((a, b) => a + b, 0) : 0
  }

  private report(agentId: string, m: ServedModel, state: TransferView['state'], bytes: number, error?: string): void {
    const view: TransferView = {
      agentId,
      model: m.id,
      sha256: m.package.sha256,
      state,
      bytes,
      totalBytes: packageBytes(m.package),
      ...(error ? { error } : {})
    }
    this.views.set(agentId, view)
    if (state !== 'sending') this.sending.delete(agentId)
    this.deps.emit('transfer', view)
  }
}
