/**
 * `npm start`'s launcher (scripts/start.js) where Electron's binary is absent, as here: one line
 * saying so, then the headless console on the shared data directory — with no system package at all
 * (PATH holds nothing; Chromium, mosquitto and iproute2 are the tests' needs, not the console's).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { findConsole } from '../../src/main/shell/control-file.js'
import { freePort, root, waitFor } from './console/harness.js'

const isAlive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('npm start without Electron', () => {
  it('says so in one line and runs the headless console on the data directory', async () => {
    const home = mkdtempSync(join(tmpdir(), 'edgent-start-home-'))
    const dataDir = join(home, 'share', 'edgent-console')
    const [mqtt, http] = [await freePort(), await freePort()]
    const child = spawn(
      process.execPath,
      [
        join(root, 'scripts', 'start.js'),
        // flags only, as `npm start -- --flag …` passes them: serve is implied (it was dropped)
        '--no-local-agent',
        '--no-mqtts',
        '--mqtt-host',
        '127.0.0.1',
        '--mqtt-port',
        String(mqtt),
        '--http-port',
        String(http)
      ],
      { env: { PATH: '/nonexistent', HOME: home, XDG_DATA_HOME: join(home, 'share') }, stdio: ['ignore', 'pipe', 'pipe'] }
    )
    let out = ''
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    try {
      const c = await waitFor('the console', () => findConsole(dataDir), 30_000)
      expect(c.httpPort).toBe(http)
      await waitFor('its banner', () => out.includes('open the console:'), 10_000)
      expect(out.split('\n')[0]).toBe('Electron binary not installed (it downloads from outside the npm registry); running the headless console instead.')
      expect(out).toContain(`data ${dataDir}`)
      // A signal to the launcher reaches the console: it stops and releases the data directory.
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
      await waitFor('the console to stop', () => !isAlive(c.pid) && findConsole(dataDir) === null, 10_000)
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL')
    }
  }, 60_000)
})
