/**
 * Label-free audits (issue 31; Apparate, SOSP'24): a share of frames runs to the final exit whatever
 * its confidence, recording what every exit on its path said. On a window of such frames the console
 * knows, for any thresholds, where each frame would have left and whether that exit agrees with the
 * final one — so it can measure a policy's disagreement without labels and move the thresholds to
 * keep it within a bound as the data drifts.
 */
import type { HeadOutcome } from './exit-paths.js'
import { evaluatePolicy, type ExitOutcomes } from './confidence.js'

/** Default bound on the share of frames whose answer disagrees with the final exit's. */
export const DEFAULT_DISAGREEMENT_BOUND = 0.01
/** Audited frames a window keeps, and the fewest it tunes on. */
export const AUDIT_WINDOW = 400
export const AUDIT_MIN_FRAMES = 100

/** One audited frame: per exit (the manifest's order) its confidence and whether it agrees with the final exit. */
interface AuditedFrame {
  confidence: Float64Array
  agrees: Uint8Array
}

export interface Tuning {
  thresholds: (number | null)[]
  /** Share of the window's frames leaving at each exit under them. */
  leave: number[]
  /** Their disagreement with the final exit on the window. */
  disagreement: number
  /** Expected compute per frame (the cost units given). */
  cost: number
}

export class AuditWindow {
  private readonly frames: AuditedFrame[] = []

  /** `exits`: the model's exits in manifest order (the final last). */
  constructor(
    private readonly exits: readonly number[],
    private readonly size = AUDIT_WINDOW
  ) {}

  get count(): number {
    return this.frames.length
  }

  /** Adds an audited frame from its heads (every exit on its path, the final among them); false when it lacks one. */
  add(heads: readonly HeadOutcome[]): boolean {
    const final = heads.find((h) => h.exit === this.exits[this.exits.length - 1])
    if (!final) return false
    const confidence = new Float64Array(this.exits.length)
    const agrees = new Uint8Array(this.exits.length)
    for (const [j, e] of this.exits.entries()) {
      const h = heads.find((x) => x.exit === e)
      if (!h) return false
      confidence[j] = h.confidence
      agrees[j] = h.label === final.label ? 1 : 0
    }
    this.frames.push({ confidence, agrees })
    if (this.frames.length > this.size) this.frames.shift()
    return true
  }

  /** What a policy would do on the window: where frames leave and the share that disagrees with the final exit. */
  evaluate(thresholds: readonly (number | null)[], cost: readonly number[]): Tuning {
    const r = evaluatePolicy(this.outcomes(), asPolicy(thresholds), cost)
    return { thresholds: [...thresholds], leave: r.leave, disagreement: 1 - r.accuracy, cost: r.cost }
  }

  /**
   * Moves thresholds a grid step at a time, as Apparate does (a search over every combination would
   * pick the one that happened to fit the window): over `target` on the window — counting one more
   * disagreeing frame than it saw, a margin for its size — the threshold whose raise cuts disagreement
   * most goes up a step (a top threshold: never), until within; under it, one step down (a closed exit:
   * opened at the highest threshold that saves most) where it saves the most compute and stays within.
   * Null: nothing to move (or too few frames).
   */
  step(current: readonly (number | null)[], target: number, cost: readonly number[], grid: readonly number[]): Tuning | null {
    if (this.frames.length < AUDIT_MIN_FRAMES) return null
    const n = this.frames.length
    const within = (t: Tuning) => (t.disagreement * n + 1) / n <= target + 1e-12
    // a step up (the top one: never); a step down — a closed exit opens at any threshold of the grid, highest first
    const up = (v: number | null): (number | null)[] => (v === null ? [] : [grid.find((g) => g > v + 1e-12) ?? null])
    const down = (v: number | null): (number | null)[] => {
      if (v === null) return [...grid].reverse()
      const next = [...grid].reverse().find((g) => g < v - 1e-12)
      return next === undefined ? [] : [next]
    }
    const moves = (t: readonly (number | null)[], dir: typeof up) =>
      t.slice(0, -1).flatMap((v, j) =>
        dir(v).map((next) =>
          this.evaluate(
            t.map((x, i) => (i === j ? next : x)),
            cost
          )
        )
      )
    let t = this.evaluate(current, cost)
    if (!within(t)) {
      for (let i = 0; i < 64 && !within(t); i++) {
        const options = moves(t.thresholds, up)
        if (!options.length) break
        t = options.reduce((a, b) =>
          b.disagreement < a.disagreement - 1e-12 || (Math.abs(b.disagreement - a.disagreement) <= 1e-12 && b.cost < a.cost) ? b : a
        )
      }
      return t
    }
    const cheaper = moves(t.thresholds, down).filter((x) => within(x) && x.cost < t.cost - 1e-9)
    return cheaper.length ? cheaper.reduce((a, b) => (b.cost < a.cost ? b : a)) : null
  }

  private outcomes(): ExitOutcomes {
    return { confidence: this.frames.map((f) => f.confidence), correct: this.frames.map((f) => f.agrees) }
  }
}

/** Thresholds as confidence.ts's policy (never: +∞; the last answers whatever). */
const asPolicy = (thresholds: readonly (number | null)[]): number[] =>
  thresholds.map((t, j) => (j === thresholds.length - 1 ? 0 : (t ?? Number.POSITIVE_INFINITY)))
