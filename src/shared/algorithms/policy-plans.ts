/**
 * Planning with confidence-exit policies (issue 31). Under a policy a configuration is (policy,
 * deviceLayers, codec), and its latency is a distribution: a mixture over the exits frames leave at,
 * each with the share measured on held-out frames (`edgent model policies`) and its own device time,
 * upload (only frames that do not leave on the device), edge time and result. Each piece is priced as
 * the agent and the edge run it: trunk segments between the evaluated exits' branch points and one
 * segment per exit head.
 *
 * The planner plans on the mixture's mean (the typical latency: linear in 1/B, so the configuration
 * map stays exact) or, at a percentile, on the mixture's quantile. A policy is ranked, for the choice
 * of the most accurate configuration, at the level of the most accurate static exit it is within the
 * tolerance of (default 0.5 points, compared on the same held-out frames): Edgent then prefers it
 * wherever it is faster at practically the same accuracy, and its own measured accuracy is what it reports.
 */
import { resultBytes, type Manifest } from '../contracts/manifest.js'
import { exitSchedule, policyProblem, type ExitStep } from './exit-paths.js'

/** Default: a policy counts as a static exit's accuracy when it is at most this many points below it. */
export const DEFAULT_POLICY_TOLERANCE_PTS = 0.5

/** The frames that leave at one exit under one configuration, and what they cost. */
export interface MixtureComponent {
  exit: number
  side: 'device' | 'edge'
  /** Their share of frames (held-out). */
  share: number
  deviceMs: number
  uploadBytes: number
  edgeMs: number
  downloadBytes: number
  overheadMs: number
  /** A lossy codec's encoding and decoding beyond f32's (frames that cross the link), ms. */
  codecMs?: number
}

/** A policy candidate's policy: which one, its thresholds, where frames leave, and the mixture. */
export interface CandidatePolicy {
  index: number
  thresholds: (number | null)[]
  components: MixtureComponent[]
  /** Set on a percentile's table: the candidate's latency is the mixture's quantile there (0..1), not its mean. */
  quantile?: number
}

/** A segment of exit `exit`'s path, layers [from, to), priced on one side; `idleMs`: the wait before it (the edge's: the device's work). */
export type SegmentCost = (side: 'device' | 'edge', exit: number, from: number, to: number, idleMs: number, sends: boolean) => number

/** A plan's messaging for a cut after `p` of `n` layers sending `bytes` after `idleMs` of device work. */
export type MessagingCost = (p: number, n: number, bytes: number, idleMs: number) => number

/** The exits a policy evaluates (a threshold, or the final one), in the order a frame meets them. */
const evaluated = (steps: readonly ExitStep[], thresholds: readonly (number | null)[]): ExitStep[] =>
  steps.filter((s) => s.headLayers === 0 || thresholds[s.index] != null)

/**
 * The mixture of one policy at a cut after `d` of the final path's `n` layers: per exit a frame may
 * leave at, its share and costs. `uploadBytes`: the activation at the cut as the codec sends it.
 * With `auditShare`, that share of frames is run to the final exit evaluating every head on the way
 * (label-free audits): one more component, the others scaled down.
 */
export function policyComponents(
  m: Manifest,
  policy: { thresholds: readonly (number | null)[]; leave: readonly number[] },
  d: number,
  n: number,
  uploadBytes: number,
  seg: SegmentCost,
  messaging: MessagingCost,
  auditShare = 0
): MixtureComponent[] {
  const { device, edge } = exitSchedule(m, d)
  const final = m.exits[m.exits.length - 1]!.exit
  /** Walks both sides evaluating `steps` of each; `leave(s)` is the share leaving at s (null: none leaves there). */
  const walk = (dev: readonly ExitStep[], edg: readonly ExitStep[], leave: (s: ExitStep) => number | null): MixtureComponent[] => {
    const out: MixtureComponent[] = []
    // the device: trunk pieces between evaluated branch points, each head after its piece
    let deviceMs = 0
    let at = 0
    for (const s of dev) {
      if (s.branchAt > at) deviceMs += seg('device', final, at, s.branchAt, 0, false)
      at = Math.max(at, s.branchAt)
      if (s.headLayers > 0) deviceMs += seg('device', s.exit, s.branchAt, s.pathLayers, 0, false)
      const share = leave(s)
      if (share !== null)
        out.push({ exit: s.exit, side: 'device', share, deviceMs, uploadBytes: 0, edgeMs: 0, downloadBytes: 0, overheadMs: messaging(n, n, 0, deviceMs) })
    }
    if (d >= n) return out
    if (d > at) deviceMs += seg('device', final, at, d, 0, true)
    const overheadMs = messaging(d, n, uploadBytes, deviceMs)
    let edgeMs = 0
    at = d
    let idle = deviceMs
    for (const s of edg) {
      if (s.branchAt > at) {
        edgeMs += seg('edge', final, at, s.branchAt, idle, true)
        idle = 0
      }
      at = Math.max(at, s.branchAt)
      if (s.headLayers > 0) {
        edgeMs += seg('edge', s.exit, s.branchAt, s.pathLayers, idle, true)
        idle = 0
      }
      const share = leave(s)
      if (share !== null) out.push({ exit: s.exit, side: 'edge', share, deviceMs, uploadBytes, edgeMs, downloadBytes: resultBytes(m, s.exit), overheadMs })
    }
    return out
  }
  const a = Math.min(1, Math.max(0, auditShare))
  const own = walk(evaluated(device, policy.thresholds), evaluated(edge, policy.thresholds), (s) => (1 - a) * (policy.leave[s.index] ?? 0))
  if (!(a > 0)) return own
  return [...own, ...walk(device, edge, (s) => (s.headLayers === 0 ? a : null))]
}

/**
 * The accuracy level a policy is ranked at: the most accurate static exit it is within `tolerancePts`
 * of (both measured on the same held-out frames, `exitAccuracy`), at that exit's manifest accuracy (the
 * level static plans stand at: a policy ties a static exit it matches, and the faster wins); else its own.
 */
export function rankAccuracy(m: Manifest, policyAccuracy: number, tolerancePts = DEFAULT_POLICY_TOLERANCE_PTS): number {
  const heldOut = m.confidence?.exitAccuracy
  let rank: number | null = null
  m.exits.forEach((e, j) => {
    const a = heldOut?.[j]
    if (a !== undefined && 100 * (a - policyAccuracy) <= tolerancePts + 1e-9) rank = Math.max(rank ?? -1, e.accuracy)
  })
  return rank ?? policyAccuracy
}

/** Why a model's policies are not planned with (null: they are). */
export function policiesUnavailable(m: Manifest): string | null {
  if (!m.confidence?.policies.length) return `model ${m.id} has no measured policies (edgent model policies)`
  if (m.confidence.temperatures.length !== m.exits.length)
    return `model ${m.id}: its policies were measured for ${m.confidence.temperatures.length} exits, it has ${m.exits.length}`
  return policyProblem(m)
}

/** A mixture's mean of `ms`, or its quantile q (0..1): the least latency of a component at which the shares so far reach q. */
export function mixtureMs(components: readonly MixtureComponent[], ms: (c: MixtureComponent) => number, quantile?: number): number {
  const total = components.reduce((a, c) => a + c.share, 0)
  if (!(total > 0)) return components.length ? ms(components[components.length - 1]!) : 0
  if (quantile === undefined) return components.reduce((a, c) => a + (c.share / total) * ms(c), 0)
  const sorted = components.map((c) => ({ c, t: ms(c) })).sort((a, b) => a.t - b.t)
  let cum = 0
  for (const x of sorted) {
    cum += x.c.share / total
    if (cum >= quantile - 1e-12) return x.t
  }
  return sorted[sorted.length - 1]!.t
}
