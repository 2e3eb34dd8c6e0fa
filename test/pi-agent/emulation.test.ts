/**
 * The slowdown emulation: a segment's device time is factor × the median of its runs here; a policy's
 * sessions record theirs without waiting (emulatedMs) and wait their sum once (waitOut), so that they
 * run back to back as on a real device.
 */
import pino from 'pino'
import { describe, expect, it } from 'vitest'
import { Emulation } from '../../pi-agent/src/emulation.js'

describe('slowdown emulation', () => {
  const log = pino({ level: 'silent' })

  it('gives factor × the median of a segment’s runs so far, without waiting when asked for the time alone', () => {
    const e = new Emulation({ slowdown: 30, log })
    const t = e.emulatedMs('m/5/0-4', 0.2)
    expect(typeof t).toBe('number') // not a promise: nothing waited
    expect(t).toBeCloseTo(6, 9)
    e.emulatedMs('m/5/0-4', 0.4)
    expect(e.emulatedMs('m/5/0-4', 0.3)).toBeCloseTo(9, 9) // median of 0.2, 0.4, 0.3
    expect(e.emulatedMs('m/1/4-8', 0.1)).toBeCloseTo(3, 9) // per segment
    expect(new Emulation({ log }).emulatedMs('m/5/0-4', 0.25)).toBe(0.25) // no slowdown: the run's own
  })

  it('waits the difference out: slowCpu after each run, waitOut once for several', async () => {
    const e = new Emulation({ slowdown: 11, log })
    let t0 = performance.now()
    expect(await e.slowCpu('k', 2)).toBeCloseTo(22, 9)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(20 - 1) // 22 − the 2 ms the run took
    t0 = performance.now()
    await e.waitOut(15)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(15 - 1)
    t0 = performance.now()
    await e.waitOut(-3) // a run already slower than its emulated time: nothing to wait
    expect(performance.now() - t0).toBeLessThan(1000)
  })

  it('idles out a frame’s slowdown after its compute here (idleAfter), and not at all without one', async () => {
    let t0 = performance.now()
    await new Emulation({ slowdown: 6, log }).idleAfter(4)
    expect(performance.now() - t0).toBeGreaterThanOrEqual(20 - 1) // (6 − 1) × 4
    t0 = performance.now()
    await new Emulation({ log }).idleAfter(50)
    expect(performance.now() - t0).toBeLessThan(40)
  })
})
