/**
 * The whole console as both shells run it: the core (broker, edge runtime, planner, store,
 * campaigns), the loopback API (CLI, browser UI and its WebSocket) and, by default, the local
 * emulated device. `edgent serve` prints what it started; the Electron entry adds a window.
 */
import { resolveModel } from '../models/library.js'
import { DEFAULT_SETTINGS } from '../../shared/contracts/settings.js'
import { accessSync, chmodSync, constants, readFileSync } from 'node:fs'
import { makeDirs } from '../runtime/data-dir.js'
import { networkInterfaces } from 'node:os'
import { join, resolve } from 'node:path'
import type { Logger } from 'pino'
import { UserError } from '../../shared/errors.js'
import { DEFAULT_CONSOLE, EdgentConsole } from '../console/console.js'
import { LocalAgent } from '../console/features/local-agent.js'
import { errorMessage } from '../../shared/errors.js'
import { ControlApi } from './http-server.js'
import { InstanceLock } from './instance-lock.js'
import type { NodeRuntime } from '../console/features/local-agent.js'
import type { Settings } from '../../shared/contracts/settings.js'

export interface StackOptions {
  mqttPort: number
  mqttHost: string
  /** MQTT over TLS on this port, or null for none. */
  mqttTlsPort?: number | null
  /** The TLS listener's address (default: mqttHost). */
  mqttTlsHost?: string
  httpPort: number
  dataDir: string
  localAgent: boolean
  broker?: string
  model: string
  localUplinkKbps: number
  localCpuQuota: number
  localCpu: 'cgroup' | 'slowdown'
  /** Which shell runs the stack, named in the data directory's lock: 'headless' or 'desktop'. */
  shell?: string
  /** The address Pis dial, named in pairing commands (default: lanAddress()). */
  advertiseHost?: string | null
  /** How the local device's Node process is started (inside Electron: its binary with ELECTRON_RUN_AS_NODE). */
  agentRuntime?: NodeRuntime
  /** The largest accuracy drop a lossy codec may cost a plan, percentage points (default 0.5). */
  maxCodecDropPts?: number
  /** false: plans over static exits only (`edgent serve --no-policies`). */
  policies?: boolean
  /** The largest file the console accepts by upload (a model to import), bytes (default 512 MiB). */
  maxUploadBytes?: number
  log: Logger
}

/** The default port of MQTT over TLS (IANA's secure-mqtt): the settings' default. */
export const DEFAULT_MQTTS_PORT = DEFAULT_SETTINGS.mqttsPort

export interface Stack {
  core: EdgentConsole
  api: ControlApi
  local: LocalAgent | null
  dataDir: string
  /** What the stack runs with, as settings (the Settings page shows it beside what is stored). */
  running(): Settings
  stop(): Promise<void>
}

/** Every non-internal IPv4 address of this machine, by interface. */
export function lanAddresses(): { iface: string; address: string }[] {
  return Object.entries(networkInterfaces()).flatMap(([iface, list]) =>
    (list ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => ({ iface, address: a.address }))
  )
}

/** The interface of the IPv4 default route (Linux /proc/net/route), if any. */
function defaultRouteInterface(): string | null {
  try {
    for (const line of readFileSync('/proc/net/route', 'utf8').split('\n').slice(1)) {
      const [iface, destination, , flags] = line.trim().split(/\s+/)
      // destination 0.0.0.0 and the route is up (RTF_UP)
      if (iface && destination === '00000000' && (Number.parseInt(flags ?? '0', 16) & 1) === 1) return iface
    }
  } catch {
    // not Linux, or no procfs: the first address below
  }
  return null
}

/**
 * The address a Pi on the LAN dials, named in pairing commands and credentials files: the one given
 * (`--advertise-host`, the Settings page), else the default route's interface's IPv4 (not a bridge's
 * or a VPN's), else the first non-internal IPv4.
 */
export function lanAddress(advertise?: string | null): string {
  if (advertise) return advertise
  const all = lanAddresses()
  const route = defaultRouteInterface()
  return (all.find((a) => a.iface === route) ?? all[0])?.address ?? '<console-address>'
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const dataDir = resolve(o.dataDir)
  // The data directory holds the database, the broker's TLS key and the control API token: its user's only.
  try {
    makeDirs(dataDir)
    chmodSync(dataDir, 0o700)
    accessSync(dataDir, constants.W_OK | constants.X_OK)
  } catch (err) {
    throw new UserError(
      `data directory ${dataDir} is not writable (${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}): choose another with --data-dir or EDGENT_DATA_DIR, or fix its owner and mode`
    )
  }
  const lock = InstanceLock.acquire(dataDir, o.shell ?? 'headless')
  const log = o.log
  if (lock.tookOver) log.info({ previous: lock.tookOver }, 'took over the data directory lock of a console that had stopped')
  try {
    return await startLocked(o, dataDir, lock, log)
  } catch (err) {
    lock.release()
    throw err
  }
}

async function startLocked(opts: StackOptions, dataDir: string, lock: InstanceLock, log: Logger): Promise<Stack> {
  // --model takes a library id as well as a folder or manifest (as every other command does).
  const o = opts.model ? { ...opts, model: resolveModel(opts.model, dataDir) } : opts
  const core = new EdgentConsole({
    ...DEFAULT_CONSOLE,
    dataDir,
    modelDir: o.model,
    mqttHost: o.mqttHost,
    mqttPort: o.mqttPort,
    ...(o.mqttTlsPort !== undefined && o.mqttTlsPort !== null && !o.broker ? { mqttTlsPort: o.mqttTlsPort, mqttTlsHost: o.mqttTlsHost ?? o.mqttHost } : {}),
    ...(o.broker ? { brokerUrl: o.broker } : {}),
    ...(o.maxCodecDropPts !== undefined ? { maxCodecDropPts: o.maxCodecDropPts } : {}),
    ...(o.policies === false ? { policies: false } : {}),
    ...(o.maxUploadBytes !== undefined ? { maxImportBytes: o.maxUploadBytes } : {}),
    log
  })
  try {
    await core.start()
  } catch (err) {
    await core.stop().catch(() => undefined)
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE') {
      // The listen error names its port: say which listener could not have it.
      const port = (err as { port?: number }).port
      const which =
        port !== undefined && port === o.mqttTlsPort && port !== o.mqttPort
          ? `MQTT over TLS port ${port} is in use (another broker?): choose another with --mqtts-port`
          : port !== undefined && port === o.mqttPort
            ? `MQTT port ${port} is in use (another broker?): choose another with --mqtt-port`
            : `MQTT port ${o.mqttPort} or TLS port ${o.mqttTlsPort ?? '—'} is in use (another broker?): choose with --mqtt-port / --mqtts-port`
      throw new UserError(which)
    }
    throw err
  }
  const running = (): Settings => ({
    mqttPort: core.mqttPort,
    mqttHost: o.mqttHost,
    mqttsEnabled: !!core.mqttTlsPort,
    mqttsPort: core.mqttTlsPort || o.mqttTlsPort || DEFAULT_MQTTS_PORT,
    mqttsHost: o.mqttTlsHost ?? o.mqttHost,
    httpPort: api.port || o.httpPort,
    advertiseHost: o.advertiseHost ?? null,
    localDevice: { enabled: o.localAgent, uplinkKbps: o.localUplinkKbps, cpuQuota: o.localCpuQuota, cpu: o.localCpu }
  })
  const api = new ControlApi(core, {
    host: '127.0.0.1',
    port: o.httpPort,
    dataDir,
    running,
    brokerAddress: () => (o.broker ? new URL(o.broker).host : `${lanAddress(o.advertiseHost)}:${core.mqttPort}`)
  })
  try {
    await api.start()
  } catch (err) {
    await core.stop()
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new UserError(`HTTP port ${o.httpPort} is in use: choose one with --http-port`)
    throw err
  }
  let local: LocalAgent | null = null
  if (o.localAgent) {
    const { token } = core.pair('local-pi', { force: true }) // a new token at every start: it never leaves this process
    local = new LocalAgent({
      id: 'local-pi',
      brokerUrl: o.broker ?? `mqtt://127.0.0.1:${core.mqttPort}`,
      token,
      modelDir: o.model,
      cacheDir: join(dataDir, 'agent-cache', 'local-pi'),
      ...(o.agentRuntime ? { runtime: o.agentRuntime } : {}),
      emulatedUplinkKbps: o.localUplinkKbps,
      cpuQuota: o.localCpuQuota,
      cpuMode: o.localCpu,
      log: log.child({ part: 'local-agent' })
    })
    local.start()
  }
  let stopped = false
  return {
    core,
    api,
    local,
    dataDir,
    running,
    async stop() {
      if (stopped) return
      stopped = true
      try {
        await local?.stop()
        await api.stop()
        await core.stop()
      } finally {
        lock.release()
      }
    }
  }
}
