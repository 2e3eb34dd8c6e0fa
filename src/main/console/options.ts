/** The console core's options and their defaults (the shells override ports, hosts and directories). */
import type { Routing } from './features/workers.js'
import type { Logger } from 'pino'

export interface ConsoleOptions {
  dataDir: string
  modelDir: string
  /** Embedded broker address; ignored with `brokerUrl`. */
  mqttHost: string
  mqttPort: number
  /** MQTT over TLS beside the plain listener (embedded broker only): its port (0: any free one), or null for none. */
  mqttTlsPort?: number | null
  /** The TLS listener's address (default: mqttHost). */
  mqttTlsHost?: string
  /** An external broker (Mosquitto, EMQX) instead of the embedded one. */
  brokerUrl?: string
  /** Largest MQTT packet after CONNECT (activations must fit), bytes. */
  maxPacketBytes: number
  /** Repetitions when timing layers (edge at start, device on first contact). */
  profileReps: number
  /** How often an idle agent's uplink is probed, ms (0 = never). */
  probeIntervalMs: number
  /** Largest model chunk sent to an agent, bytes (default and cap: 1 MiB). */
  transferChunkBytes?: number
  /** Largest file accepted by an upload or an import through the console API, bytes (default 512 MiB). */
  maxImportBytes?: number
  /** ORT worker threads of the edge (default: one per core, at most 4: edgeWorkers()). */
  edgeWorkers?: number
  /** The console's own pool serves edge runs beside the paired edge workers (default true; issue 34). */
  localEdge?: boolean
  /** How edge runs are spread over the workers (default load-aware). */
  edgeRouting?: Routing
  /**
   * Plan with the edge's measured load (default true): a plan's edge part costs the queueing delay
   * the edge's recent runs measured (edge-load.ts). false: load-blind, as if each device had the edge to itself.
   */
  loadAware?: boolean
  /** The largest accuracy drop a lossy codec may cost a plan, percentage points (default 0.5). */
  maxCodecDropPts?: number
  /** Whether plans may use the models' confidence-exit policies (default true; per device: exitPolicies). */
  policies?: boolean
  log: Logger
}

export const DEFAULT_CONSOLE: Omit<ConsoleOptions, 'dataDir' | 'modelDir' | 'log'> = {
  mqttHost: '0.0.0.0',
  mqttPort: 1883,
  maxPacketBytes: 2 * 1024 * 1024,
  profileReps: 8,
  probeIntervalMs: 1000
}
