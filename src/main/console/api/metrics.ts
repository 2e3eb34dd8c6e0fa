/**
 * Metrics for Prometheus (`GET /metrics` on the loopback API port, with the API token as a bearer
 * token), through prom-client: co-inference (inferences, lost, the latest batch's p50/p95 and
 * requirement-met share per device), plans pushed, the edge's load (workers, runs/s, utilisation,
 * the wait for a worker) and each device's state, uplink estimate and health. One registry per
 * console (several run in one test process).
 */
import { Counter, Gauge, Registry } from 'prom-client'
import type { ConsoleEvent, DeviceView, EdgeLoadView } from '../../../shared/contracts/console-api.js'

export interface MetricsSource {
  devices(): DeviceView[]
  load(): EdgeLoadView
  onEvent(listener: (e: ConsoleEvent) => void): () => void
}

export class ConsoleMetrics {
  readonly registry = new Registry()
  private readonly unsubscribe: () => void

  constructor(source: MetricsSource) {
    const r = [this.registry]
    const inferences = new Counter({ name: 'edgent_inferences_total', help: 'Co-inferences completed, per device', labelNames: ['agent'], registers: r })
    const lost = new Counter({ name: 'edgent_inferences_lost_total', help: 'Co-inferences lost, per device', labelNames: ['agent'], registers: r })
    const p50 = new Gauge({ name: 'edgent_batch_e2e_p50_ms', help: "The latest batch's median end-to-end latency, ms", labelNames: ['agent'], registers: r })
    const p95 = new Gauge({ name: 'edgent_batch_e2e_p95_ms', help: "The latest batch's p95 end-to-end latency, ms", labelNames: ['agent'], registers: r })
    const met = new Gauge({
      name: 'edgent_batch_requirement_met_ratio',
      help: "The latest batch's share of inferences within the requirement",
      labelNames: ['agent'],
      registers: r
    })
    const plans = new Counter({ name: 'edgent_plans_total', help: 'Plans pushed to devices', labelNames: ['agent'], registers: r })
    this.unsubscribe = source.onEvent((e) => {
      if (e.type === 'inferences') {
        const s = e.data.summary
        inferences.inc({ agent: s.agentId }, s.completed)
        lost.inc({ agent: s.agentId }, s.lost)
        if (s.p50Ms !== null) p50.set({ agent: s.agentId }, s.p50Ms)
        if (s.p95Ms !== null) p95.set({ agent: s.agentId }, s.p95Ms)
        met.set({ agent: s.agentId }, s.metShare)
      } else if (e.type === 'plan') plans.inc({ agent: e.data.id })
    })
    const edge = (name: string, help: string, read: (l: EdgeLoadView) => number) =>
      new Gauge({
        name,
        help,
        registers: r,
        collect() {
          this.set(read(source.load()))
        }
      })
    edge('edgent_edge_workers', 'ORT workers of the edge pool', (l) => l.workers)
    edge('edgent_edge_queued', 'Edge runs waiting for a worker now', (l) => l.queued)
    edge('edgent_edge_runs_per_second', 'Edge runs per second over the load window', (l) => l.runsPerSecond)
    edge('edgent_edge_utilisation_ratio', 'Busy share of the pool over the load window', (l) => l.utilisation)
    edge('edgent_edge_wait_p95_ms', "p95 of the runs' wait for a worker, ms", (l) => l.p95WaitMs)
    const device = (name: string, help: string, read: (d: DeviceView) => number | null | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['agent'],
        registers: r,
        collect() {
          this.reset()
          for (const d of source.devices()) {
            if (!d.paired) continue
            const v = read(d)
            if (v !== null && v !== undefined && Number.isFinite(v)) this.set({ agent: d.id }, v)
          }
        }
      })
    device('edgent_device_online', 'Whether the device is connected (1) or not (0)', (d) => (d.state === 'offline' || d.state === 'never-seen' ? 0 : 1))
    device('edgent_device_uplink_estimate_kbps', "The console's uplink estimate for the device, kbit/s", (d) => d.uplinkEstimateKbps)
    device('edgent_device_temperature_celsius', 'The device SoC temperature', (d) => d.health?.temperatureC)
    device('edgent_device_throttled', 'Whether the device reports throttling now (1) or not (0)', (d) =>
      d.health?.throttled ? (d.health.throttled.bits & 0xf ? 1 : 0) : null
    )
    device('edgent_device_calibration_stale', 'Whether the device calibration no longer matches it (1) or does (0)', (d) =>
      d.latencySource ? (d.latencySource.stale ? 1 : 0) : null
    )
  }

  text(): Promise<string> {
    return this.registry.metrics()
  }

  get contentType(): string {
    return this.registry.contentType
  }

  stop(): void {
    this.unsubscribe()
  }
}
