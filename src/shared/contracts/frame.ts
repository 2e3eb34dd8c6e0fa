/**
 * The binary activation frame (agent → console): a versioned, length-prefixed header and one tensor.
 *
 *   offset  size  field
 *   0       4     magic "EDGA"
 *   4       1     version (1: float32 only; 2: any codec)
 *   5       1     codec (codecs.ts: 1 = f32, 2 = f16, 3 = int8, 4 = int8c; version 1 knows only 1)
 *   6       1     ndim (1..8)
 *   7       1     reserved (0)
 *   8       4     header length H, bytes (uint32 BE, ≤ 16 KiB)
 *   12      4     payload length P, bytes (uint32 BE)
 *   16      4·ndim dims (uint32 BE each)
 *   …       H     header: UTF-8 JSON (request id, plan id, device timings, …)
 *   …       P     payload: the tensor under its codec (parameters first for int8)
 *
 * An f32 frame is written as version 1, byte for byte what consoles before codecs read; the others as
 * version 2.
 * Decoding checks every declared size against the bytes actually received, and against the caller's
 * limits, before it allocates anything: the tensor is returned as a view (copied only when the
 * payload is not 4-byte aligned).
 */
import { z } from 'zod'
import { UserError, describeIssues } from '../errors.js'
import { CODECS, CODEC_BY_CODE, CODEC_CODES, decodePayload, encodeInto, isCodec, payloadBytes, type Codec } from '../algorithms/codecs.js'

export const FRAME_MAGIC = 0x45444741 // "EDGA"
/** The newest frame version (2: codecs); version 1 (float32) is still read and written for f32. */
export const FRAME_VERSION = 2
export const MAX_NDIM = 8
export const MAX_HEADER_BYTES = 16 * 1024
const FIXED = 16

/**
 * What a frame and its MQTT PUBLISH add to the tensor at most: the fixed part, 8 dims, the largest
 * header, and the PUBLISH's own header and topic (a generous 1 KiB). A tensor larger than a broker's
 * packet limit minus this cannot be sent.
 */
export const FRAME_OVERHEAD_MAX = FIXED + 4 * MAX_NDIM + MAX_HEADER_BYTES + 1024

/** The largest uplink sample an agent may report, kbit/s (100 Gbit/s; 1e300 is refused, not averaged in). */
export const MAX_UPLINK_KBPS = 1e8

export const FrameHeaderSchema = z
  .object({
    requestId: z.string().min(1).max(64),
    planId: z.string().min(1).max(64),
    model: z.string().max(64),
    exit: z.number().int().positive(),
    deviceLayers: z.number().int().nonnegative(),
    /** Index of the sample in the agent's input source, and its label when known. */
    sample: z.number().int().nonnegative().optional(),
    label: z.number().int().nonnegative().optional(),
    /** Device compute of the prefix, ms (fused segment). */
    deviceMs: z.number().nonnegative(),
    /** Per-layer device timings, when the agent profiled them, ms. */
    layerMs: z.array(z.number().nonnegative()).max(1024).optional(),
    /** Agent clock, ms since epoch, when the frame was handed to MQTT. */
    sentAt: z.number(),
    /** One uplink sample from the agent's previous acknowledged activation transfer, kbps (the console smooths). */
    uplinkSampleKbps: z.number().positive().max(MAX_UPLINK_KBPS).optional(),
    /**
     * Confidence exits (issue 31): the frame left on the device at this exit — the tensor is that
     * exit's scores, a report (nothing for the edge to run). Checked against the plan's policy.
     */
    left: z.object({ exit: z.number().int().positive(), confidence: z.number() }).optional(),
    /** An audited frame (label-free audits): runs to the final exit; `heads` are what the device's exits said on the way. */
    audit: z.boolean().optional(),
    heads: z
      .array(z.object({ exit: z.number().int().positive(), label: z.number().int().nonnegative(), confidence: z.number(), leaves: z.boolean() }))
      .max(64)
      .optional()
  })
  .loose()
export type FrameHeader = z.infer<typeof FrameHeaderSchema>

export interface Frame {
  header: FrameHeader
  /** How the tensor crossed the link; `data` is float32 whatever it was. */
  codec: Codec
  /** u8: the raw image as sent (a view), for the edge to preprocess; `data` then holds its values. */
  pixels?: Uint8Array
  dtype: 'float32'
  dims: number[]
  data: Float32Array
}

export function encodeFrame(header: FrameHeader, dims: readonly number[], data: Float32Array, codec: Codec = 'f32'): Uint8Array {
  return encodeTensorMessage(header, dims, data, codec)
}

/** The frame's binary layout around any JSON header (an edge worker's jobs and answers, worker-api.ts). */
export function encodeTensorMessage(header: object, dims: readonly number[], data: Float32Array, codec: Codec = 'f32'): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header))
  if (json.length > MAX_HEADER_BYTES) throw new UserError(`frame header is ${json.length} bytes, over the ${MAX_HEADER_BYTES}-byte limit`)
  if (dims.length < 1 || dims.length > MAX_NDIM) throw new UserError(`frame tensor must have 1..${MAX_NDIM} dims, got ${dims.length}`)
  const elements = dims.reduce((a, b) => a * b, 1)
  if (elements !== data.length) throw new UserError(`frame dims [${dims.join(', ')}] hold ${elements} values, the tensor has ${data.length}`)
  if (!isCodec(codec)) throw new UserError(`frame: unknown codec "${String(codec)}" (known: ${CODECS.join(', ')})`)
  const dimsBytes = 4 * dims.length
  const payload = payloadBytes(codec, dims)
  const out = new Uint8Array(FIXED + dimsBytes + json.length + payload)
  const v = new DataView(out.buffer)
  v.setUint32(0, FRAME_MAGIC)
  v.setUint8(4, codec === 'f32' ? 1 : FRAME_VERSION)
  v.setUint8(5, CODEC_CODES[codec])
  v.setUint8(6, dims.length)
  v.setUint8(7, 0)
  v.setUint32(8, json.length)
  v.setUint32(12, payload)
  for (const [i, d] of dims.entries()) v.setUint32(FIXED + 4 * i, d)
  out.set(json, FIXED + dimsBytes)
  // little-endian, whatever the host's byte order
  encodeInto(codec, dims, data, out, FIXED + dimsBytes + json.length)
  return out
}

export interface DecodeLimits {
  /** Largest tensor payload accepted, bytes. */
  maxPayloadBytes: number
}

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** A frame read up to its payload: fixed header, dims and JSON header checked, the payload not yet decoded. */
export interface FrameHead {
  header: FrameHeader
  codec: Codec
  dims: number[]
  /** The payload's bytes as they arrived (a view, not a copy). */
  payload: Uint8Array
}

/** Decodes and validates a frame; every problem is a UserError naming the field. */
export function decodeFrame(bytes: Uint8Array, limits: DecodeLimits): Frame {
  return decodeFrameData(readFrameHead(bytes, limits))
}

/** The tensor of a frame whose head was read: decoded only once the receiver knows it wants it. */
export function decodeFrameData(f: FrameHead): Frame {
  const data = decodePayload(f.codec, f.dims, f.payload, littleEndianHost)
  return { header: f.header, codec: f.codec, dtype: 'float32', dims: f.dims, data, ...(f.codec === 'u8' ? { pixels: f.payload } : {}) }
}

/**
 * Reads and checks everything of a frame but its payload (cheap: no tensor is decoded), so that a
 * receiver can refuse a frame that does not match its plan before paying for the payload.
 */
export function readFrameHead(bytes: Uint8Array, limits: DecodeLimits): FrameHead {
  return readTensorHead(bytes, limits, FrameHeaderSchema, 'frame header')
}

/** readFrameHead for a frame whose JSON header follows another schema (`what` names it in errors). */
export function readTensorHead<S extends z.ZodType>(
  bytes: Uint8Array,
  limits: DecodeLimits,
  schema: S,
  what: string
): Omit<FrameHead, 'header'> & { header: z.infer<S> } {
  if (bytes.length < FIXED) throw new UserError(`frame: ${bytes.length} bytes, shorter than the ${FIXED}-byte fixed header`)
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (v.getUint32(0) !== FRAME_MAGIC) throw new UserError('frame: bad magic (expected "EDGA")')
  const version = v.getUint8(4)
  if (version !== 1 && version !== FRAME_VERSION) throw new UserError(`frame: version ${version} is not supported (expected 1 or ${FRAME_VERSION})`)
  const code = v.getUint8(5)
  const codec = version === 1 ? (code === 1 ? 'f32' : undefined) : CODEC_BY_CODE[code]
  if (!codec)
    throw new UserError(
      version === 1
        ? `frame: dtype code ${code} is not supported by version 1 (expected 1, float32)`
        : `frame: codec ${code} is not supported (known: ${CODECS.map((c) => `${CODEC_CODES[c]} ${c}`).join(', ')})`
    )
  const ndim = v.getUint8(6)
  if (ndim < 1 || ndim > MAX_NDIM) throw new UserError(`frame: ndim ${ndim} is out of range 1..${MAX_NDIM}`)
  const headerLen = v.getUint32(8)
  const payloadLen = v.getUint32(12)
  if (headerLen > MAX_HEADER_BYTES) throw new UserError(`frame: header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes`)
  if (payloadLen > limits.maxPayloadBytes) throw new UserError(`frame: declared payload ${payloadLen} bytes exceeds the ${limits.maxPayloadBytes}-byte limit`)
  const expected = FIXED + 4 * ndim + headerLen + payloadLen
  if (bytes.length !== expected) throw new UserError(`frame: declares ${expected} bytes in all but ${bytes.length} arrived`)
  const dims: number[] = []
  for (let i = 0; i < ndim; i++) {
    const d = v.getUint32(FIXED + 4 * i)
    if (d === 0) throw new UserError(`frame: dim ${i} is 0`)
    dims.push(d)
  }
  const need = payloadBytes(codec, dims)
  if (need !== payloadLen)
    throw new UserError(
      `frame: dims [${dims.join(', ')}] need ${need} payload bytes${codec === 'f32' ? '' : ` under ${codec}`}, the frame declares ${payloadLen}`
    )
  const headerStart = FIXED + 4 * ndim
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(headerStart, headerStart + headerLen)))
  } catch {
    throw new UserError('frame: header is not UTF-8 JSON')
  }
  const parsed = schema.safeParse(json)
  if (!parsed.success) throw new UserError(describeIssues(what, parsed.error.issues))
  const body = headerStart + headerLen
  return { header: parsed.data, codec, dims, payload: bytes.subarray(body, body + payloadLen) }
}
