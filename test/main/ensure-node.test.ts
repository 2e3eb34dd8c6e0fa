/**
 * The README's two commands on the machine as it comes (issue 35, item 2): its own Node is 20 (end of
 * life), and `npm test` on it failed a test (no Float16Array). `npm start` and `npm test` run through
 * scripts/ensure-node.sh, which runs the command under Node 24 (fetched once by node-setup.sh) with
 * better-sqlite3 loading — checked here by running it with the machine's Node first on PATH.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { root } from './console/harness.js'

const machineNode = ['/usr/bin/node', '/bin/node'].find((p) => existsSync(p))
const machineMajor = machineNode ? Number(execFileSync(machineNode, ['-p', 'process.versions.node.split(".")[0]']).toString().trim()) : null

describe('the supported Node, whatever the machine has', () => {
  it('runs npm start and npm test through ensure-node.sh', () => {
    const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts
    expect(scripts['test']).toMatch(/^bash scripts\/ensure-node\.sh npm run test:all$/)
    expect(scripts['start']).toMatch(/^bash scripts\/ensure-node\.sh npm run start:built --$/)
  })

  it.skipIf(machineMajor === null || machineMajor >= 22)(
    `runs a command under Node 24 when the machine's own Node (${machineMajor}) comes first on PATH`,
    () => {
      const r = spawnSync(
        'bash',
        [
          join(root, 'scripts', 'ensure-node.sh'),
          'node',
          '-p',
          "[process.versions.node, typeof Float16Array, new (require('better-sqlite3'))(':memory:').prepare('select 1 as x').get().x].join(' ')"
        ],
        { cwd: root, env: { PATH: '/usr/bin:/bin', HOME: process.env['HOME'] ?? '/root' }, encoding: 'utf8', timeout: 300_000 }
      )
      expect(r.status, r.stderr).toBe(0)
      expect(r.stdout.trim()).toMatch(/^24\.\d+\.\d+ function 1$/)
      expect(r.stderr).toContain(`edgent: Node v${machineMajor}.`)
      expect(r.stderr).toContain('is not supported; running under Node 24')
    },
    320_000
  )
})
