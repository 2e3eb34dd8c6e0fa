/** The built `edgent-agent` command line: --check and its refusals, and bad configuration. */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { runCheck } from '../../pi-agent/src/check.js'
import { defaultModelDir, packageRoot } from '../../src/main/runtime/paths.js'
import { agentEntry, freePort, spawnAgent, startConsole, stopAgent, waitFor } from '../main/console/harness.js'

function agent(...args: string[]) {
  const r = spawnSync(process.execPath, [agentEntry, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, EDGENT_BROKER: '', EDGENT_TOKEN: '', EDGENT_AGENT_ID: '' }
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe('edgent-agent', () => {
  it('--check prints the architecture, versions, the model and a one-sample timing, and exits 0', () => {
    const r = agent('--check')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^arch\\s+${process.arch} `, 'm'))
    expect(r.stdout).toMatch(/^node\s+\d+\.\d+\.\d+$/m)
    expect(r.stdout).toMatch(/^onnxruntime\s+onnxruntime-node 1\.27\.0$/m)
    expect(r.stdout).toMatch(/^model\s+branchy-alexnet loads \(12\.\d MB, sha256 [0-9a-f]{12}…/m)
    expect(r.stdout).toMatch(/^one sample\s+exit 5, all 24 layers: \d+\.\d\d ms warm/m)
    expect(r.stdout).toMatch(/^check\s+ok$/m)
  })

  it('--check --json gives the report as JSON', () => {
    const r = agent('--check', '--json')
    expect(r.code, r.stderr).toBe(0)
    const report = JSON.parse(r.stdout) as { ok: boolean; arch: string; timing: { warmMs: number; predicted: number; label: number } }
    expect(report.ok).toBe(true)
    expect(report.arch).toBe(process.arch)
    expect(report.timing.warmMs).toBeGreaterThan(0)
  })

  it('--check exits non-zero naming a missing model', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-nomodel-'))
    const r = agent('--check', '--model-dir', dir)
    expect(r.code).toBe(1)
    expect(r.stdout).toContain(`problem       model: no such file ${join(dir, 'manifest.json')}`)
    expect(r.stdout).toMatch(/^check\s+FAILED$/m)
  })

  it('--check refuses a 32-bit OS with the reason, before loading anything', async () => {
    const lines: string[] = []
    const report = await runCheck(defaultModelDir(), (l) => lines.push(l), 'arm')
    expect(report.ok).toBe(false)
    expect(report.model).toBeNull()
    expect(lines.join('\n')).toMatch(/problem\s+unsupported architecture arm: the agent needs a 64-bit OS/)
  })

  it('refuses to start without a broker, id or token, naming what is missing', () => {
    expect(agent()).toMatchObject({ code: 2, stderr: expect.stringContaining('missing --broker') })
    expect(agent('--broker', 'http://x')).toMatchObject({ code: 2, stderr: expect.stringContaining('--broker must be an mqtt:// or mqtts:// URL') })
    expect(agent('--broker', 'mqtt://127.0.0.1:1', '--id', 'pi-a')).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('missing --credentials, --token-file or --token')
    })
    expect(agent('--bogus')).toMatchObject({ code: 2, stderr: expect.stringContaining("unknown option '--bogus'") })
  })

  it('refuses a bad credentials file, token file or CA with one line naming it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-agent-cred-'))
    const bad = join(dir, 'bad.json')
    writeFileSync(bad, JSON.stringify({ schema: 1, id: 'pi-a', broker: 'http://x', token: 'short' }))
    const notPem = join(dir, 'ca.pem')
    writeFileSync(notPem, 'hello')
    const cases: [string[], string][] = [
      [['--credentials', join(dir, 'nope.json')], 'not found: copy the file `edgent pair` wrote'],
      [['--credentials', bad], `credentials file ${bad}`],
      [['--broker', 'mqtt://127.0.0.1:1', '--id', 'pi-a', '--token-file', join(dir, 'nope')], 'cannot read --token-file'],
      [['--broker', 'mqtts://127.0.0.1:1', '--id', 'pi-a', '--token', 'x'.repeat(32), '--ca', notPem], 'is not a PEM certificate'],
      [['--broker', 'mqtts://127.0.0.1:1', '--id', 'pi-a', '--token', 'x'.repeat(32), '--ca', join(dir, 'nope.pem')], 'cannot read --ca']
    ]
    for (const [args, message] of cases) {
      const r = agent(...args)
      expect(r.code, args.join(' ')).toBe(2)
      expect(r.stderr, args.join(' ')).toContain(message)
      expect(r.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1)
    }
  })
})

describe('edgent-agent at run time', () => {
  it('stops at once on SIGTERM while it cannot reach the broker', async () => {
    const port = await freePort() // nothing listens there
    const child = spawn(
      process.execPath,
      [
        agentEntry,
        '--broker',
        `mqtt://127.0.0.1:${port}`,
        '--id',
        'pi-term',
        '--token',
        'x'.repeat(32),
        '--cache-dir',
        mkdtempSync(join(tmpdir(), 'edgent-term-'))
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, EDGENT_TOKEN: '' }
      }
    )
    let err = ''
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
    await waitFor('a failed connection attempt', () => err.includes('ECONNREFUSED'), 30_000)
    const t0 = performance.now()
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
    child.kill('SIGTERM')
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 5000))])
    if (code === 'hung') child.kill('SIGKILL')
    expect(code).toBe(0)
    expect(performance.now() - t0).toBeLessThan(3000)
  }, 40_000)

  it('says to re-pair when the console refuses its token, and stops hammering', async () => {
    const core = await startConsole()
    try {
      core.pair('pi-stale')
      const a = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'pi-stale', 'y'.repeat(32))
      await waitFor('the refusal explained', () => a.stderr().includes('re-pair this device'), 20_000)
      await new Promise((r) => setTimeout(r, 4000))
      // one try, then a long wait: not a try a second (or every 1, 2, 4 s)
      expect(a.stderr().split('re-pair this device').length - 1).toBe(1)
      await stopAgent(a)
    } finally {
      await core.stop()
    }
  }, 60_000)

  it('--version names the package, Node and onnxruntime-node; --help never shows a token from the environment', () => {
    const v = agent('--version')
    expect(v.code).toBe(0)
    expect(v.stdout).toMatch(/^edgent-agent \d+\.\d+\.\d+ \(Node v\d+/)
    const h = spawnSync(process.execPath, [agentEntry, '--help'], { encoding: 'utf8', env: { ...process.env, EDGENT_TOKEN: 'secret-token-from-env' } })
    expect(h.status).toBe(0)
    expect(h.stdout).toContain('--credentials')
    expect(h.stdout).not.toContain('secret-token-from-env')
  })
})

describe('the systemd unit', () => {
  const unit = readFileSync(join(packageRoot(), 'pi-agent', 'systemd', 'edgent-agent.service'), 'utf8')
  const readme = readFileSync(join(packageRoot(), 'pi-agent', 'README.md'), 'utf8')
  const key = (k: string) => [...unit.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]!.trim())

  it('starts after the network is online, as Type=exec, restarting on failure', () => {
    expect(key('Type')).toEqual(['exec'])
    expect(key('Restart')).toEqual(['on-failure'])
    expect(key('After')).toContain('network-online.target')
    expect(key('Wants')).toContain('network-online.target')
    expect(key('EnvironmentFile')).toEqual(['-/etc/edgent/agent.env'])
  })

  it('hands the agent its credentials file the way the README installs it, never a token in the unit', () => {
    expect(key('LoadCredential')).toEqual(['credentials.json:/etc/edgent/credentials.json'])
    expect(key('Environment')).toContain('EDGENT_CREDENTIALS=%d/credentials.json')
    expect(readme).toContain('sudo install -m 600 <id>.credentials.json /etc/edgent/credentials.json')
    expect(unit).not.toMatch(/EDGENT_TOKEN=|--token/)
  })

  it('runs the binary where the README installs it', () => {
    const exec = key('ExecStart')[0]!.split(' ')
    expect(readme).toContain(`-C /usr/local --strip-components=1`) // node lands in /usr/local/bin
    expect(exec[0]).toBe('/usr/local/bin/node')
    expect(exec[1]).toBe(`${key('WorkingDirectory')[0]}/node_modules/edgent-agent/bin/edgent-agent.js`)
    expect(readme).toContain(`cd ${key('WorkingDirectory')[0]}`)
  })
})
