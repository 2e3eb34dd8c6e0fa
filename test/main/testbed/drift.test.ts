/**
 * `edgent drift` in one run (issue 31): brightened frames raise the fixed thresholds' disagreement with
 * the final exit; audits bring it back within the bound. Every figure is a function of the frames and
 * the model (no timing), so the comparisons are exact on any machine.
 */
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { runDrift } from '../../../src/main/testbed/drift.js'
import { defaultModelDir } from '../../../src/main/runtime/paths.js'

describe('drift', () => {
  it('shows fixed thresholds disagreeing more on shifted frames, and audit-tuned ones returning within the bound', async () => {
    const r = await runDrift({
      model: defaultModelDir(),
      contrast: 1,
      brightness: 60,
      noise: 0,
      frames: 1200,
      window: 200,
      auditShare: 0.25,
      bound: 0.01,
      log: pino({ level: 'silent' })
    })
    const [own, fixed, tuned] = r.phases
    expect(fixed!.disagreement).toBeGreaterThan(2 * own!.disagreement)
    expect(fixed!.changes).toEqual([])
    expect(tuned!.changes.length).toBeGreaterThan(0)
    // every window from some frame on within the bound, and the first of them after the first change
    expect(r.returnedAfterFrames).not.toBeNull()
    expect(r.returnedAfterFrames!).toBeLessThan(1000)
    for (const w of tuned!.windows.filter((x) => x.fromFrame >= r.returnedAfterFrames!)) expect(w.disagreement).toBeLessThanOrEqual(0.01)
    // the same frames under the fixed thresholds stayed over it
    for (const w of fixed!.windows.filter((x) => x.fromFrame >= r.returnedAfterFrames!)) expect(w.disagreement).toBeGreaterThan(0.01)
    // tighter thresholds answer fewer frames early than the fixed ones on the same frames
    expect(tuned!.windows.at(-1)!.early).toBeLessThan(fixed!.windows.at(-1)!.early)
  }, 240_000)
})
