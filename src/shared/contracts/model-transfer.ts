/**
 * Model distribution over the agent's MQTT connection (DESIGN.md, "Model distribution"). The agent
 * pulls: it publishes a fetch request on `…/agents/{id}/fetch` and the console answers on
 * `…/agents/{id}/chunk` with a binary chunk. A fetch without `file` asks for the package (the list
 * of the model's files with their sizes and SHA-256); a fetch with `file` and `offset` asks for up to
 * MAX_CHUNK_BYTES of that file. Resuming after a dropped connection is asking again from the offset
 * the agent has on disk; every chunk carries its own SHA-256 and every file is checked whole.
 *
 * The chunk frame:
 *
 *   offset  size  field
 *   0       4     magic "EDGM"
 *   4       1     version (1)
 *   5       3     reserved (0)
 *   8       4     header length H, bytes (uint32 BE, ≤ 16 KiB)
 *   12      4     data length D, bytes (uint32 BE, ≤ MAX_CHUNK_BYTES)
 *   16      H     header: UTF-8 JSON (ChunkHeader)
 *   16+H    D     data: the file's bytes [offset, offset + D)
 */
import { z } from 'zod'
import { UserError, describeIssues } from '../errors.js'

/** Largest chunk of a model file in one message, bytes. */
export const MAX_CHUNK_BYTES = 1024 * 1024
export const CHUNK_MAGIC = 0x4544474d // "EDGM"
export const CHUNK_VERSION = 1
const MAX_HEADER_BYTES = 16 * 1024
const FIXED = 16

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex SHA-256')
/** A file of a model folder: a plain name, never a path. */
export const FILE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

export const PackageFileSchema = z.object({
  name: z.string().regex(FILE_NAME_RE, 'expected a plain file name'),
  bytes: z.number().int().nonnegative(),
  sha256: Sha256
})
export type PackageFile = z.infer<typeof PackageFileSchema>

/** What an agent must hold to run a model: its folder's files. `sha256` is the ONNX file's (plans name it). */
export const ModelPackageSchema = z.object({
  model: z.string().min(1).max(64),
  sha256: Sha256,
  files: z.array(PackageFileSchema).min(1).max(16)
})
export type ModelPackage = z.infer<typeof ModelPackageSchema>

/** The bytes of all of a package's files. */
export const packageBytes = (p: ModelPackage): number => p.files.reduce((a, f) => a + f.bytes, 0)

export const FetchSchema = z.object({
  schema: z.number().int().default(1),
  /** Chosen by the agent; the chunk answering it carries it back. */
  transfer: z.string().min(1).max(64),
  model: z.string().min(1).max(64),
  sha256: Sha256,
  /** Absent: the package. */
  file: z.string().regex(FILE_NAME_RE).optional(),
  offset: z.number().int().nonnegative().default(0),
  length: z.number().int().positive().max(MAX_CHUNK_BYTES).default(MAX_CHUNK_BYTES)
})
export type FetchRequest = z.infer<typeof FetchSchema>
export type FetchRequestIn = z.input<typeof FetchSchema>

export const ChunkHeaderSchema = z
  .object({
    transfer: z.string().min(1).max(64),
    model: z.string().min(1).max(64),
    sha256: Sha256,
    file: z.string().regex(FILE_NAME_RE).optional(),
    offset: z.number().int().nonnegative(),
    /** The whole file's size (absent for a package or an error). */
    totalBytes: z.number().int().nonnegative().optional(),
    /** This chunk's data. */
    chunkSha256: Sha256.optional(),
    package: ModelPackageSchema.optional(),
    /** The console refused the fetch (unknown model, not assigned, bad offset…). */
    error: z.string().max(2000).optional()
  })
  .loose()
export type ChunkHeader = z.infer<typeof ChunkHeaderSchema>

export interface Chunk {
  header: ChunkHeader
  data: Uint8Array
}

export function encodeChunk(header: ChunkHeader, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (data.length > MAX_CHUNK_BYTES) throw new Error(`chunk of ${data.length} bytes is over ${MAX_CHUNK_BYTES}`)
  const json = new TextEncoder().encode(JSON.stringify(header))
  if (json.length > MAX_HEADER_BYTES) throw new Error(`chunk header of ${json.length} bytes is over ${MAX_HEADER_BYTES}`)
  const out = new Uint8Array(FIXED + json.length + data.length)
  const v = new DataView(out.buffer)
  v.setUint32(0, CHUNK_MAGIC)
  v.setUint8(4, CHUNK_VERSION)
  v.setUint32(8, json.length)
  v.setUint32(12, data.length)
  out.set(json, FIXED)
  out.set(data, FIXED + json.length)
  return out
}

/** Decodes a chunk, checking every declared size against the bytes received first. */
export function decodeChunk(bytes: Uint8Array): Chunk {
  if (bytes.length < FIXED) throw new UserError(`model chunk: ${bytes.length} bytes, shorter than its ${FIXED}-byte prefix`)
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (v.getUint32(0) !== CHUNK_MAGIC) throw new UserError('model chunk: bad magic (expected "EDGM")')
  const version = v.getUint8(4)
  if (version !== CHUNK_VERSION) throw new UserError(`model chunk: version ${version} is not supported (expected ${CHUNK_VERSION})`)
  const h = v.getUint32(8)
  const d = v.getUint32(12)
  if (h > MAX_HEADER_BYTES) throw new UserError(`model chunk: header of ${h} bytes is over ${MAX_HEADER_BYTES}`)
  if (d > MAX_CHUNK_BYTES) throw new UserError(`model chunk: ${d} data bytes is over ${MAX_CHUNK_BYTES}`)
  if (FIXED + h + d !== bytes.length) throw new UserError(`model chunk: declares ${FIXED + h + d} bytes, got ${bytes.length}`)
  let json: unknown
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(FIXED, FIXED + h)))
  } catch (err) {
    throw new UserError(`model chunk: header is not UTF-8 JSON (${(err as Error).message})`)
  }
  const parsed = ChunkHeaderSchema.safeParse(json)
  if (!parsed.success) throw new UserError(describeIssues('model chunk header', parsed.error.issues))
  return { header: parsed.data, data: bytes.subarray(FIXED + h) }
}

/** The folder an agent caches a model in: its id and the first 12 hex digits of its ONNX file's SHA-256. */
export const cacheName = (model: string, sha256: string): string => `${model}-${sha256.slice(0, 12)}`
