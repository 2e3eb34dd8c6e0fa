/**
 * The edge's load, measured (DESIGN.md, "An edge shared by a fleet"): every edge run the pool
 * finishes (its wait for a worker, its service time) and every frame a device sends, over a sliding
 * window. Per device and overall: runs and frames per second, the mean and p95 wait, the share of
 * the pool's time the device uses. The planner asks it what wait a device's edge run would meet under
 * a candidate plan: the other devices' measured utilisation plus what this plan would add, through a
 * multi-server queue (Sakasegawa's approximation for M/D/c), capped by the closed-loop bound (each
 * device has at most one run at the edge, so at most the others' runs are ahead of it).
 */
import { mean, quantileSorted, sum } from 'simple-statistics'
import type { EdgeLoadView } from '../../../shared/contracts/console-api.js'

/** The window the load is measured over, ms. */
export const LOAD_WINDOW_MS = 2000
/** Samples kept at most (oldest dropped first), whatever the rate. */
const MAX_SAMPLES = 20_000
/** Utilisation above which the queue model gives way to the closed-loop bound. */
const SATURATED = 0.95

export interface EdgeRun {
  owner: string
  /** performance.now() when the run finished. */
  at: number
  queuedMs: number
  serviceMs: number
  /** The run itself (session.run), within serviceMs. */
  runMs: number
}

export class EdgeLoad {
  private runs: EdgeRun[] = []
  private frames: { owner: string; at: number }[] = []

  constructor(
    private readonly workers: () => number,
    private readonly now: () => number = () => performance.now()
  ) {}

  addRun(r: EdgeRun): void {
    this.runs.push(r)
    this.trim(this.runs)
  }

  addFrame(owner: string): void {
    this.frames.push({ owner, at: this.now() })
    this.trim(this.frames)
  }

  private trim(xs: { at: number }[]): void {
    const cutoff = this.now() - LOAD_WINDOW_MS
    let i = 0
    while (i < xs.length && (xs[i]!.at < cutoff || xs.length - i > MAX_SAMPLES)) i++
    if (i) xs.splice(0, i)
  }

  private window(): { runs: EdgeRun[]; frames: { owner: string; at: number }[] } {
    this.trim(this.runs)
    this.trim(this.frames)
    return { runs: this.runs, frames: this.frames }
  }

  view(): EdgeLoadView {
    const { runs, frames } = this.window()
    const c = Math.max(1, this.workers())
    const secs = LOAD_WINDOW_MS / 1000
    const waits = runs.map((r) => r.queuedMs).sort((a, b) => a - b)
    const ids = [...new Set([...runs.map((r) => r.owner), ...frames.map((f) => f.owner)])].sort()
    const devices = ids.map((id) => {
      const mine = runs.filter((r) => r.owner === id)
      return {
        id,
        runsPerSecond: mine.length / secs,
        framesPerSecond: frames.filter((f) => f.owner === id).length / secs,
        meanWaitMs: meanOr0(mine.map((r) => r.queuedMs)),
        utilisation: sum(mine.map((r) => r.serviceMs)) / (LOAD_WINDOW_MS * c)
      }
    })
    return {
      workers: c,
      queued: 0,
      windowMs: LOAD_WINDOW_MS,
      runsPerSecond: runs.length / secs,
      utilisation: sum(runs.map((r) => r.serviceMs)) / (LOAD_WINDOW_MS * c),
      meanWaitMs: meanOr0(waits),
      p95WaitMs: waits.length ? quantileSorted(waits, 0.95) : 0,
      meanServiceMs: meanOr0(runs.map((r) => r.serviceMs)),
      devices
    }
  }

  /**
   * The wait model for `agentId`'s edge runs, from the other devices' measured load: called with the
   * `serviceMs` a candidate plan would run at the edge per inference and its `perSecond` inferences
   * a second, it predicts the wait through the queue model. 0 when the others leave the edge idle.
   */
  waitFor(agentId: string): (serviceMs: number, perSecond: number) => number {
    const { runs, frames } = this.window()
    const c = Math.max(1, this.workers())
    const others = runs.filter((r) => r.owner !== agentId)
    if (!others.length) return () => 0
    const busy = sum(others.map((r) => r.serviceMs))
    const rhoOthers = busy / (LOAD_WINDOW_MS * c)
    // The closed-loop bound: the devices seen lately, each with one run at most ahead of this one.
    const active = new Set([...others.map((r) => r.owner), ...frames.filter((f) => f.owner !== agentId).map((f) => f.owner)]).size
    const exponent = Math.sqrt(2 * (c + 1)) - 1
    return (serviceMs, perSecond) => {
      const rho = rhoOthers + (perSecond * serviceMs) / 1000 / c
      const meanService = (busy + serviceMs) / (others.length + 1)
      const bound = (active * meanService) / c
      if (rho >= SATURATED) return bound
      return Math.min((rho ** exponent / (c * (1 - rho))) * (meanService / 2), bound)
    }
  }

  /** The pool's cost around a run (hand-off to the worker and back), mean over the window; 0.2 ms before any run. */
  meanHandoffMs(): number {
    const { runs } = this.window()
    return runs.length ? mean(runs.map((r) => Math.max(0, r.serviceMs - r.runMs))) : 0.2
  }

  /** This device's measured inference rate (every frame it sent, device-only reports included), per second; null when none lately. */
  framesPerSecond(agentId: string): number | null {
    const n = this.window().frames.filter((f) => f.owner === agentId).length
    return n ? n / (LOAD_WINDOW_MS / 1000) : null
  }
}

/** The mean, 0 for nothing (a window without runs waits for nothing). */
function meanOr0(xs: number[]): number {
  return xs.length ? mean(xs) : 0
}
