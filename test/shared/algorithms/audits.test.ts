/** Label-free audits (issue 31): a window of audited frames measures and tunes thresholds against the final exit. */
import { describe, expect, it } from 'vitest'
import { AUDIT_MIN_FRAMES, AuditWindow } from '../../../src/shared/algorithms/audits.js'
import { THRESHOLD_GRID } from '../../../src/shared/algorithms/confidence.js'
import type { HeadOutcome } from '../../../src/shared/algorithms/exit-paths.js'

const COST = [1, 2, 10]

/** A frame: exit 1 says `c1` confident with label `l1`, exit 2 likewise, the final exit label 0. */
const frame = (c1: number, l1: number, c2: number, l2: number): HeadOutcome[] => [
  { exit: 1, label: l1, confidence: c1, leaves: false },
  { exit: 2, label: l2, confidence: c2, leaves: false },
  { exit: 3, label: 0, confidence: 0.99, leaves: true }
]

describe('audit window', () => {
  it('measures where frames would leave and how often that answer differs from the final exit', () => {
    const w = new AuditWindow([1, 2, 3])
    for (let k = 0; k < 80; k++) w.add(frame(0.95, 0, 0.99, 0)) // confident and right
    for (let k = 0; k < 20; k++) w.add(frame(0.92, 1, 0.6, 0)) // confident at exit 1 and wrong
    const loose = w.evaluate([0.9, null, 0], COST)
    expect(loose.leave).toEqual([1, 0, 0])
    expect(loose.disagreement).toBeCloseTo(0.2, 12)
    const tight = w.evaluate([0.93, 0.9, 0], COST)
    expect(tight.leave).toEqual([0.8, 0, 0.2])
    expect(tight.disagreement).toBe(0)
  })

  it('raises the threshold that cuts disagreement most, a grid step at a time, and lowers one when there is room', () => {
    const w = new AuditWindow([1, 2, 3])
    expect(w.step([0.9, null, 0], 0.01, COST, THRESHOLD_GRID)).toBeNull() // nothing to tune on
    for (let k = 0; k < 160; k++) w.add(frame(0.95, 0, 0.99, 0))
    for (let k = 0; k < 40; k++) w.add(frame(0.92, 1, 0.96, 0))
    expect(w.count).toBeGreaterThanOrEqual(AUDIT_MIN_FRAMES)
    // 0.9 at exit 1 lets the 40 wrong frames leave: raised past 0.92 (to 0.93, the next step that does it)
    const t = w.step([0.9, null, 0], 0.01, COST, THRESHOLD_GRID)!
    expect(t.thresholds).toEqual([0.93, null, 0])
    expect(t.disagreement).toBe(0)
    expect(t.leave).toEqual([0.8, 0, 0.2])
    // within the bound: exit 2 opens (it answers the 40 rightly, at 0.96) at the highest threshold that takes them
    const l = w.step([0.93, null, 0], 0.01, COST, THRESHOLD_GRID)!
    expect(l.thresholds).toEqual([0.93, 0.95, 0])
    expect(l.cost).toBeLessThan(t.cost)
    // one disagreeing frame in 100 is not within a 1 % bound with the margin ((1 + 1) / 100 > 1 %)
    const few = new AuditWindow([1, 2, 3])
    for (let k = 0; k < 99; k++) few.add(frame(0.95, 0, 0.99, 0))
    few.add(frame(0.95, 1, 0.99, 0))
    expect(few.step([0.95, null, 0], 0.01, COST, THRESHOLD_GRID)!.thresholds).toEqual([0.97, null, 0])
  })

  it('keeps a bounded window and refuses a frame that lacks an exit', () => {
    const w = new AuditWindow([1, 2, 3], 50)
    for (let k = 0; k < 120; k++) w.add(frame(0.9, 0, 0.9, 0))
    expect(w.count).toBe(50)
    expect(w.add([{ exit: 1, label: 0, confidence: 0.9, leaves: false }])).toBe(false)
    expect(w.count).toBe(50)
  })
})
