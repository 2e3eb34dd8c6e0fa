/**
 * The `layers` campaign's workload: a grid of synthetic single-layer models for every layer type of
 * the paper's table (and the cheap ones), the op types of today's networks and whole blocks, each timed on one side by `timeSynthetic`
 * (src/main/runtime/synthetic.ts).
 */
import { createHash } from 'node:crypto'
import { ACTIVATION_OPS, GENERIC_OPS, type SyntheticSpec } from '../../shared/onnx/onnx-builder.js'

/** The configurations timed by a `layers` campaign, in a fixed order. */
export function layerGrid(): SyntheticSpec[] {
  const g: SyntheticSpec[] = []
  for (const channels of [3, 16, 64])
    for (const size of [8, 14, 28])
      for (const filters of [16, 64, 128, 256])
        for (const kernel of [3, 5]) for (const stride of [1, 2]) g.push({ type: 'conv', channels, size, filters, kernel, stride })
  // The range of real networks' layers beyond the grid above (a plans campaign found the served
  // model's 96- and 192-channel convs and pools, and its 1-channel first conv, mispredicted outside
  // it): wide layers on small maps, a grayscale first layer.
  for (const size of [7, 14])
    for (const filters of [64, 128, 256])
      for (const kernel of [3, 5]) for (const stride of [1, 2]) g.push({ type: 'conv', channels: 192, size, filters, kernel, stride })
  for (const filters of [16, 32, 64])
    for (const kernel of [3, 5]) for (const stride of [1, 2]) g.push({ type: 'conv', channels: 1, size: 28, filters, kernel, stride })
  for (const channels of [16, 32, 64, 128])
    for (const size of [7, 14, 28]) for (const kernel of [2, 3]) for (const stride of [1, 2]) g.push({ type: 'pool', channels, size, kernel, stride })
  for (const channels of [192, 256])
    for (const size of [7, 14]) for (const kernel of [2, 3]) for (const stride of [1, 2]) g.push({ type: 'pool', channels, size, kernel, stride })
  for (const inputs of [128, 256, 512, 1152, 2048, 3072, 4096]) for (const outputs of [10, 64, 128, 256, 512, 1024]) g.push({ type: 'fc', inputs, outputs })
  for (const type of ['relu', 'lrn', 'dropout', 'flatten'] as const)
    for (const c of [16, 32, 64, 128]) for (const h of [7, 14, 28]) g.push({ type, shape: [1, c, h, h] })
  for (const n of [10, 100, 1000, 10000]) g.push({ type: 'softmax', shape: [1, n] })
  // Today's op types (imported MobileNets, ResNets, Inceptions): depthwise conv, batch norm, add,
  // global pool, concat, the other activations.
  for (const channels of [16, 64, 128])
    for (const size of [7, 14, 28]) for (const kernel of [3, 5]) for (const stride of [1, 2]) g.push({ type: 'dwconv', channels, size, kernel, stride })
  for (const type of ['batchnorm', 'add', 'globalpool'] as const)
    for (const c of [16, 64, 128]) for (const h of [7, 14, 28]) g.push({ type, shape: [1, c, h, h] })
  for (const c of [16, 64]) for (const h of [7, 14, 28]) for (const parts of [2, 3]) g.push({ type: 'concat', shape: [1, c, h, h], parts })
  for (const op of ACTIVATION_OPS) for (const c of [16, 64]) for (const h of [14, 28]) g.push({ type: 'activation', op, shape: [1, c, h, h] })
  // Ops without a model of their own (transformers' LayerNorm and attention plumbing, channel shuffles).
  for (const op of GENERIC_OPS) for (const c of [16, 64, 128]) for (const h of [7, 14, 28]) g.push({ type: 'generic', op, shape: [1, c, h, h] })
  // Whole blocks: a block term is fitted on them, and compared with the sum over their ops.
  for (const channels of [16, 32, 64])
    for (const size of [7, 14, 28]) {
      g.push({ type: 'block', kind: 'residual', channels, size })
      g.push({ type: 'block', kind: 'inception', channels, size })
      for (const expand of [2, 4]) if (channels <= 32) g.push({ type: 'block', kind: 'inverted', channels, size, expand })
    }
  return g
}

/**
 * Held-out configurations: a quarter of each group (rounded down), chosen by the SHA-256 of each
 * configuration's key — fixed for a grid, spread over it. (Every fourth in grid order would hold
 * out one corner of the grid, e.g. all the widest fc layers, and test extrapolation instead.)
 * A group of fewer than four configurations (two LRN layers in the served model) is all fitted.
 */
export function heldOutKeys(keys: readonly string[], groups: readonly string[]): Map<string, boolean> {
  const byGroup = new Map<string, string[]>()
  for (const [i, k] of keys.entries()) byGroup.set(groups[i]!, [...(byGroup.get(groups[i]!) ?? []), k])
  const out = new Map<string, boolean>(keys.map((k) => [k, false]))
  const rank = (k: string) => createHash('sha256').update(k).digest('hex')
  for (const list of byGroup.values()) {
    const sorted = [...list].sort((a, b) => (rank(a) < rank(b) ? -1 : 1))
    for (const k of sorted.slice(0, Math.floor(list.length / 4))) out.set(k, true)
  }
  return out
}
