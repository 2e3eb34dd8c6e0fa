/**
 * The Live page with a long history: 10,000 stored co-inferences (a SQLite file prepared through the
 * store, as a long run leaves it) load and draw as 600 downsampled points in Chromium.
 */
import { mkdirSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashToken, newToken } from '../../src/main/console/broker/tokens.js'
import { withStore } from '../../src/main/store/store.js'
import type { InferRow, InferSummary } from '../../src/shared/contracts/console-api.js'
import { root } from '../main/console/harness.js'
import { startServe, type ServeProcess } from '../main/serve-process.js'
import { launchChromium } from './browser.js'

const N = 10_000

function seed(dataDir: string): void {
  withStore(join(dataDir, 'edgent.db'), (store) => {
    store.devices.pair('pi-history', hashToken(newToken()))
    const at = new Date(Date.now() - N * 50).toISOString()
    for (const [planId, exit, deviceLayers] of [
      ['plan-a', 5, 8],
      ['plan-b', 3, 14]
    ] as const) {
      store.plans.insert({
        planId,
        agentId: 'pi-history',
        model: 'branchy-alexnet',
        exit,
        deviceLayers,
        layers: exit === 5 ? 24 : 14,
        latencyMs: 100,
        uplinkKbps: 1000,
        predictedMs: 40,
        feasible: true,
        reason: 'seeded',
        at
      })
    }
    store.runs.start({ runId: 'run-1', agentId: 'pi-history', params: {}, campaignId: null })
    const predicted = { deviceMs: 12, uploadMs: 18, edgeMs: 10, downloadMs: 0, overheadMs: 0 }
    const rows: InferRow[] = []
    for (let i = 0; i < N; i++) {
      const b = i >= N / 2
      const e2eMs = 30 + 10 * Math.sin(i / 50) + (i % 997 === 0 ? 120 : 0)
      rows.push({
        requestId: `r${i}`,
        sample: i % 2000,
        label: 1,
        predictedLabel: 1,
        correct: true,
        exit: b ? 3 : 5,
        deviceLayers: b ? 14 : 8,
        planId: b ? 'plan-b' : 'plan-a',
        predictedMs: 40,
        predicted,
        deviceMs: 12,
        transferMs: e2eMs - 22,
        edgeMs: 10,
        e2eMs,
        met: e2eMs <= 100,
        uplinkKbps: 1000,
        uploadBytes: 3136
      })
    }
    const summary = {
      runId: 'run-1',
      agentId: 'pi-history',
      count: N,
      completed: N,
      lost: 0,
      latencyMs: 100,
      uplinkKbps: 1000,
      bandwidthSource: 'fixed',
      plan: { planId: 'plan-a', exit: 5, deviceLayers: 8, layers: 24, predictedMs: 40, feasible: true },
      percentile: null,
      tail: null,
      percentileMs: null,
      p50Ms: 30,
      p95Ms: 40,
      accuracy: 1,
      metShare: 1,
      planChanges: 1,
      prediction: { mapeCorrected: null, mapeUncorrected: null, deviceFactor: 1, edgeFactor: 1, overheadMs: 0 }
    } satisfies InferSummary
    store.runs.finish('run-1', 'pi-history', 'branchy-alexnet', rows, summary)
  })
}

describe('the Live page with 10,000 stored co-inferences', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'edgent-10k-'))
  let serve: ServeProcess
  let browser: Browser
  let url = ''
  beforeAll(async () => {
    seed(dataDir)
    serve = await startServe({ dataDir, args: ['--no-local-agent', '--no-mqtts'] })
    url = serve.url
    browser = await launchChromium()
  }, 120_000)
  afterAll(async () => {
    await browser?.close()
    await serve?.stop()
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
