/**
 * `npm start`'s launcher (scripts/start.js) where Electron's binary is absent, as here: one line
 * saying so, then the headless console on the shared data directory — with no system package at all
 * (PATH holds nothing; Chromium, mosquitto and iproute2 are the tests' needs, not the console's).
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
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

  it('stops cleanly on Ctrl-C at its terminal: lock and control files gone, its local device stopped by it', async () => {
    // Ctrl-C signals the terminal's whole process group: the launcher, the console and (before) the
    // local device at once; the console's second SIGINT (forwarded by the launcher) found no handler
    // and killed it mid-stop, leaving console.lock and console.json behind (2 of 3 tries).
    for (let round = 0; round < 2; round++) {
      const home = mkdtempSync(join(tmpdir(), 'edgent-start-home-'))
      const dataDir = join(home, 'share', 'edgent-console')
      const [mqtt, http] = [await freePort(), await freePort()]
      const child = spawn(
        process.execPath,
        [join(root, 'scripts', 'start.js'), '--no-mqtts', '--mqtt-host', '127.0.0.1', '--mqtt-port', String(mqtt), '--http-port', String(http)],
        { env: { PATH: '/nonexistent', HOME: home, XDG_DATA_HOME: join(home, 'share') }, stdio: ['ignore', 'pipe', 'pipe'], detached: true }
      )
      let err = ''
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
      try {
        const c = await waitFor('the console', () => findConsole(dataDir), 30_000)
        const local = await waitFor('its local device', () => /"pid":(\d+),"emulation"[^\n]*"msg":"local emulated device started"/.exec(err)?.[1], 30_000)
        await new Promise((r) => setTimeout(r, 1500)) // it connects meanwhile (the stop does not depend on it)
        const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
        process.kill(-child.pid!, 'SIGINT') // the terminal's Ctrl-C: every process of the group
        expect(await exited, err.slice(-2000)).toBe(0)
        await waitFor('the console to stop', () => !isAlive(c.pid), 10_000)
        expect(existsSync(join(dataDir, 'console.lock')), 'lock file').toBe(false)
        expect(findConsole(dataDir)).toBeNull()
        await waitFor('the local device to stop', () => !isAlive(Number(local)), 10_000)
        expect(err).not.toMatch(/Abort|SIGABRT|terminate called|core dumped/i)
      } finally {
        if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL')
      }
    }
  }, 120_000)
})
