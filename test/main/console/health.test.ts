/**
 * Device health: the agent reads temperature, throttling, frequency, governor, load and memory
 * (from a fake sysfs tree here, as a Pi's would read) and reports it every few seconds; the console
 * shows it per device, stores both sides' health with every campaign chunk, exports it, and warns
 * when a campaign ran throttled or at a changing frequency.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { healthWarnings } from '../../../src/main/calibration/health-warnings.js'
import { exportCalibration } from '../../../src/main/cli/campaign.js'
import { healthText } from '../../../src/main/cli/serve.js'
import type { EdgentConsole } from '../../../src/main/console/console.js'
import { readHealth, throttledFlags } from '../../../src/main/runtime/health.js'
import type { Health } from '../../../src/shared/contracts/messages.js'
import { deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from './harness.js'

/** A Raspberry Pi's files, as far as the health reader looks. */
function fakePi(o: { tempMilli: number; curKHz: number; throttled: string }): string {
  const root = mkdtempSync(join(tmpdir(), 'edgent-sysfs-'))
  const cpufreq = join(root, 'sys/devices/system/cpu/cpu0/cpufreq')
  mkdirSync(cpufreq, { recursive: true })
  mkdirSync(join(root, 'sys/class/thermal/thermal_zone0'), { recursive: true })
  mkdirSync(join(root, 'proc'))
  writeFileSync(join(root, 'sys/class/thermal/thermal_zone0/temp'), `${o.tempMilli}\n`)
  writeFileSync(join(cpufreq, 'scaling_cur_freq'), `${o.curKHz}\n`)
  writeFileSync(join(cpufreq, 'cpuinfo_max_freq'), '1800000\n')
  writeFileSync(join(cpufreq, 'scaling_governor'), 'ondemand\n')
  writeFileSync(join(root, 'proc/meminfo'), 'MemTotal:        3884000 kB\nMemAvailable:    2000000 kB\n')
  writeFileSync(join(root, 'vcgencmd-throttled'), `${Number.parseInt(o.throttled, 16)}\n`)
  return root
}

const h = (over: Partial<Health>): Health => ({
  at: '',
  temperatureC: 50,
  cpuCurMHz: 1500,
  cpuMaxMHz: 1800,
  governor: 'ondemand',
  throttled: null,
  load: [0, 0, 0],
  freeMemoryBytes: 1,
  availableMemoryBytes: 1,
  ...over
})

describe('device health', () => {
  it('reads a Pi-like tree and decodes the throttling bits', async () => {
    const r = await readHealth(fakePi({ tempMilli: 71234, curKHz: 600000, throttled: '50005' }))
    expect(r).toMatchObject({ temperatureC: 71.2, cpuCurMHz: 600, cpuMaxMHz: 1800, governor: 'ondemand', availableMemoryBytes: 2000000 * 1024 })
    expect(r.throttled!.flags).toEqual(['under-voltage now', 'throttled now', 'under-voltage has occurred', 'throttling has occurred'])
    expect(throttledFlags(0)).toEqual([])
    // A machine without these files reports what it has and null for the rest.
    expect(await readHealth(mkdtempSync(join(tmpdir(), 'edgent-empty-')))).toMatchObject({
      temperatureC: null,
      cpuCurMHz: null,
      governor: null,
      throttled: null
    })
  })

  it('warns about throttling now, a changing frequency and a hot device, and says nothing of a steady one', () => {
    const steady = [0, 1, 2].map(() => ({ side: 'device' as const, health: h({}) }))
    expect(healthWarnings(steady)).toEqual([])
    expect(healthWarnings([{ side: 'device', health: h({ throttled: { bits: 0x50000, flags: throttledFlags(0x50000) } }) }])).toEqual([]) // only in the past
    const w = healthWarnings([
      { side: 'device', health: h({ cpuCurMHz: 600, throttled: { bits: 0x4, flags: throttledFlags(0x4) } }) },
      { side: 'device', health: h({ cpuCurMHz: 1500, temperatureC: 82.5 }) },
      { side: 'edge', health: h({}) }
    ])
    expect(w).toEqual([
      'the device was throttled at 1 of 2 chunks (throttled now): its measurements may be slower than its steady speed',
      `the device's CPU frequency changed during the campaign (600–1500 MHz): its measurements mix speeds (a fixed governor such as "performance" avoids it)`,
      'the device reached 82.5 °C: close to where a Raspberry Pi throttles'
    ])
  })

  describe('reported by a real agent', () => {
    let core: EdgentConsole
    let agent: AgentProc | null = null
    beforeAll(async () => {
      core = await startConsole()
      const token = core.pair('pi-hot').token
      const root = fakePi({ tempMilli: 75000, curKHz: 1500000, throttled: '50005' })
      agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'pi-hot', token, [], ['env', `EDGENT_SYSFS_ROOT=${root}`, 'EDGENT_HEALTH_MS=200'])
      await waitFor('pi-hot online', () => deviceState(core, 'pi-hot') === 'online')
    })
    afterAll(async () => {
      await stopAgent(agent)
      await core?.stop()
    })

    it('shows it per device, warns about the campaign it spoilt, and exports it with every chunk', async () => {
      const dev = await waitFor('a health report', () => core.devices().find((d) => d.id === 'pi-hot' && d.health)?.health, 10_000)
      expect(dev).toMatchObject({ temperatureC: 75, cpuCurMHz: 1500, governor: 'ondemand' })
      expect(healthText(dev)).toBe(`75 °C · 1500 MHz (ondemand) · load ${dev.load[0]!.toFixed(2)} · THROTTLED: under-voltage now, throttled now`)
      const id = core.startCampaign('pi-hot', 'model', 1)
      const s = await waitFor(
        'the campaign',
        () => {
          const st = core.campaigns.status(id)!
          return st.status !== 'running' && st
        },
        60_000
      )
      expect(s.status).toBe('done')
      expect(s.warnings[0]).toMatch(/^the device was throttled at 2 of 2 chunks \(under-voltage now, throttled now\)/)
      const rows = core.store.campaigns.health(id)
      expect(rows.filter((r) => r.side === 'device').map((r) => r.chunk)).toEqual([0, 1])
      expect(rows.filter((r) => r.side === 'edge')).toHaveLength(2)
      const dir = mkdtempSync(join(tmpdir(), 'edgent-health-export-'))
      exportCalibration({ dataDir: core.opts.dataDir, out: join(dir, 'cal.json'), format: 'json', campaign: id })
      const doc = JSON.parse(readFileSync(join(dir, 'cal.json'), 'utf8')) as { campaigns: { health: { side: string; health: Health }[] }[] }
      expect(doc.campaigns[0]!.health.filter((r) => r.side === 'device').every((r) => r.health.temperatureC === 75)).toBe(true)
    }, 90_000)
  })
})
