/**
 * The embedded default device: the same agent code as a child process on this machine, paired
 * automatically, its CPU slowed and its uplink limited.
 *
 * CPU, cpuMode 'slowdown' (the console's default): each device segment takes factor × the median of
 * its compute times here, frozen after 1,001 runs (the agent waits out the difference) — a steadily slower CPU. cpuMode 'cgroup': a cgroup v1 CFS quota (needs root
 * and a writable /sys/fs/cgroup/cpu) with the shortest period the share allows (quota 1 ms, period
 * 1 ms / share); CFS throttles per period, so a segment that fits the quota runs at full speed and
 * one that does not waits a period: per-inference latencies are bimodal. Without the cgroup
 * controller it falls back to 'slowdown'. Uplink: the agent's application-level limit (each frame waits its serialisation time). Real shaping with tc in a network namespace
 * is the testbed's job. The emulation is announced in the agent's hello.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { packageRoot } from '../../runtime/paths.js'

export interface LocalAgentOptions {
  id: string
  brokerUrl: string
  token: string
  modelDir: string
  /** Where it keeps the models fetched from the console. */
  cacheDir?: string
  /** Application-level uplink limit, kbps; null when the link is shaped for real (the testbed's tc). */
  emulatedUplinkKbps: number | null
  /** argv prefix the agent runs under (the testbed's `ip netns exec <ns>`). */
  prefix?: string[]
  /** The agent's log level (EDGENT_LOG_LEVEL); default its own (info). */
  logLevel?: string
  /** What to announce about the link when it is not limited in the application. */
  link?: Record<string, unknown>
  /** Share of one CPU the device gets (0.15 → about 6.7× slower on single-threaded work). */
  cpuQuota: number
  /** 'slowdown', or 'cgroup' where the machine allows it (else 'slowdown'). */
  cpuMode?: 'cgroup' | 'slowdown'
  /** The Node runtime the agent runs under (default: this process's, with Node semantics). */
  runtime?: NodeRuntime
  log: Logger
}

/** A binary that runs JavaScript as Node, and what its environment needs for that. */
export interface NodeRuntime {
  execPath: string
  env: Record<string, string>
}

/**
 * This process's runtime with Node semantics: plain Node as it is; inside Electron its binary would
 * open another app, unless ELECTRON_RUN_AS_NODE makes it behave as Node.
 */
export function nodeRuntime(versions: NodeJS.ProcessVersions = process.versions, execPath: string = process.execPath): NodeRuntime {
  return { execPath, env: versions['electron'] ? { ELECTRON_RUN_AS_NODE: '1' } : {} }
}

const CGROUP_ROOT = '/sys/fs/cgroup/cpu'
/** The kernel's smallest quota; the period is as short as the share allows (6.7 ms for 0.15). */
const QUOTA_US = 1000

function agentCommand(execPath: string): { cmd: string; args: string[] } {
  const root = packageRoot()
  const built = join(root, 'out', 'main', 'agent.js')
  if (existsSync(built)) return { cmd: execPath, args: [built] }
  return { cmd: execPath, args: ['--import', 'tsx', join(root, 'pi-agent', 'src', 'cli.ts')] }
}

export class LocalAgent {
  private child: ChildProcess | null = null
  private cgroup: string | null = null
  emulation: Record<string, unknown> = {}

  /** The agent process's pid while it runs. */
  get pid(): number | null {
    return this.child?.pid ?? null
  }

  constructor(private readonly opts: LocalAgentOptions) {}

  private makeCgroup(): string | null {
    if (this.opts.cpuMode === 'slowdown' || !existsSync(CGROUP_ROOT)) return null
    const dir = join(CGROUP_ROOT, `edgent-${this.opts.id}`)
    try {
      mkdirSync(dir, { recursive: true })
      // quota first when it shrinks below the old period's, period first otherwise: write both in an order the kernel accepts
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), '-1')
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(this.periodUs))
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(QUOTA_US))
      return dir
    } catch {
      return null
    }
  }

  private get periodUs(): number {
    return Math.round(QUOTA_US / this.opts.cpuQuota)
  }

  start(): void {
    const { id, log } = this.opts
    this.cgroup = this.makeCgroup()
    const factor = 1 / this.opts.cpuQuota
    this.emulation = {
      kind: 'local emulated device',
      cpu: this.cgroup
        ? {
            method: 'cgroup v1 CFS quota',
            quota: this.opts.cpuQuota,
            quotaUs: QUOTA_US,
            periodUs: this.periodUs,
            note: 'segments shorter than the quota may run at full speed'
          }
        : { method: 'slowdown: each device segment takes factor × its median compute time here (waits out the difference)', factor },
      uplink:
        this.opts.emulatedUplinkKbps !== null
          ? { method: 'application-level rate limit', kbps: this.opts.emulatedUplinkKbps }
          : (this.opts.link ?? { method: 'not limited' })
    }
    const runtime = this.opts.runtime ?? nodeRuntime()
    const { cmd: node, args: nodeArgs } = agentCommand(runtime.execPath)
    const [cmd, ...args] = [...(this.opts.prefix ?? []), node, ...nodeArgs]
    const child = spawn(
      cmd!,
      [...args, '--exit-with-parent', '--emulation', JSON.stringify(this.emulation), ...(this.cgroup ? [] : ['--slowdown', String(factor)])],
      {
        env: {
          ...process.env,
          ...runtime.env,
          EDGENT_BROKER: this.opts.brokerUrl,
          EDGENT_AGENT_ID: id,
          EDGENT_TOKEN: this.opts.token,
          EDGENT_MODEL_DIR: this.opts.modelDir,
          ...(this.opts.cacheDir ? { EDGENT_CACHE_DIR: this.opts.cacheDir } : {}),
          ...(this.opts.logLevel ? { EDGENT_LOG_LEVEL: this.opts.logLevel } : {}),
          ...(this.opts.emulatedUplinkKbps !== null ? { EDGENT_UPLINK_KBPS: String(this.opts.emulatedUplinkKbps) } : {})
        },
        stdio: ['ignore', 'inherit', 'inherit'],
        // its own process group: Ctrl-C at the console's terminal is the console's to handle — it
        // interrupts campaigns first, then stops this device — not a signal that kills the device
        // mid-campaign (recorded as the device's fault) while the console is still running
        detached: true
      }
    )
    if (this.cgroup && child.pid) {
      try {
        writeFileSync(join(this.cgroup, 'cgroup.procs'), String(child.pid))
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'could not move the local agent into its cgroup')
      }
    }
    child.on('exit', (code, signal) => log.info({ agentId: id, code, signal }, 'local agent exited'))
    this.child = child
    log.info({ agentId: id, pid: child.pid, emulation: this.emulation }, 'local emulated device started')
  }

  async stop(): Promise<void> {
    const c = this.child
    this.child = null
    if (c && c.exitCode === null) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          c.kill('SIGKILL')
          resolve()
        }, 5000)
        c.once('exit', () => {
          clearTimeout(t)
          resolve()
        })
        c.kill('SIGTERM')
      })
    }
    if (this.cgroup) {
      try {
        rmdirSync(this.cgroup)
      } catch {
        // still busy or already gone; harmless
      }
    }
  }
}
