/**
 * Rates by bytes (issue 30, item 7): a paired agent sending 2 MB activation frames for no plan of its
 * own and 1.9 MB hellos, as fast as its socket takes them, beside a co-inferring neighbour. Before,
 * each frame was decoded before its plan was checked and each hello parsed whatever its size: the
 * neighbour's p50 was 7–13× and its p95 17× worse. Now the broker reads an agent at most 32 MiB/s
 * (TCP backpressure past it), a frame is refused on its head before its tensor is decoded, and a
 * hello over 64 KiB is dropped unparsed. The attack is switched on and off between batches.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../../src/main/console/console.js'
import type { InferRow } from '../../../../src/shared/contracts/console-api.js'
import { median, onOff, pairedRatio, settledRss } from '../../../fixtures/attack.js'
import { deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../harness.js'

const p95 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(0.95 * (xs.length - 1))]!

describe('an agent sending huge frames and hellos beside a co-inferring neighbour', () => {
  let core: EdgentConsole & { logPath: string }
  let good: AgentProc | null = null
  const plan = { exit: 5, deviceLayers: 8 }
  const batch = (count: number) => core.infer({ agent: 'good', count, latencyMs: 1000, uplinkKbps: 100_000, plan })

  beforeAll(async () => {
    core = await startConsole() // the default packet limit (2 MiB): a 2 MB frame is a legal packet
    good = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'good', core.pair('good').token)
    await waitFor('good online', () => deviceState(core, 'good') === 'online')
    await batch(40) // warm-up: plan, tables, sessions
  }, 60_000)
  afterAll(async () => {
    await stopAgent(good)
    await core?.stop()
  })

  it('keeps the neighbour within 2× of its idle batch time, loses nothing, and bounds the RSS', async () => {
    const token = core.pair('big').token
    const rss0 = settledRss()
    let peakRss = rss0
    const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50)
    const { on, off, summary } = await onOff<
      { ms: number; rows: InferRow[]; lost: number },
      { frames: number; hellos: number; bytes: number; seconds: number }
    >(['big', String(core.mqttPort), '120', 'big', token], 4, 800, async () => {
      const t = performance.now()
      const r = await batch(60)
      return { ms: performance.now() - t, rows: r.rows, lost: r.summary.lost }
    }).finally(() => clearInterval(sampler))
    const [onMs, offMs] = [median(on.map((b) => b.ms)), median(off.map((b) => b.ms))]
    const ratio = pairedRatio(
      on.map((b) => b.ms),
      off.map((b) => b.ms)
    )
    const e2e = (bs: { rows: InferRow[] }[]) => bs.flatMap((b) => b.rows.map((r) => r.e2eMs))
    const [onP95, offP95] = [p95(e2e(on)), p95(e2e(off))]
    console.log(
      `big frames: ${summary.frames} frames of 2 MB and ${summary.hellos} hellos of 1.9 MB (${(summary.bytes / 2 ** 20 / summary.seconds).toFixed(1)} MiB/s over ${summary.seconds.toFixed(1)} s, attack on half of it); neighbour batches of 60: off ${Math.round(offMs)} ms, on ${Math.round(onMs)} ms (${(onMs / offMs).toFixed(2)}×; round by round ${ratio.toFixed(2)}×), p95 ${offP95.toFixed(1)} → ${onP95.toFixed(1)} ms (${(onP95 / offP95).toFixed(2)}×); RSS peak +${((peakRss - rss0) / 2 ** 20).toFixed(0)} MB`
    )
    expect(summary.frames).toBeGreaterThan(10) // the attack reached the console
    for (const b of [...on, ...off]) expect(b.lost).toBe(0)
    expect(ratio).toBeLessThanOrEqual(2)
    expect(peakRss - rss0).toBeLessThan(512 * 2 ** 20)
    expect(deviceState(core, 'good')).not.toBe('offline')
  }, 180_000)
})
