/**
 * The Live page with a long history: 10,000 stored co-inferences (a SQLite file of the store's schema,
 * as a long run leaves it) load and draw as 600 downsampled points in Chromium.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import { hashToken, newToken } from '../../src/main/console/tokens.js'
import { withStore } from '../../src/main/store/store.js'
import { freePort, root, waitFor } from '../main/console/harness.js'
import { launchChromium } from './browser.js'

const N = 10_000

function seed(dataDir: string): void {
  // The store creates the schema and pairs the device; the history is written as rows, with the
  // timestamps a long run leaves (the store stamps a batch's rows with one time).
  withStore(join(dataDir, 'edgent.db'), (store) => store.devices.pair('pi-history', hashToken(newToken())))
  const db = new Database(join(dataDir, 'edgent.db'))
  const now = Date.now() - N * 50
  db.transaction(() => {
    for (const [id, exit, p] of [
      ['plan-a', 5, 8],
      ['plan-b', 3, 14]
    ] as const) {
      db.prepare(
        'INSERT INTO plans (id, device_id, model, exit, device_layers, layers, latency_ms, uplink_kbps, predicted_ms, feasible, reason, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)'
      ).run(id, 'pi-history', 'branchy-alexnet', exit, p, exit === 5 ? 24 : 14, 100, 1000, 40, 1, 'seeded', new Date(now).toISOString())
    }
    db.prepare(`INSERT INTO runs (id, device_id, kind, params_json, status, started_at) VALUES ('run-1', 'pi-history', 'infer', '{}', 'done', ?)`).run(
      new Date(now).toISOString()
    )
    const ins = db.prepare(
      `INSERT INTO inferences (request_id, run_id, device_id, plan_id, model, exit, device_layers, sample, label, predicted_label, correct, latency_ms, predicted_ms, predicted_json, device_ms, transfer_ms, edge_ms, e2e_ms, met, uplink_kbps, upload_bytes, created_at)
       VALUES (?, 'run-1', 'pi-history', ?, 'branchy-alexnet', ?, ?, ?, 1, 1, 1, 100, 40, '{}', ?, ?, ?, ?, ?, 1000, 3136, ?)`
    )
    for (let i = 0; i < N; i++) {
      const b = i >= N / 2
      const e2e = 30 + 10 * Math.sin(i / 50) + (i % 997 === 0 ? 120 : 0)
      ins.run(
        `r${i}`,
        b ? 'plan-b' : 'plan-a',
        b ? 3 : 5,
        b ? 14 : 8,
        i % 2000,
        12,
        e2e - 22,
        10,
        e2e,
        e2e <= 100 ? 1 : 0,
        new Date(now + i * 50).toISOString()
      )
    }
  })()
  db.close()
}

describe('the Live page with 10,000 stored co-inferences', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'edgent-10k-'))
  let serve: ChildProcess
  let browser: Browser
  let url = ''
  beforeAll(async () => {
    seed(dataDir)
    let out = ''
    serve = spawn(
      process.execPath,
      [
        join(root, 'bin', 'edgent.js'),
        'serve',
        '--no-local-agent',
        '--data-dir',
        dataDir,
        '--mqtt-port',
        String(await freePort()),
        '--mqtt-host',
        '127.0.0.1',
        '--http-port',
        String(await freePort()),
        '--log-level',
        'warn'
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] }
    )
    serve.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    url = await waitFor('the console URL', () => /open the console: (\S+)/.exec(out)?.[1], 90_000)
    browser = await launchChromium()
  }, 120_000)
  afterAll(async () => {
    await browser?.close()
    if (serve && serve.exitCode === null) serve.kill('SIGTERM')
  })

  it('loads every inference and draws 600 points, keeping the spikes and the plan change', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(url)
    await page.waitForSelector('[data-testid=device-select] option[value=pi-history]', { state: 'attached' })
    const t0 = Date.now()
    await page.click('[data-testid=nav-live]')
    const chart = page.locator('[data-testid=live-chart]')
    await expect.poll(async () => chart.getAttribute('data-total').catch(() => null), { timeout: 30_000 }).toBe(String(N))
    await page.waitForSelector('[data-testid=live-chart] .line-e2e path.recharts-curve')
    console.log(`Live page with ${N} inferences: chart drawn ${Date.now() - t0} ms after the click`)
    expect(await chart.getAttribute('data-points')).toBe('600')
    // The drawn line has one vertex per point (M + 599 L).
    const d = (await page.locator('[data-testid=live-chart] .line-e2e path.recharts-curve').first().getAttribute('d'))!
    expect(d.match(/[ML]/g)!.length).toBe(600)
    expect(await page.textContent('[data-testid=live-total] .stat-value')).toBe(String(N))
    expect(await page.locator('[data-testid=live-chart] .recharts-reference-line').count()).toBe(1) // plan-a → plan-b
    expect(errors).toEqual([])
    mkdirSync(join(root, 'test-output', 'screenshots'), { recursive: true })
    await page.screenshot({ path: join(root, 'test-output', 'screenshots', 'live-10k.png'), fullPage: true })
  }, 60_000)
})
