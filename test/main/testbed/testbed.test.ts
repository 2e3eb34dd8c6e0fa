/**
 * `edgent testbed` (the built bin), short variant: a real network namespace, tc shaping both ways,
 * the agent inside, baselines, the report with PNG charts; torn down after a normal run and after a
 * Ctrl-C; refused without root. Needs root (CI runs as root); elsewhere skipped with the reason.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { netnsUnavailable } from '../../../src/main/testbed/netns.js'
import { failedChecks } from '../../../src/main/testbed/checks.js'
import type { TestbedResult } from '../../../src/main/testbed/testbed.js'
import { root, waitFor } from '../console/harness.js'

const why = netnsUnavailable()
const edgent = join(root, 'bin', 'edgent.js')
const namespaces = () =>
  execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith('edgent-ns'))

describe.skipIf(why !== null)(`edgent testbed --short${why ? ` — skipped: ${why}` : ''}`, () => {
  it('shapes, sweeps with baselines, writes the report and tears everything down', async () => {
    const out = mkdtempSync(join(tmpdir(), 'edgent-tb-'))
    const before = namespaces()
    const r = spawnSync(process.execPath, [edgent, 'testbed', '--short', '--out', out], { encoding: 'utf8', timeout: 240_000 })
    expect(r.stdout).toMatch(/Edgent met the requirement at \d+\/\d+ points/)
    for (const f of ['report.md', 'results.csv', 'results.json', 'fig-selection-bandwidth.png', 'fig-runtime-bandwidth.png', 'fig-selection-requirement.png'])
      expect(existsSync(join(out, f)), f).toBe(true)
    expect(readFileSync(join(out, 'fig-runtime-bandwidth.png')).subarray(1, 4).toString()).toBe('PNG')
    const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as TestbedResult
    expect(res.checks.points).toBe(6)
    // The exit code says whether the acceptance checks held (3 reps per point: either can happen here).
    const failed = failedChecks(res.checks)
    expect(r.status, r.stderr.slice(-3000)).toBe(failed.length ? 1 : 0)
    expect(r.stdout).toContain(failed.length ? 'checks did not hold (exit 1)' : 'checks held')
    for (const f of failed) expect(r.stdout).toContain(f)
    expect(readFileSync(join(out, 'report.md'), 'utf8')).toContain(failed.length ? '## Checks (did not hold)' : '## Checks (held)')
    for (const s of ['edgent', 'device-only', 'edge-only', 'partition-only', 'right-sizing-only'])
      expect(res.results.filter((x) => x.strategy === s)).toHaveLength(6)
    // The link was shaped for real: at 100 kbps the edge-only baseline's 3 kB input alone takes ≥ 240 ms.
    const slowEdge = res.results.find((x) => x.strategy === 'edge-only' && x.linkKbps === 100)!
    expect(slowEdge.measuredMs).toBeGreaterThan((3136 * 8) / 100)
    // Edgent measured the bandwidth rather than being told it: estimates near the shaped rates.
    for (const e of res.estimates) expect(Math.abs(e.uplinkEstimateKbps - e.linkKbps) / e.linkKbps).toBeLessThan(0.25)
    expect(res.checks.medianAbsError).toBeLessThan(1)
    // Both traces, each planned once (static) and adaptively, over the same replayed rates.
    expect(res.traces.map((t) => `${t.trace.name}/${t.mode}`)).toEqual(['steps/static', 'steps/adaptive', 'fluctuating/static', 'fluctuating/adaptive'])
    for (const t of res.traces) expect(t.points.length, `${t.trace.name}/${t.mode}`).toBeGreaterThan(10)
    const fl = (mode: string) => res.traces.find((t) => t.trace.name === 'fluctuating' && t.mode === mode)!
    expect(fl('static').planChanges).toBe(0)
    expect(fl('adaptive').missShare).toBeLessThan(fl('static').missShare)
    expect(existsSync(join(out, 'fig-trace-fluctuating.png'))).toBe(true)
    expect(namespaces()).toEqual(before)
  }, 260_000)

  it('tears everything down on Ctrl-C', async () => {
    const before = namespaces()
    const child = spawn(process.execPath, [edgent, 'testbed', '--short', '--out', mkdtempSync(join(tmpdir(), 'edgent-tb-'))], {
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let err = ''
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
    await waitFor('the namespace', () => namespaces().length > before.length, 60_000)
    await new Promise((r) => setTimeout(r, 3000)) // mid-run: console and agent up
    child.kill('SIGINT')
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)))
    expect(code).toBe(2)
    expect(err).toContain('testbed interrupted (everything was torn down)')
    expect(namespaces()).toEqual(before)
  }, 120_000)

  it('refuses to run without root, saying what is missing', () => {
    const r = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, edgent, 'testbed', '--short'], { encoding: 'utf8', timeout: 60_000 })
    if (r.error) return // no runuser on this machine: nothing to check
    expect(r.status).toBe(2)
    expect(r.stderr).toContain('the testbed cannot run here: needs root (network namespaces and tc)')
  })
})
