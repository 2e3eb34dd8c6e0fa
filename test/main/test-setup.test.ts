/**
 * The test command's set-up (scripts/test-setup.sh, npm's pretest): with what the tests drive
 * present it does nothing; with something missing and no root, it names the exact packages and stops
 * with exit 2. (As root it installs them with apt: .ci/run's fresh machines exercise that path.)
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { root } from './console/harness.js'

const script = join(root, 'scripts', 'test-setup.sh')

describe('npm test set-up', () => {
  it('passes quietly when Chromium, mosquitto and iproute2 are there', () => {
    const r = spawnSync('bash', [script], { encoding: 'utf8' })
    expect(r.status).toBe(0)
    expect(r.stderr).toBe('')
  })

  it('without root, names the missing packages and exits 2', () => {
    // nobody (uid 65534) cannot install; a Chromium path that does not exist stands for a missing one.
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'bash', script], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'], EDGENT_CHROMIUM: '/nonexistent/chromium' }
    })
    expect(r.status).toBe(2)
    expect(r.stderr.trim()).toBe(
      'test-setup: the tests need chromium: install them (Debian/Ubuntu: sudo apt-get install chromium), or set EDGENT_CHROMIUM to another Chromium, then run npm test again'
    )
  })
})
