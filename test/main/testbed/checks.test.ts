/** The testbed's verdict: which acceptance checks did not hold (the command exits 1 on any). */
import { describe, expect, it } from 'vitest'
import { failedChecks } from '../../../src/main/testbed/checks.js'

const c = (over: Partial<Parameters<typeof failedChecks>[0]> = {}) => ({
  feasiblePoints: 20,
  edgentMetWhereFeasible: 20,
  withinTenPercent: 27,
  points: 30,
  medianAbsError: 0.05,
  ...over
})

describe('testbed checks', () => {
  it('hold when Edgent met every feasible point and was within 10 % at ≥ 90 % of points', () => {
    expect(failedChecks(c())).toEqual([])
  })
  it('name each check that did not hold', () => {
    expect(failedChecks(c({ edgentMetWhereFeasible: 19 }))).toEqual([
      'Edgent met the requirement at 19 of 20 points where some configuration did (must be all)'
    ])
    expect(failedChecks(c({ withinTenPercent: 26 }))).toEqual([
      'Edgent was within 10 % of the best configuration of its exit at 26 of 30 points (must be ≥ 90 %)'
    ])
    expect(failedChecks(c({ edgentMetWhereFeasible: 0, withinTenPercent: 0 }))).toHaveLength(2)
  })
})
