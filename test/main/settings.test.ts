/**
 * Settings (`<data dir>/settings.json`): parsed whole with the field named on a refusal, written
 * whole (0600), and used by `edgent serve` wherever no flag was given; the console API shows what is
 * stored beside what runs.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { callConsole, findConsole } from '../../src/main/cli/client.js'
import { readSettings, writeSettings } from '../../src/main/runtime/settings-file.js'
import { changedSettings, DEFAULT_SETTINGS, parseSettings } from '../../src/shared/contracts/settings.js'
import { freePort, waitFor } from './console/harness.js'
import { edgentBin } from './serve-process.js'

describe('settings', () => {
  it('complete a partial file with the defaults and refuse a bad field by name', () => {
    expect(parseSettings({ httpPort: 9000, localDevice: { cpuQuota: 0.5 } }, 's.json')).toEqual({
      ...DEFAULT_SETTINGS,
      httpPort: 9000,
      localDevice: { ...DEFAULT_SETTINGS.localDevice, cpuQuota: 0.5 }
    })
    expect(() => parseSettings({ mqttPort: 0 }, 's.json')).toThrow('s.json: mqttPort: a port from 1 to 65535')
    expect(() => parseSettings({ localDevice: { cpuQuota: 2 } }, 's.json')).toThrow('s.json: localDevice.cpuQuota: a share of one CPU in (0, 1]')
    expect(() => parseSettings({ colour: 'red' }, 's.json')).toThrow(/s\.json: .*colour/)
    expect(() => parseSettings([], 's.json')).toThrow('s.json: expected a JSON object of settings')
    // two of the console's own listeners on one port: refused here, not at the next start as "in use"
    expect(() => parseSettings({ mqttPort: 8080 }, 's.json')).toThrow('s.json: httpPort: port 8080 is also the mqttPort: each listener needs its own port')
    expect(() => parseSettings({ mqttsPort: 8080 }, 's.json')).toThrow('s.json: httpPort: port 8080 is also the mqttsPort')
    expect(parseSettings({ mqttsPort: 8080, mqttsEnabled: false }, 's.json').mqttsPort).toBe(8080) // TLS off: its port is unused
  })

  it('compare an automatic MQTT address with what it stands for', () => {
    expect(changedSettings(DEFAULT_SETTINGS, { ...DEFAULT_SETTINGS, mqttHost: '127.0.0.1' })).toEqual([])
    expect(changedSettings(DEFAULT_SETTINGS, { ...DEFAULT_SETTINGS, mqttHost: '0.0.0.0' })).toEqual(['mqttHost'])
    expect(changedSettings(DEFAULT_SETTINGS, { ...DEFAULT_SETTINGS, localDevice: { ...DEFAULT_SETTINGS.localDevice, enabled: false } })).toEqual([
      'localDevice.enabled'
    ])
  })

  it('are written whole with mode 0600, and a file that is not settings names the problem and the fix', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-settings-'))
    expect(readSettings(dir)).toEqual(DEFAULT_SETTINGS)
    writeSettings(dir, { ...DEFAULT_SETTINGS, httpPort: 9001 })
    expect(statSync(join(dir, 'settings.json')).mode & 0o777).toBe(0o600)
    expect(readSettings(dir).httpPort).toBe(9001)
    writeFileSync(join(dir, 'settings.json'), '{"httpPort": ')
    expect(() => readSettings(dir)).toThrow(/settings\.json: not JSON .*delete it to start with the defaults/)
    writeFileSync(join(dir, 'settings.json'), '{"httpPort": "eighty"}')
    expect(() => readSettings(dir)).toThrow(/settings\.json: httpPort: .* — fix it on the Settings page or in the file/)
  })

  const serve = (args: string[]) => {
    const child = spawn(process.execPath, [edgentBin, 'serve', '--log-level', 'warn', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)))
    /** Its control file once written; a console that exited instead fails the wait at once, with its log. */
    const ready = () =>
      waitFor(
        'the control file',
        () => {
          if (child.exitCode !== null || child.signalCode !== null) throw new Error(`edgent serve exited (${child.exitCode ?? child.signalCode}): ${stderr}`)
          return findConsole(args[args.indexOf('--data-dir') + 1]!)
        },
        60_000
      )
    return { child, exited, ready, stderr: () => stderr }
  }

  it('edgent serve starts with the stored settings, a flag overriding one, and the API shows stored beside running', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-settings-'))
    const [mqtt, http, flagHttp] = [await freePort(), await freePort(), await freePort()]
    writeSettings(dir, {
      ...DEFAULT_SETTINGS,
      mqttPort: mqtt,
      mqttHost: '127.0.0.1',
      mqttsEnabled: false,
      httpPort: http,
      localDevice: { ...DEFAULT_SETTINGS.localDevice, enabled: false }
    })
    const s = serve(['--data-dir', dir, '--http-port', String(flagHttp)])
    try {
      const c = await s.ready()
      expect(c).toMatchObject({ mqttPort: mqtt, httpPort: flagHttp }) // the stored MQTT port; the flag's HTTP port
      expect(await callConsole(c, 'devices', {})).toEqual([]) // the stored "no local device"
      const view = await callConsole(c, 'settings', {})
      expect(view).toMatchObject({ dataDir: dir, shell: 'headless', restartNeeded: ['httpPort'] })
      expect(view.running).toMatchObject({ mqttPort: mqtt, mqttsEnabled: false, httpPort: flagHttp, localDevice: { enabled: false } })
      // A bad value is refused whole by the API, and nothing is written.
      await expect(callConsole(c, 'settingsUpdate', { settings: { ...view.stored, mqttPort: 0 } })).rejects.toThrow(/settings\.mqttPort/)
      expect(JSON.parse(readFileSync(join(dir, 'settings.json'), 'utf8')).mqttPort).toBe(mqtt)
      const after = await callConsole(c, 'settingsUpdate', {
        settings: { ...view.stored, httpPort: flagHttp, localDevice: { ...view.stored.localDevice, enabled: true } }
      })
      expect(after.restartNeeded).toEqual(['localDevice.enabled'])
    } finally {
      s.child.kill('SIGTERM')
      await s.exited
    }
  }, 90_000)

  it('edgent serve refuses a settings file that is not valid: one line naming the field, exit 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-settings-'))
    writeFileSync(join(dir, 'settings.json'), JSON.stringify({ httpPort: 70000 }))
    const s = serve(['--data-dir', dir, '--no-local-agent'])
    expect(await s.exited).toBe(2)
    expect(s.stderr().trim().split('\n')).toEqual([
      `edgent: ${join(dir, 'settings.json')}: httpPort: a port from 1 to 65535 — fix it on the Settings page or in the file, or delete it to start with the defaults`
    ])
  }, 30_000)

  it('names the advertised address in credentials: --advertise-host on a running console, the stored setting when none runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-settings-'))
    const out = mkdtempSync(join(tmpdir(), 'edgent-cred-'))
    const pair = (id: string) =>
      new Promise<{ broker: string }>((resolve, reject) => {
        const c = spawn(process.execPath, [edgentBin, 'pair', id, '--data-dir', dir, '--out', join(out, `${id}.json`)], { stdio: 'ignore' })
        c.once('exit', (code) =>
          code === 0 ? resolve(JSON.parse(readFileSync(join(out, `${id}.json`), 'utf8')) as { broker: string }) : reject(new Error(`exit ${code}`))
        )
      })
    const s = serve([
      '--data-dir',
      dir,
      '--no-local-agent',
      '--no-mqtts',
      '--mqtt-host',
      '127.0.0.1',
      '--mqtt-port',
      String(await freePort()),
      '--http-port',
      String(await freePort()),
      '--advertise-host',
      '10.11.12.13'
    ])
    try {
      await s.ready()
      expect((await pair('pi-adv')).broker).toMatch(/^mqtt:\/\/10\.11\.12\.13:\d+$/)
    } finally {
      s.child.kill('SIGTERM')
      await s.exited
    }
    // No console running: the stored settings say where it will listen and what to advertise.
    writeSettings(dir, { ...DEFAULT_SETTINGS, mqttPort: 18830, mqttsEnabled: false, advertiseHost: 'edge.lan' })
    expect((await pair('pi-off')).broker).toBe('mqtt://edge.lan:18830')
  }, 90_000)
})
