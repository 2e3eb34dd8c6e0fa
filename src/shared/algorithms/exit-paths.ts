/**
 * Where each exit branches off the final exit's path (issue 31: confidence exits at run time). Exits
 * share a trunk: exit e's path is the final path's first `branchAt` layers, then its own head. Under a
 * plan cut after `deviceLayers` layers of the final path, an exit whose branch point is before the cut
 * is evaluated on the device (its head runs there), the others on the edge; an exit whose path is not
 * such a trunk-and-head (a model whose exits do not share one trunk) has no place in a policy.
 */
import { exitOutput, getExit, type Manifest } from '../contracts/manifest.js'
import type { PlanPolicy } from '../contracts/messages.js'
import { asLogits, confidenceOf, softmaxT } from './confidence.js'
import { argmax } from './preprocess.js'

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
 * Why a model's exits cannot run as one policy (null: they can): each exit must be a head on the
 * final exit's trunk, and the manifest's exit order (the order of a policy's thresholds) the order
 * in which a frame meets them, the final exit last.
 */
export function policyProblem(m: Manifest): string | null {
  if (m.exits.length < 2) return `model ${m.id} has one exit: a policy needs several (edgent model exits add)`
  const b = exitBranches(m)
  const final = finalExit(m)
  if (m.exits[m.exits.length - 1]!.exit !== final) return `model ${m.id}: its last exit in the manifest is not the one with the longest path`
  for (let j = 1; j < b.length; j++)
    if (b[j]!.branchAt < b[j - 1]!.branchAt)
      return `model ${m.id}: exit ${b[j]!.exit} branches before exit ${b[j - 1]!.exit}, which precedes it in the manifest`
  return null
}

/** One exit a side evaluates: its index in the manifest (a policy's thresholds), its branch point and path length. */
export interface ExitStep extends ExitBranch {
  index: number
  pathLayers: number
}

/** The exits each side evaluates under a cut after `deviceLayers` layers of the final path, in the order a frame meets them. */
export function exitSchedule(m: Manifest, deviceLayers: number): { device: ExitStep[]; edge: ExitStep[] } {
  const finalLayers = getExit(m, finalExit(m)).layers.length
  const steps = exitBranches(m).map((b, index) => ({ ...b, index, pathLayers: m.exits[index]!.layers.length }))
  return {
    device: steps.filter((s) => exitSide(s, deviceLayers, finalLayers) === 'device'),
    edge: steps.filter((s) => exitSide(s, deviceLayers, finalLayers) === 'edge')
  }
}

/** Whether an exit's output is a probability vector (its path ends in a Softmax) rather than logits. */
export function endsInSoftmax(m: Manifest, index: number): boolean {
  return exitOutput(m, m.exits[index]!.exit).type === 'softmax'
}

/** A frame's calibrated confidence at exit `index` (the manifest's order), from the exit's raw output. */
export function exitConfidence(m: Manifest, policy: PlanPolicy, index: number, scores: Float32Array): number {
  const t = policy.temperatures[index]
  if (t === undefined) throw new Error(`policy has no temperature for exit index ${index}`)
  return confidenceOf(softmaxT(asLogits(scores, endsInSoftmax(m, index)), t), policy.measure)
}

/** What one exit said about a frame. */
export interface ExitOutcome {
  exit: number
  label: number
  confidence: number
}

/** An exit evaluated on the way: what it said, and whether its threshold let the frame leave (an audited frame runs on). */
export interface HeadOutcome extends ExitOutcome {
  leaves: boolean
}

export interface PolicyRun {
  /** The exit the frame left at on this side (null: it goes on to the other side; an audited frame leaves only at the final exit). */
  left: (ExitOutcome & { scores: Float32Array }) | null
  /** The tensor at `to` (when the frame did not leave). */
  output: Float32Array
  dims: number[]
  /** The compute of every segment run, ms. */
  ms: number
  /** Every exit evaluated on the way (an audited frame's record of what each would have said). */
  heads: HeadOutcome[]
}

/** One segment of an exit path run on one side (the agent's or the edge's executor). */
export type RunSegment = (
  segment: { exit: number; from: number; to: number },
  input: Float32Array,
  dims: number[]
) => Promise<{ output: Float32Array; dims: number[]; ms: number }>

/** A session of a policy's path, as measured tables key it: `exit/from-to` (the trunk's under the final exit). */
export const pieceKey = (seg: { exit: number; from: number; to: number }): string => `${seg.exit}/${seg.from}-${seg.to}`

/**
 * Runs layers `from`..`to` of the final path under a policy, evaluating the exit heads of `steps` on
 * the way (each a segment of its own, on the trunk's tensor at its branch point): the frame leaves at
 * the first whose confidence reaches its threshold — unless it is audited, when it runs on and every
 * head's outcome is recorded. The final exit, when among the steps, always answers.
 */
export async function runWithPolicy(o: {
  m: Manifest
  policy: PlanPolicy
  steps: readonly ExitStep[]
  from: number
  to: number
  input: Float32Array
  dims: number[]
  audit: boolean
  run: RunSegment
}): Promise<PolicyRun> {
  const final = finalExit(o.m)
  let x = o.input
  let dims = o.dims
  let at = o.from
  let ms = 0
  const heads: HeadOutcome[] = []
  const advance = async (to: number) => {
    if (to <= at) return
    const r = await o.run({ exit: final, from: at, to }, x, dims)
    x = r.output
    dims = r.dims
    ms += r.ms
    at = to
  }
  for (const s of o.steps) {
    const threshold = o.policy.thresholds[s.index]
    const last = s.headLayers === 0
    if (!last && (threshold === null || threshold === undefined) && !o.audit) continue // never leaves there: not evaluated
    await advance(s.branchAt)
    let scores = x
    if (!last) {
      const r = await o.run({ exit: s.exit, from: s.branchAt, to: s.pathLayers }, x, dims)
      scores = r.output
      ms += r.ms
    }
    const confidence = exitConfidence(o.m, o.policy, s.index, scores)
    const leaves = last || (threshold !== null && threshold !== undefined && confidence >= threshold)
    heads.push({ exit: s.exit, label: argmax(scores), confidence, leaves })
    if (last || (leaves && !o.audit)) return { left: { exit: s.exit, label: argmax(scores), confidence, scores }, output: x, dims, ms, heads }
  }
  await advance(o.to)
  return { left: null, output: x, dims, ms, heads }
}

/**
 * Checks an early result against its plan: the exit must be one the plan's policy lets a frame leave
 * at on the side that answered, and the confidence a number in [0, 1]. Returns what is wrong (null: fine).
 */
export function earlyResultProblem(
  m: Manifest,
  plan: { deviceLayers: number; policy?: PlanPolicy | undefined },
  r: { exit: number; confidence: number; side: 'device' | 'edge' }
): string | null {
  if (!Number.isFinite(r.confidence) || r.confidence < 0 || r.confidence > 1) return `confidence ${r.confidence} is not in [0, 1]`
  const branches = exitBranches(m)
  const final = finalExit(m)
  const open = plan.policy ? m.exits.filter((e, j) => e.exit === final || plan.policy!.thresholds[j] != null).map((e) => e.exit) : [final]
  const b = branches.find((x) => x.exit === r.exit)
  if (!b || !open.includes(r.exit)) return `exit ${r.exit} is not on the plan's path (its policy lets frames leave at exits ${open.join(', ')})`
  const side = exitSide(b, plan.deviceLayers, getExit(m, final).layers.length)
  if (side !== r.side) return `exit ${r.exit} is evaluated on the ${side} under a cut after ${plan.deviceLayers} layers, not on the ${r.side}`
  return null
}
