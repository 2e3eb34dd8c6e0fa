/**
 * Where each exit branches off the final exit's path (issue 31: confidence exits at run time). Exits
 * share a trunk: exit e's path is the final path's first `branchAt` layers, then its own head. Under a
 * plan cut after `deviceLayers` layers of the final path, an exit whose branch point is before the cut
 * is evaluated on the device (its head runs there), the others on the edge; an exit whose path is not
 * such a trunk-and-head (a model whose exits do not share one trunk) has no place in a policy.
 */
import { getExit, type Manifest } from '../contracts/manifest.js'

export interface ExitBranch {
  exit: number
  /** Layers of the final path this exit shares (its head starts after them). */
  branchAt: number
  /** Layers of its own after the branch point. */
  headLayers: number
}

/** The final exit: the one with the longest path. */
export function finalExit(m: Manifest): number {
  return m.exits.reduce((a, e) => (e.layers.length >= a.layers.length ? e : a)).exit
}

/** Every exit's branch point on the final exit's path (the final exit's own: its whole path). */
export function exitBranches(m: Manifest): ExitBranch[] {
  const final = getExit(m, finalExit(m)).layers
  return m.exits.map((e) => {
    let k = 0
    while (k < e.layers.length && k < final.length && e.layers[k] === final[k]) k++
    return { exit: e.exit, branchAt: k, headLayers: e.layers.length - k }
  })
}

/**
 * The side an exit is evaluated on under a cut after `deviceLayers` layers of the final path: the
 * final exit where its last layer runs; another on the device when its branch point is at or before
 * the cut (the device holds that tensor, so a confident frame uploads nothing), else on the edge.
 */
export function exitSide(b: ExitBranch, deviceLayers: number, finalLayers: number): 'device' | 'edge' {
  if (b.headLayers === 0) return deviceLayers >= finalLayers ? 'device' : 'edge'
  return deviceLayers > 0 && b.branchAt <= deviceLayers ? 'device' : 'edge'
}

/**
 * Checks an early result against its plan: the exit must be one the plan's policy evaluates on the
 * side that answered, and the confidence a number in [0, 1]. Returns what is wrong (null: fine).
 */
export function earlyResultProblem(
  m: Manifest,
  plan: { deviceLayers: number; policyExits: readonly number[] },
  r: { exit: number; confidence: number; side: 'device' | 'edge' }
): string | null {
  if (!Number.isFinite(r.confidence) || r.confidence < 0 || r.confidence > 1) return `confidence ${r.confidence} is not in [0, 1]`
  const branches = exitBranches(m)
  const b = branches.find((x) => x.exit === r.exit)
  if (!b || !plan.policyExits.includes(r.exit)) return `exit ${r.exit} is not on the plan's path (its policy evaluates exits ${plan.policyExits.join(', ')})`
  const final = getExit(m, finalExit(m)).layers.length
  const side = exitSide(b, plan.deviceLayers, final)
  if (side !== r.side) return `exit ${r.exit} is evaluated on the ${side} under a cut after ${plan.deviceLayers} layers, not on the ${r.side}`
  return null
}
