/** The shared data directory's default and the one-console-per-directory lock. */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { defaultDataDir } from '../../../src/main/runtime/data-dir.js'
import { InstanceLock, LOCK_FILE } from '../../../src/main/shell/instance-lock.js'

describe('the data directory', () => {
  it('is EDGENT_DATA_DIR, else $XDG_DATA_HOME/edgent-console, else ~/.local/share/edgent-console', () => {
    expect(defaultDataDir({ EDGENT_DATA_DIR: '/srv/e', XDG_DATA_HOME: '/x' }, '/home/u')).toBe('/srv/e')
    expect(defaultDataDir({ XDG_DATA_HOME: '/x' }, '/home/u')).toBe('/x/edgent-console')
    expect(defaultDataDir({}, '/home/u')).toBe('/home/u/.local/share/edgent-console')
    // The XDG spec: a relative value is invalid and ignored.
    expect(defaultDataDir({ XDG_DATA_HOME: 'rel/dir' }, '/home/u')).toBe('/home/u/.local/share/edgent-console')
  })
})

describe('the instance lock', () => {
  const dir = () => mkdtempSync(join(tmpdir(), 'edgent-lock-'))
  const holder = (d: string) => JSON.parse(readFileSync(join(d, LOCK_FILE), 'utf8')) as { pid: number; shell: string; nonce: string }

  it('refuses a second holder, naming the first, and is free again once released', () => {
    const d = dir()
    const a = InstanceLock.acquire(d, 'headless')
    expect(() => InstanceLock.acquire(d, 'desktop')).toThrow(`a console is already running on ${d}: edgent serve, pid ${process.pid}`)
    a.release()
    expect(existsSync(join(d, LOCK_FILE))).toBe(false)
    const b = InstanceLock.acquire(d, 'desktop')
    expect(holder(d).shell).toBe('desktop')
    b.release()
  })

  it('takes over the lock of a process that is gone, of a previous boot, or an unreadable one', () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout
    const cases: [string, Record<string, unknown> | string, RegExp][] = [
      ['gone', { pid: Number(dead), shell: 'headless', host: hostname(), bootId: null, startedAt: 'x', nonce: 'n1' }, /process \d+ is gone/],
      ['rebooted', { pid: process.pid, shell: 'desktop', host: hostname(), bootId: 'another-boot', startedAt: 'x', nonce: 'n2' }, /rebooted/],
      ['garbage', '{ not json', /unreadable/]
    ]
    for (const [what, content, why] of cases) {
      const d = dir()
      writeFileSync(join(d, LOCK_FILE), typeof content === 'string' ? content : JSON.stringify(content))
      const lock = InstanceLock.acquire(d, 'headless')
      expect(lock.tookOver, what).toMatch(why)
      expect(holder(d).pid, what).toBe(process.pid)
      lock.release()
    }
  })

  it("does not take over a live holder's lock, and release leaves another holder's lock alone", () => {
    const d = dir()
    const a = InstanceLock.acquire(d, 'headless')
    // Someone else's lock appears in its place (a takeover elsewhere): releasing must not remove it.
    const theirs = { ...holder(d), nonce: 'someone-else' }
    writeFileSync(join(d, LOCK_FILE), JSON.stringify(theirs))
    a.release()
    expect(holder(d).nonce).toBe('someone-else')
  })
})
