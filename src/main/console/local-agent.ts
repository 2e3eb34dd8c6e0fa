/**
 * The embedded default device: the same agent code as a child process on this machine, paired
 * automatically, its CPU slowed and its uplink limited.
 *
 * CPU: a cgroup v1 CFS quota (needs root and a writable /sys/fs/cgroup/cpu), with a 10 ms period so
 * that even a 1 ms inference is throttled; elsewhere a documented fallback, `--slowdown`, where the
 * agent waits (factor − 1) × each device segment's compute time. Uplink: the agent's application-
 * level limit (each frame waits its serialisation time). Real shaping with tc in a network namespace
 * is the testbed's job. The emulation is announced in the agent's hello.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { packageRoot } from '../paths.js'

export interface LocalAgentOptions {
  id: string
  brokerUrl: string
  token: string
  modelDir: string
  uplinkKbps: number
  /** Share of one CPU the device gets (0.15 → about 6.7× slower on single-threaded work). */
  cpuQuota: number
  log: Logger
}

const CGROUP_ROOT = '/sys/fs/cgroup/cpu'
const PERIOD_US = 10_000

function agentCommand(): { cmd: string; args: string[] } {
  const root = packageRoot()
  const built = join(root, 'out', 'main', 'agent.js')
  if (existsSync(built)) return { cmd: process.execPath, args: [built] }
  return { cmd: process.execPath, args: ['--import', 'tsx', join(root, 'pi-agent', 'src', 'cli.ts')] }
}

export class LocalAgent {
  private child: ChildProcess | null = null
  private cgroup: string | null = null
  emulation: Record<string, unknown> = {}

  constructor(private readonly opts: LocalAgentOptions) {}

  private makeCgroup(): string | null {
    if (!existsSync(CGROUP_ROOT)) return null
    const dir = join(CGROUP_ROOT, `edgent-${this.opts.id}`)
    try {
      mkdirSync(dir, { recursive: true })
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(PERIOD_US))
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(this.opts.cpuQuota * PERIOD_US))))
      return dir
    } catch {
      return null
    }
  }

  start(): void {
    const { id, log } = this.opts
    this.cgroup = this.makeCgroup()
    const factor = 1 / this.opts.cpuQuota
    this.emulation = {
      kind: 'local emulated device',
      cpu: this.cgroup
        ? { method: 'cgroup v1 CFS quota', quota: this.opts.cpuQuota, periodUs: PERIOD_US }
        : { method: 'fallback: waits (factor − 1) × compute after each device segment', factor },
      uplink: { method: 'application-level rate limit', kbps: this.opts.uplinkKbps }
    }
    const { cmd, args } = agentCommand()
    const child = spawn(cmd, [...args, '--emulation', JSON.stringify(this.emulation), ...(this.cgroup ? [] : ['--slowdown', String(factor)])], {
      env: {
        ...process.env,
        EDGENT_BROKER: this.opts.brokerUrl,
        EDGENT_AGENT_ID: id,
        EDGENT_TOKEN: this.opts.token,
        EDGENT_MODEL_DIR: this.opts.modelDir,
        EDGENT_UPLINK_KBPS: String(this.opts.uplinkKbps)
      },
      stdio: ['ignore', 'inherit', 'inherit']
    })
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
