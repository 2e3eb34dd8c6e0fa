/** A JSON column read through its schema: the document, or null when it is not JSON, nests too deep, or fails the schema. */
import type { z } from 'zod'
import { parseBoundedJson } from '../../shared/contracts/messages.js'

export function storedDocument<T>(schema: z.ZodType<T>, json: string | null, source: string): T | null {
  if (!json) return null
  try {
    const r = schema.safeParse(parseBoundedJson(json, source))
    return r.success ? r.data : null
  } catch {
    return null
  }
}
