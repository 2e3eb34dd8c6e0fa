/**
 * A network namespace for an agent, joined to the host by a veth pair, with its uplink shaped by tc
 * for real (the paper shaped its link with WonderShaper). Needs root and iproute2. Addresses are
 * private to the pair: 10.199.<n>.1 on the host side, 10.199.<n>.2 inside.
 */
import { execFileSync } from 'node:child_process'
import { UserError } from '../../shared/errors.js'

function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

function tc(...args: string[]): string {
  return execFileSync('tc', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/** Why this machine cannot create namespaces and shape links, or null when it can. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and tc)'
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' })
    execFileSync('tc', ['-V'], { stdio: 'ignore' })
  } catch {
    return 'needs iproute2 (ip and tc)'
  }
  return null
}

export class AgentNetns {
  readonly name: string
  readonly hostIf: string
  readonly nsIf: string
  readonly hostIp: string
  readonly nsIp: string

  constructor(readonly index: number) {
    if (!Number.isInteger(index) || index < 1 || index > 250) throw new UserError(`netns index must be 1..250, got ${index}`)
    this.name = `edgent-ns${index}`
    this.hostIf = `edg${index}h`
    this.nsIf = `edg${index}a`
    this.hostIp = `10.199.${index}.1`
    this.nsIp = `10.199.${index}.2`
  }

  create(): void {
    const why = netnsUnavailable()
    if (why) throw new UserError(`cannot create a network namespace: ${why}`)
    this.destroy()
    ip('netns', 'add', this.name)
    ip('link', 'add', this.hostIf, 'type', 'veth', 'peer', 'name', this.nsIf)
    ip('link', 'set', this.nsIf, 'netns', this.name)
    ip('addr', 'add', `${this.hostIp}/30`, 'dev', this.hostIf)
    ip('link', 'set', this.hostIf, 'up')
    ip('netns', 'exec', this.name, 'ip', 'addr', 'add', `${this.nsIp}/30`, 'dev', this.nsIf)
    ip('netns', 'exec', this.name, 'ip', 'link', 'set', this.nsIf, 'up')
    ip('netns', 'exec', this.name, 'ip', 'link', 'set', 'lo', 'up')
  }

  /** Shapes the agent's uplink (egress of its veth end) with a token bucket; null removes shaping. */
  shapeUplink(kbps: number | null): void {
    if (kbps === null) {
      try {
        ip('netns', 'exec', this.name, 'tc', 'qdisc', 'del', 'dev', this.nsIf, 'root')
      } catch {
        // no qdisc to remove
      }
      return
    }
    // A small bucket (one MTU-sized burst) so that short transfers see the rate, and a deep queue
    // so that TCP is delayed rather than dropped.
    ip('netns', 'exec', this.name, 'tc', 'qdisc', 'replace', 'dev', this.nsIf, 'root', 'tbf', 'rate', `${kbps}kbit`, 'burst', '1600', 'limit', '1000000')
  }

  /** Shapes the agent's downlink (egress of the host's veth end) the same way; null removes it. */
  shapeDownlink(kbps: number | null): void {
    if (kbps === null) {
      try {
        tc('qdisc', 'del', 'dev', this.hostIf, 'root')
      } catch {
        // no qdisc to remove
      }
      return
    }
    tc('qdisc', 'replace', 'dev', this.hostIf, 'root', 'tbf', 'rate', `${kbps}kbit`, 'burst', '1600', 'limit', '1000000')
  }

  /** argv prefix that runs a command inside the namespace. */
  get exec(): string[] {
    return ['ip', 'netns', 'exec', this.name]
  }

  destroy(): void {
    try {
      ip('link', 'del', this.hostIf)
    } catch {
      // already gone
    }
    try {
      ip('netns', 'del', this.name)
    } catch {
      // already gone
    }
  }
}
