/**
 * A device's health, because a throttling Pi silently spoils a calibration: temperature, the
 * firmware's throttling flags (`vcgencmd get_throttled`, where present), cpu0's frequency and
 * governor, load and memory. Read from Linux sysfs/procfs under a root that tests can point elsewhere
 * (EDGENT_SYSFS_ROOT); what a machine does not have is null.
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { freemem, loadavg } from 'node:os'
import { join } from 'node:path'
import { throttledFlags } from '../../shared/contracts/health.js'
import type { Health } from '../../shared/contracts/messages.js'
import { readMHz } from './machine.js'

export { throttledFlags } from '../../shared/contracts/health.js'

const read = (file: string): string | null => {
  try {
    return readFileSync(file, 'utf8').trim()
  } catch {
    return null
  }
}
const num = (t: string | null): number | null => {
  const n = t === null ? NaN : Number(t)
  return Number.isFinite(n) ? n : null
}

function vcgencmdThrottled(): Promise<number | null> {
  const bin = ['/usr/bin/vcgencmd', '/opt/vc/bin/vcgencmd'].find((b) => existsSync(b))
  if (!bin) return Promise.resolve(null)
  return new Promise((resolve) =>
    execFile(bin, ['get_throttled'], { timeout: 2000 }, (err, stdout) => {
      const m = /throttled=0x([0-9a-f]+)/i.exec(String(stdout))
      resolve(err || !m ? null : Number.parseInt(m[1]!, 16))
    })
  )
}

export async function readHealth(root: string = process.env['EDGENT_SYSFS_ROOT'] ?? '/'): Promise<Health> {
  const at = (p: string) => join(root, p)
  const cpufreq = at('sys/devices/system/cpu/cpu0/cpufreq')
  const mhz = (f: string) => readMHz(join(cpufreq, f))
  const milli = num(read(at('sys/class/thermal/thermal_zone0/temp')))
  const available = /^MemAvailable:\s+(\d+) kB$/m.exec(read(at('proc/meminfo')) ?? '')
  const bits = root === '/' ? await vcgencmdThrottled() : num(read(at('vcgencmd-throttled')))
  const [l1, l5, l15] = loadavg()
  return {
    at: new Date().toISOString(),
    temperatureC: milli === null ? null : Math.round(milli / 100) / 10,
    cpuCurMHz: mhz('scaling_cur_freq'),
    cpuMaxMHz: mhz('cpuinfo_max_freq'),
    governor: read(join(cpufreq, 'scaling_governor')),
    throttled: bits === null ? null : { bits, flags: throttledFlags(bits) },
    load: [l1!, l5!, l15!],
    freeMemoryBytes: freemem(),
    availableMemoryBytes: available ? Number(available[1]) * 1024 : null
  }
}
