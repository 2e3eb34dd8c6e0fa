/** The testbed's pass/fail verdict, from the checks it measured. */
import type { TestbedResult } from './testbed.js'

/** The share of points at which Edgent must be within 10 % of the best configuration of its exit. */
export const WITHIN_TEN_PERCENT_SHARE = 0.9

/**
 * The testbed's acceptance checks (the paper-reproduction issue's): Edgent meets the requirement
 * wherever some measured configuration does, and is within 10 % of the best measured configuration
 * of its exit at ≥ 90 % of points. What did not hold, one sentence each (empty: all held).
 */
export function failedChecks(c: TestbedResult['checks']): string[] {
  const out: string[] = []
  if (c.edgentMetWhereFeasible < c.feasiblePoints)
    out.push(`Edgent met the requirement at ${c.edgentMetWhereFeasible} of ${c.feasiblePoints} points where some configuration did (must be all)`)
  if (c.points > 0 && c.withinTenPercent < WITHIN_TEN_PERCENT_SHARE * c.points)
    out.push(
      `Edgent was within 10 % of the best configuration of its exit at ${c.withinTenPercent} of ${c.points} points (must be ≥ ${WITHIN_TEN_PERCENT_SHARE * 100} %)`
    )
  return out
}
