/**
 * A tree ensemble as a latency predictor: the seed's question ("is the layer prediction model
 * necessary? can we find a better agent?") answered with a maintained non-linear regressor beside
 * the paper's linear form. Trained in the main process by ml-random-forest (calibration/fit.ts) on
 * log(latency) — errors that matter are relative, and latencies span four orders of magnitude —
 * and stored in a profile as its trees in a compact form this module evaluates (no dependency here:
 * the renderer and the planner only predict).
 */
import { z } from 'zod'

/**
 * The trees, each a flat array of nodes of 4 numbers: an internal node is
 * [column, split value, left child, right child] (a row goes left when row[column] < split value, as
 * ml-cart decides), a leaf is [-1, predicted log(ms), 0, 0]. The ensemble predicts the mean over trees.
 */
export const ForestSchema = z
  .object({
    kind: z.literal('random-forest'),
    /** Variable names, in column order (as FIT_FEATURES). */
    features: z.array(z.string()).min(1),
    trees: z.array(z.array(z.number())).min(1),
    /** Held-out configurations of the grid predicted by the ensemble. */
    heldOut: z.object({ n: z.number().int().nonnegative(), mape: z.number().nullable() }).optional(),
    n: z.number().int().nonnegative().optional()
  })
  .loose()
export type Forest = z.infer<typeof ForestSchema>

/** One tree's log(ms) for a row. */
function treeValue(nodes: readonly number[], x: readonly number[]): number {
  let i = 0
  for (let guard = 0; guard < nodes.length; guard++) {
    const col = nodes[4 * i]!
    if (col < 0) return nodes[4 * i + 1]!
    i = x[col]! < nodes[4 * i + 1]! ? nodes[4 * i + 2]! : nodes[4 * i + 3]!
  }
  throw new Error('a tree of the ensemble has a cycle')
}

/** The ensemble's prediction, ms: exp of the mean over trees of log(ms). */
export function forestPredict(f: Forest, x: readonly number[]): number {
  let s = 0
  for (const t of f.trees) s += treeValue(t, x)
  return Math.exp(s / f.trees.length)
}

interface CartNode {
  left?: CartNode
  right?: CartNode
  splitColumn?: number
  splitValue?: number
  distribution?: number
}

/**
 * One ml-cart tree (its JSON root), trained on the columns `columns` of the rows, as flat nodes over
 * the full row (children after their parent, breadth-first).
 */
export function compactTree(root: CartNode, columns: readonly number[]): number[] {
  const out: number[] = []
  const queue: CartNode[] = [root]
  for (let k = 0; k < queue.length; k++) {
    const n = queue[k]!
    if (n.left && n.right && n.splitColumn !== undefined && n.splitValue !== undefined) {
      const l = queue.length
      queue.push(n.left, n.right)
      out.push(columns[n.splitColumn]!, n.splitValue, l, l + 1)
    } else {
      if (typeof n.distribution !== 'number' || !Number.isFinite(n.distribution)) throw new Error('a leaf of the tree has no value')
      out.push(-1, n.distribution, 0, 0)
    }
  }
  return out
}
