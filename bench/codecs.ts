/**
 * Codecs at the cut (issue 18): encode + decode of one activation frame per codec, per MB of float32
 * activation, on this machine, beside the transfer time each saves at 1 Mbps against f32. The tensor
 * is a post-ReLU activation of 1 MiB ([1, 64, 64, 64], half of it zeros); f32's own encode + decode
 * is measured in the same run.
 */
import { CODECS, payloadBytes } from '../src/shared/codecs.js'
import { decodeFrame, encodeFrame, type FrameHeader } from '../src/shared/frame.js'
import { time } from './lib.js'

export function runCodecsBench(): Record<string, unknown> {
  const dims = [1, 64, 64, 64]
  const n = dims.reduce((a, b) => a * b, 1)
  const x = Float32Array.from({ length: n }, (_, i) => Math.max(0, Math.sin(i * 0.37) * 4 + Math.cos(i * 0.011)))
  const header: FrameHeader = { requestId: 'bench', planId: 'bench', model: 'bench', exit: 1, deviceLayers: 1, deviceMs: 0, sentAt: 0 }
  const mb = (4 * n) / 1e6
  const limits = { maxPayloadBytes: 8 * n }
  const f32Bytes = payloadBytes('f32', dims)
  const rows = CODECS.map((codec) => {
    const frame = encodeFrame(header, dims, x, codec)
    const enc = time(`encode ${codec}`, () => encodeFrame(header, dims, x, codec), 3)
    const dec = time(`decode ${codec}`, () => decodeFrame(frame, limits), 3)
    const bytes = payloadBytes(codec, dims)
    const savedMsAt1Mbps = ((f32Bytes - bytes) * 8) / 1000
    const costMsPerMB = (enc.medianUs + dec.medianUs) / 1000 / mb
    return {
      codec,
      payloadBytes: bytes,
      ratioToF32: bytes / f32Bytes,
      encodeMsPerMB: enc.medianUs / 1000 / mb,
      decodeMsPerMB: dec.medianUs / 1000 / mb,
      encodePlusDecodeMsPerMB: costMsPerMB,
      // transfer time this codec saves on the payload at 1 Mbps, per MB of float32 activation
      transferSavedMsPerMBAt1Mbps: savedMsAt1Mbps / mb,
      netGainMsPerMBAt1Mbps: savedMsAt1Mbps / mb - costMsPerMB
    }
  })
  const f32 = rows[0]!
  return {
    tensor: `[${dims.join(', ')}] float32 (${(mb).toFixed(2)} MB), post-ReLU`,
    codecs: rows.map((r) => ({ ...r, costToF32: r.encodePlusDecodeMsPerMB / f32.encodePlusDecodeMsPerMB }))
  }
}
