/**
 * How an emulated device differs from the machine it runs on — injected into the agent by its
 * command line (the console's local device, the testbed); a real Pi gets none. An emulated uplink:
 * each frame first waits its serialisation time (an application-level rate limit), and campaigns may
 * set the rate (`set-uplink`). A slower CPU: each device segment takes `slowdown` × its median
 * compute time here (see slowCpu), and layer timings are reported scaled the same.
 */
import type { Logger } from 'pino'
import { median } from 'simple-statistics'
import type { CommandReply, LayerTable } from '../../src/shared/contracts/agent-api.js'
import { UserError } from '../../src/shared/errors.js'

/** Runs of a device segment after which the slowdown emulation freezes its cost (see slowCpu). */
const EMULATION_RUNS = 1001

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export interface EmulationOptions {
  /** The emulated uplink, kbit/s (absent: the link is not emulated, and cannot be set remotely). */
  uplinkKbps?: number
  /** The CPU slowdown factor (absent or 1: this machine's speed). */
  slowdown?: number
  /** How the device is emulated, announced in its hello (cgroup quota, shaping…). */
  description?: Record<string, unknown>
  log: Logger
}

/** The refusal of `set-uplink` by a device whose link is not emulated. */
export const NO_EMULATED_UPLINK =
  'this agent has no emulated uplink (it was started without --uplink-kbps): its link cannot be set remotely; shape it with tc (npm run testbed)'

export class Emulation {
  private uplinkKbps: number | null
  /** The CPU slowdown factor (1: none). */
  readonly slowdown: number
  readonly description: Record<string, unknown> | undefined
  /** Per device segment: its compute times here so far, then (after EMULATION_RUNS) the frozen median. */
  private readonly computeMs = new Map<string, number[] | number>()

  constructor(private readonly o: EmulationOptions) {
    this.uplinkKbps = o.uplinkKbps ?? null
    this.slowdown = o.slowdown ?? 1
    // Announced in the hello: the console's calibration must know when the device's speed changes.
    this.description =
      o.description ??
      (this.slowdown !== 1 || o.uplinkKbps
        ? {
            kind: 'emulated device',
            ...(this.slowdown !== 1 ? { cpu: { method: 'slowdown', factor: this.slowdown } } : {}),
            ...(o.uplinkKbps ? { uplink: { method: 'application-level rate limit' } } : {})
          }
        : undefined)
  }

  /** Changes the emulated uplink (a sweep campaign's grid); refused when the link is not emulated. */
  setUplink(kbps: number): CommandReply<'set-uplink'> {
    const previousKbps = this.uplinkKbps
    if (previousKbps === null) throw new UserError(NO_EMULATED_UPLINK)
    this.uplinkKbps = kbps
    this.o.log.info({ previousKbps, kbps }, 'emulated uplink set')
    return { previousKbps, kbps }
  }

  /** Waits the serialisation time of `bytes` at the emulated uplink (none when it is not emulated). */
  async limitUplink(bytes: number): Promise<void> {
    if (this.uplinkKbps) await sleep((bytes * 8) / this.uplinkKbps)
  }

  /**
   * The slowdown emulation: a device `slowdown`× slower than this machine, and steady. A segment
   * takes slowdown × the median of its compute times here — over all its runs so far, frozen after
   * EMULATION_RUNS — made up by a wait after the real run. (Waiting (slowdown − 1) × each run's own
   * time instead multiplied this machine's drift by the factor.) A Pi's own jitter is not emulated.
   * The wait sleeps, then spins its last 1.5 ms (timers are whole milliseconds). Returns the device
   * time to report; without a slowdown, the run's own.
   */
  async slowCpu(key: string, ms: number): Promise<number> {
    const target = this.emulatedMs(key, ms)
    await this.waitOut(target - ms)
    return target
  }

  /**
   * The device time of a run of segment `key` that took `ms` here (see slowCpu), recorded but not
   * waited out: a device that runs several sessions back to back (a confidence-exit policy's trunk
   * pieces and heads) waits their sum once, after the last (waitOut) — waiting after each would idle
   * this machine between them, and each session would then start cold (its threads parked, its
   * caches cooled), as a real device running them back to back does not: ten sessions measured 1.3–2×
   * their back-to-back times here that way.
   */
  emulatedMs(key: string, ms: number): number {
    const k = this.slowdown
    if (!(k > 1)) return ms
    let typical = this.computeMs.get(key) ?? []
    if (Array.isArray(typical)) {
      typical.push(ms)
      this.computeMs.set(key, typical.length >= EMULATION_RUNS ? median(typical) : typical)
      typical = median(typical)
    }
    return Math.max(k * typical, ms)
  }

  /** Waits `extra` ms (none when ≤ 0): sleeps, then spins the last 1.5 ms (the emulated device is computing). */
  async waitOut(extra: number): Promise<void> {
    if (!(extra > 0)) return
    const until = performance.now() + extra
    if (extra > 2) await sleep(Math.floor(extra - 1.5))
    while (performance.now() < until) {
      /* spin: the emulated device is computing */
    }
  }

  /**
   * The idle a slowed device's frame leaves after `ms` of compute here: its slowdown, waited out (as
   * the pipeline does after every frame). The layer timer paces its policy pieces with it, so they are
   * timed starting as cold as at run time. None without a slowdown.
   */
  idleAfter(ms: number): Promise<void> {
    return this.waitOut((this.slowdown - 1) * ms)
  }

  /** A layer table as the slowed device would have measured it. */
  scaleTable(t: LayerTable): LayerTable {
    const k = this.slowdown
    if (k === 1) return t
    const scale = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([id, ms]) => [id, ms * k]))
    return {
      ...t,
      layerMs: scale(t.layerMs),
      exitFusedMs: scale(t.exitFusedMs),
      ...(t.piecesMs ? { piecesMs: scale(t.piecesMs) } : {}),
      ...(t.layerRepsMs ? { layerRepsMs: Object.fromEntries(Object.entries(t.layerRepsMs).map(([id, xs]) => [id, xs.map((ms) => ms * k)])) } : {})
    }
  }
}
