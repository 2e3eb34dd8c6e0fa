/**
 * Codecs at the cut (issue 18): encode + decode of one activation frame per codec, per MB of float32
 * activation, on this machine, beside the transfer time each saves at 1 Mbps against f32. The tensor
 * is a post-ReLU activation of 1 MiB ([1, 64, 64, 64], half of it zeros); f32's own encode + decode
 * is measured in the same run.
 *
 * Then a lossless stage on top, measured, not built into the frame: raw deflate (zlib level 1, Node's
 * own) of each codec's payload at three cuts of the camera model's final exit, on its first 50 shipped
 * samples — the bytes it saves and what compressing and inflating cost here.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib'
import { CODECS, encodeInto, payloadBytes } from '../src/shared/algorithms/codecs.js'
import { decodeFrame, encodeFrame, type FrameHeader } from '../src/shared/contracts/frame.js'
import { OrtExecutor } from '../src/main/runtime/executor.js'
import { loadManifest, readModelSamples } from '../src/main/runtime/files.js'
import { packageRoot } from '../src/main/runtime/paths.js'
import { preprocess } from '../src/shared/algorithms/preprocess.js'
import { join } from 'node:path'
import { time } from './lib.js'

/** Cuts of branchy-resnet96's exit 5: after the pool (24×24×24), block 3's add, and its ReLU (64×6×6). */
const DEFLATE_CUTS = [3, 8, 9]
const DEFLATE_SAMPLES = 50

async function losslessOnTop(): Promise<Record<string, unknown>[]> {
  const loaded = loadManifest(join(packageRoot(), 'resources', 'models', 'branchy-resnet96'))
  const m = loaded.manifest
  const samples = readModelSamples(loaded)
  const ex = new OrtExecutor()
  await ex.start()
  try {
    await ex.openModel(loaded.dir)
    const rows: Record<string, unknown>[] = []
    for (const cut of DEFLATE_CUTS) {
      const payloads: Record<string, Uint8Array[]> = { f32: [], f16: [], int8: [] }
      for (let k = 0; k < DEFLATE_SAMPLES; k++) {
        const x = preprocess(m, samples.images.subarray(k * samples.imageElements, (k + 1) * samples.imageElements))
        const r = await ex.runSegment(m.id, { exit: 5, from: 0, to: cut }, x)
        for (const codec of Object.keys(payloads) as ('f32' | 'f16' | 'int8')[]) {
          const out = new Uint8Array(payloadBytes(codec, r.dims))
          encodeInto(codec, r.dims, r.output, out, 0)
          payloads[codec]!.push(out)
        }
      }
      for (const [codec, list] of Object.entries(payloads)) {
        const raw = list.reduce((a, p) => a + p.length, 0)
        const packed = list.map((p) => deflateRawSync(p, { level: 1 }))
        const deflated = packed.reduce((a, p) => a + p.length, 0)
        let i = 0
        const deflate = time(`deflate ${codec} cut ${cut}`, () => deflateRawSync(list[i++ % list.length]!, { level: 1 }), list.length, 3)
        let j = 0
        const inflate = time(`inflate ${codec} cut ${cut}`, () => inflateRawSync(packed[j++ % packed.length]!), packed.length, 3)
        const bytes = raw / list.length
        const saved = (raw - deflated) / list.length
        rows.push({
          cut,
          layer: m.exits[m.exits.length - 1]!.layers[cut - 1],
          codec,
          payloadBytes: bytes,
          deflatedBytes: deflated / list.length,
          smallerBy: saved / bytes,
          deflatePlusInflateMs: (deflate.medianUs + inflate.medianUs) / 1000,
          transferSavedMsAt1Mbps: (saved * 8) / 1000
        })
      }
    }
    return rows
  } finally {
    await ex.stop()
  }
}

export async function runCodecsBench(): Promise<Record<string, unknown>> {
  const dims = [1, 64, 64, 64]
  const n = dims.reduce((a, b) => a * b, 1)
  const x = Float32Array.from({ length: n }, (_, i) => Math.max(0, Math.sin(i * 0.37) * 4 + Math.cos(i * 0.011)))
  const header: FrameHeader = { requestId: 'bench', planId: 'bench', model: 'bench', exit: 1, deviceLayers: 1, deviceMs: 0, sentAt: 0 }
  const mb = (4 * n) / 1e6
  const limits = { maxPayloadBytes: 8 * n }
  const f32Bytes = payloadBytes('f32', dims)
  // u8 carries raw pixels (the input of edge-only plans), not an activation: not measured here
  const rows = CODECS.filter((c) => c !== 'u8').map((codec) => {
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
    codecs: rows.map((r) => ({ ...r, costToF32: r.encodePlusDecodeMsPerMB / f32.encodePlusDecodeMsPerMB })),
    losslessOnTop: {
      what: `raw deflate (level 1) of the payload, branchy-resnet96 exit 5, first ${DEFLATE_SAMPLES} shipped samples (means per frame)`,
      rows: await losslessOnTop()
    }
  }
}
