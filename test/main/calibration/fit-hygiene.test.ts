/**
 * Fit hygiene: a regression is fitted only on ≥ 3 training points per parameter and checked on at
 * least one held-out point; otherwise it falls back (the paper's form, or a constant) and says why —
 * in the report, in the profile's regression (its note, which the export carries) and in the CLI's
 * summary, which puts the held-out error first and never hides it behind a note.
 */
import { describe, expect, it } from 'vitest'
import { chooseFit, fitProfile, type MeasurementRow } from '../../../src/main/calibration/fit.js'
import { fitKind, formatCampaign } from '../../../src/main/cli/campaign.js'
import type { CampaignStatus } from '../../../src/shared/contracts/console-api.js'
import { FIT_FEATURES } from '../../../src/shared/algorithms/latency.js'
import { mulberry32 } from '../../fixtures/prng.js'

const rand = mulberry32(7)
/** conv points y = 0.001·in + 0.01·k + 1e-6·macs + 0.2, with 2 % noise. */
const conv = (n: number) =>
  Array.from({ length: n }, () => {
    const x = [1000 + rand() * 50_000, 10 + rand() * 500, 1e5 + rand() * 1e7]
    return { x, y: (0.001 * x[0]! + 0.01 * x[1]! + 1e-6 * x[2]! + 0.2) * (1 + (rand() - 0.5) * 0.04) }
  })
const names = FIT_FEATURES.conv

describe('fit hygiene', () => {
  it('fits the campaign regression with ≥ 3 points per parameter and a held-out point', () => {
    const r = chooseFit('conv', conv(12), conv(3), names)!
    expect(r.fallback).toBeNull()
    expect(r.fit.features).toEqual([...names])
  })

  it("falls back to the paper's form, then to a constant, saying why", () => {
    // 4 parameters need 12 points; the paper's 3-parameter form needs 9.
    const paper = chooseFit('conv', conv(10), conv(3), names)!
    expect(paper.fit.features).toEqual(['inputElements', 'kernelOverStrideSquaredTimesFilters'])
    expect(paper.fallback).toBe(
      "fell back to the paper's form: 4-parameter fit (inputElements, kernelOverStrideSquaredTimesFilters, macs) needs 12 training points, has 10"
    )
    // The issue's case: 4 points for a 4-parameter model.
    const four = chooseFit('conv', conv(4), conv(2), names)!
    expect(four.fit.coefficients).toEqual([0, 0, 0])
    expect(four.fallback).toMatch(
      /^constant \(median of 4\): 4-parameter fit .* needs 12 training points, has 4; the paper's 3-parameter form .* needs 9 training points, has 4$/
    )
    // Enough points but nothing held out to check them on.
    expect(chooseFit('conv', conv(30), [], names)!.fallback).toMatch(/^constant \(median of 30\): 4-parameter fit .* has no held-out point to check it on$/)
    expect(chooseFit('conv', [], conv(3), names)).toBeNull()
  })

  it('marks the fallback in the report and the profile, and the summary shows the held-out error', () => {
    const rows: MeasurementRow[] = [
      ...conv(4).map((p) => ({ side: 'edge' as const, regressionKey: 'conv' as const, features: p.x, runMs: p.y, loadMs: 0, modelBytes: 0, heldOut: false })),
      ...conv(2).map((p) => ({ side: 'edge' as const, regressionKey: 'conv' as const, features: p.x, runMs: p.y, loadMs: 0, modelBytes: 0, heldOut: true }))
    ]
    const { profile, report } = fitProfile('p', 'test', rows, {})
    const entry = report.find((r) => r.side === 'edge' && r.key === 'conv')!
    expect(entry).toMatchObject({ fallback: true, n: 4, heldOutN: 2 })
    expect(entry.heldOutMape).not.toBeNull()
    expect(profile.edge.conv!.note).toBe(entry.error)
    expect(fitKind(entry)).toBe('constant (fell back)')
    const text = formatCampaign({
      id: 'c',
      agentId: 'pi',
      kind: 'model',
      status: 'done',
      progress: 1,
      startedAt: '',
      finishedAt: null,
      error: null,
      profileId: 'p',
      fits: report,
      measurements: 6,
      sweep: null,
      pass: null
    } as CampaignStatus)
    const row = text.split('\n').find((l) => /^edge\s+conv\s/.test(l))!
    expect(row).toMatch(/constant \(fell back\)/)
    expect(row).toContain(`${(entry.heldOutMape! * 100).toFixed(1)} %`) // the held-out error, not hidden behind the note
    expect(text).toContain(`edge conv: ${entry.error}`)
  })
})
