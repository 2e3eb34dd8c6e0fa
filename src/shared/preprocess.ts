/** Raw uint8 pixels to the model's float input, as the manifest's `preprocessing` states. */
import { UserError } from './errors.js'
import { product, type Manifest } from './manifest.js'

/**
 * x = (pixel * scale - mean[c]) / std[c], channels first (NCHW). The pixels come in the same layout
 * as the model input (for one-channel images NCHW and NHWC coincide).
 */
export function preprocess(manifest: Manifest, pixels: Uint8Array): Float32Array {
  const pre = manifest.preprocessing
  if (!pre) throw new UserError(`model ${manifest.id} declares no preprocessing for raw pixels`)
  const n = product(manifest.input.shape)
  if (pixels.length !== n)
    throw new UserError(
      `model ${manifest.id}: an image has ${pixels.length} pixels, the input ${manifest.input.name} takes ${n} (${manifest.input.shape.join('×')})`
    )
  const channels = manifest.input.shape[1] ?? 1
  const plane = n / channels
  const out = new Float32Array(n)
  for (let c = 0; c < channels; c++) {
    const mean = pre.mean[c] ?? pre.mean[0]!
    const std = pre.std[c] ?? pre.std[0]!
    for (let i = 0; i < plane; i++) {
      const k = pre.layout === 'NCHW' || channels === 1 ? c * plane + i : i * channels + c
      out[c * plane + i] = (pixels[k]! * pre.scale - mean) / std
    }
  }
  return out
}

/** Index of the largest score (the predicted class). */
export function argmax(scores: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i
  return best
}
