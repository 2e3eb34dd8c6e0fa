/**
 * Fitting the tree ensemble of a regression key (src/shared/algorithms/forest.ts) with ml-random-forest: on the
 * same training points as the linear fit, log(ms) as the target, checked on the same held-out points.
 */
import { RandomForestRegression } from 'ml-random-forest'
import { compactTree, forestPredict, type Forest } from '../../shared/algorithms/forest.js'
import type { FitPoint } from '../../shared/algorithms/latency.js'

/** An ensemble is fitted only on at least this many training points (and one held-out point to check it on). */
export const FOREST_MIN_POINTS = 30
/** Trees, their depth and the least samples a node splits: sized for profiles of tens of kB per key. */
export const FOREST_OPTIONS = { nEstimators: 30, maxDepth: 8, minNumSamples: 3, seed: 1 } as const

/** What ml-random-forest is given: every variable for every tree, bootstrap samples, no out-of-bag estimate. */
export const RANDOM_FOREST_OPTIONS = {
  nEstimators: FOREST_OPTIONS.nEstimators,
  maxFeatures: 1.0,
  replacement: true,
  useSampleBagging: true,
  noOOB: true,
  seed: FOREST_OPTIONS.seed,
  treeOptions: { maxDepth: FOREST_OPTIONS.maxDepth, minNumSamples: FOREST_OPTIONS.minNumSamples }
}

/** The ensemble for these points (null with too few, or when the measurements are not all positive). */
export function fitForest(features: readonly string[], train: readonly FitPoint[], held: readonly FitPoint[]): Forest | null {
  if (train.length < FOREST_MIN_POINTS || held.length === 0 || train.some((p) => !(p.y > 0))) return null
  const rf = new RandomForestRegression(RANDOM_FOREST_OPTIONS)
  rf.train(
    train.map((p) => [...p.x]),
    train.map((p) => Math.log(p.y))
  )
  const model = JSON.parse(JSON.stringify(rf.toJSON())) as { baseModel: { estimators: { root: unknown }[]; indexes: number[][] } }
  const trees = model.baseModel.estimators.map((e, i) => compactTree(e.root as Parameters<typeof compactTree>[0], model.baseModel.indexes[i]!))
  const forest: Forest = { kind: 'random-forest', features: [...features], trees, n: train.length }
  const rel = held.filter((p) => p.y > 0).map((p) => Math.abs(forestPredict(forest, p.x) - p.y) / p.y)
  return { ...forest, heldOut: { n: rel.length, mape: rel.length ? rel.reduce((a, b) => a + b, 0) / rel.length : null } }
}
