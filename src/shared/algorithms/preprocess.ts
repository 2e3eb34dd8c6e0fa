/** Raw uint8 pixels to the model's float input, as the manifest's `preprocessing` states. */
import { UserError } from '../errors.js'
import { product, type Manifest } from '../contracts/manifest.js'

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
  return normalise(pre, manifest.input.shape[1] ?? 1, pixels)
}

/** The arithmetic of `preprocess` on `channels` planes of pixels (the codecs' cost measurement times it too). */
export function normalise(pre: Pick<Preprocessing, 'scale' | 'mean' | 'std' | 'layout'>, channels: number, pixels: Uint8Array): Float32Array {
  const n = pixels.length
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

type Preprocessing = NonNullable<Manifest['preprocessing']>

/** Index of the largest score (the predicted class). */
export function argmax(scores: ArrayLike<number>): number {
  let best = 0
  for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i
  return best
}

/**
 * A preprocessing spec as users write it: "scale=1/255,mean=0.485/0.456/0.406,std=0.229/0.224/0.225"
 * (scale one number or a fraction; mean and std lists, std positive).
 */
export function parsePreprocessSpec(value: string): { scale?: number; mean?: number[]; std?: number[] } {
  const out: { scale?: number; mean?: number[]; std?: number[] } = {}
  for (const part of value.split(',')) {
    const [key, v] = part.split('=').map((x) => x.trim())
    const nums = (v ?? '').split(/[/:]/).map((x) => Number(x))
    if (!v || nums.some((n) => !Number.isFinite(n))) throw new UserError(`"${part}": expected key=number or key=n1/n2/n3.`)
    // scale=1/255 is a fraction; mean and std are lists
    if (key === 'scale' && nums.length <= 2 && nums.every((n) => n > 0)) out.scale = nums.length === 2 ? nums[0]! / nums[1]! : nums[0]!
    else if (key === 'mean') out.mean = nums
    else if (key === 'std' && nums.every((n) => n > 0)) out.std = nums
    else throw new UserError(`"${part}": keys are scale (one number), mean and std (positive) lists.`)
  }
  return out
}
