/** A JSON column read through its schema: the document, or null when it is not JSON, nests too deep, or fails the schema. */
import type Database from 'better-sqlite3'
import type { z } from 'zod'
import { parseBoundedJson } from '../../shared/contracts/messages.js'
import { TagsSchema, type Annotations } from '../../shared/contracts/annotations.js'

export function storedDocument<T>(schema: z.ZodType<T>, json: string | null, source: string): T | null {
  if (!json) return null
  try {
    const r = schema.safeParse(parseBoundedJson(json, source))
    return r.success ? r.data : null
  } catch {
    return null
  }
}

/** A row's stored tags (`tags_json`): a value that is not a list of tags reads as none. */
export function storedTags(json: string | null | undefined): string[] {
  return storedDocument(TagsSchema, json ?? null, 'tags') ?? []
}

/** Replaces a run's or a campaign's tags and/or note (each whole); false when there is no such row. */
export function annotateRow(db: Database.Database, table: 'runs' | 'campaigns', id: string, a: Partial<Annotations>): boolean {
  const sets = [...(a.tags ? ['tags_json = @tags'] : []), ...(a.note !== undefined ? ['note = @note'] : [])]
  if (!sets.length) return !!db.prepare(`SELECT 1 FROM ${table} WHERE id = ?`).get(id)
  return db.prepare(`UPDATE ${table} SET ${sets.join(', ')} WHERE id = @id`).run({ id, tags: JSON.stringify(a.tags ?? []), note: a.note ?? '' }).changes > 0
}
