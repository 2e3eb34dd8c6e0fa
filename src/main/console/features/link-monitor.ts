/**
 * The link monitor: each agent's uplink as measured on the device–edge link itself — samples from
 * acknowledged activation transfers and packet-train probes, smoothed by the estimator with change
 * detection (src/shared/algorithms/bandwidth.ts), stored, and handed to the planner when the estimate moves.
 * Idle agents are probed about once per interval.
 */
import type { Logger } from 'pino'
import { BandwidthEstimator, probeBytes } from '../../../shared/algorithms/bandwidth.js'
import type { AgentRequest } from '../../../shared/contracts/agent-api.js'
import { errorMessage } from '../../../shared/errors.js'
import type { Store } from '../../store/store.js'
import type { Emit } from '../api/events.js'

type Source = 'activation' | 'probe'

interface LinkState {
  estimator: BandwidthEstimator
  lastSampleKbps: number | null
  lastProbeAt: number
  lastActivationSampleAt: number
  probing: boolean
  /** Activation samples are stored at most once per STORE_EVERY_MS: bytes since the last stored row. */
  lastStoredAt: number
  unstoredBytes: number
}

/** One stored activation sample per agent per second at most, whatever the frame rate (probes are always stored). */
const STORE_EVERY_MS = 1000

export interface LinkMonitorDeps {
  store: Store
  emit: Emit
  log: Logger
  request: AgentRequest
  /** Agents connected now (probed when idle). */
  connected(): string[]
  /** The estimate of an agent moved: the planner may push another plan. */
  onEstimate(agentId: string, uplinkEstimateKbps: number): void
  /** How often an idle agent is probed, ms (0 = never). */
  probeIntervalMs: number
}

export class LinkMonitor {
  private readonly links = new Map<string, LinkState>()
  private timer: NodeJS.Timeout | null = null

  constructor(private readonly deps: LinkMonitorDeps) {}

  start(): void {
    if (this.deps.probeIntervalMs > 0) this.timer = setInterval(() => this.probeIdle(), this.deps.probeIntervalMs)
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  private link(id: string): LinkState {
    const l = this.links.get(id) ?? {
      estimator: new BandwidthEstimator(),
      lastSampleKbps: null,
      lastProbeAt: 0,
      lastActivationSampleAt: 0,
      probing: false,
      lastStoredAt: 0,
      unstoredBytes: 0
    }
    this.links.set(id, l)
    return l
  }

  /** The smoothed uplink estimate of an agent, kbit/s (null before the first sample). */
  estimateKbps(id: string): number | null {
    return this.links.get(id)?.estimator.kbps ?? null
  }

  addSample(agentId: string, uplinkSampleKbps: number, source: Source, bytes: number): void {
    const l = this.link(agentId)
    const u = l.estimator.add(uplinkSampleKbps)
    l.lastSampleKbps = uplinkSampleKbps
    const now = Date.now()
    if (source === 'activation') l.lastActivationSampleAt = now
    if (u.changed) this.deps.log.info({ agentId, kbps: Math.round(u.kbps) }, 'uplink estimate changed')
    // The stored series and the UI's events are aggregated: one activation row (and event) per second
    // carries the bytes of every frame since; probes are rare and each is stored.
    if (source === 'activation') l.unstoredBytes += bytes
    if (source === 'probe' || now - l.lastStoredAt >= STORE_EVERY_MS) {
      const stored = source === 'activation' ? l.unstoredBytes : bytes
      if (source === 'activation') {
        l.unstoredBytes = 0
        l.lastStoredAt = now
      }
      if (this.deps.store.devices.get(agentId)) this.deps.store.bandwidth.add(agentId, source, stored, uplinkSampleKbps, u.kbps)
      this.deps.emit('bandwidth', { id: agentId, uplinkEstimateKbps: u.kbps, uplinkSampleKbps, source })
    }
    if (l.estimator.kbps !== null) this.deps.onEstimate(agentId, l.estimator.kbps)
  }

  /** The estimate, probing once (16 KiB) when there is none yet. */
  async ensureEstimate(agentId: string): Promise<number> {
    const now = this.estimateKbps(agentId)
    if (now !== null) return now
    const r = await this.deps.request(agentId, 'probe', { bytes: 16384 }, 15_000)
    this.addSample(agentId, r.uplinkSampleKbps, 'probe', r.bytes)
    return this.estimateKbps(agentId) ?? r.uplinkSampleKbps
  }

  /**
   * Probes an agent's uplink now (a packet train of `bytes`, default a quarter second at the latest
   * sample) and returns the updated estimate, kbps.
   */
  async probeUplink(agentId: string, bytes?: number, timeoutMs = 60_000): Promise<number> {
    const l = this.link(agentId)
    l.lastProbeAt = Date.now()
    const r = await this.deps.request(agentId, 'probe', { bytes: bytes ?? probeBytes(l.lastSampleKbps ?? 1000) }, timeoutMs)
    this.addSample(agentId, r.uplinkSampleKbps, 'probe', r.bytes)
    return l.estimator.kbps ?? r.uplinkSampleKbps
  }

  /**
   * Probes each connected agent at most once per interval, unless activation transfers gave a sample
   * within it. A probe is about a quarter of a second of traffic at the latest sample (not the
   * smoothed estimate, so that after a drop the next probe is already short), 2 KiB–64 KiB.
   */
  private probeIdle(): void {
    const now = Date.now()
    const every = this.deps.probeIntervalMs
    for (const id of this.deps.connected()) {
      const l = this.link(id)
      if (l.probing || now - l.lastProbeAt < every || now - l.lastActivationSampleAt < every) continue
      l.probing = true
      this.probeUplink(id, undefined, 30_000)
        .catch((err: unknown) => this.deps.log.debug({ agentId: id, err: errorMessage(err) }, 'probe failed'))
        .finally(() => (l.probing = false))
    }
  }
}
