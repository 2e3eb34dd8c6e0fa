/**
 * What a researcher attaches to a campaign or a run (issue 35 item 10): tags to find and group them
 * by ("baseline", "wifi-5GHz", "fan-off") and a free note ("Pi on battery, room at 28 °C"). Both are
 * bounded and made safe to show (shared/text.ts; a note keeps its line breaks) before they are stored.
 */
import { z } from 'zod'
import { safeText } from '../text.js'

export const MAX_TAGS = 16
export const MAX_TAG_CHARS = 40
export const MAX_NOTE_CHARS = 2000

/** A tag: letters, digits and . _ : + - (no spaces: a tag is a word to filter by). */
export const TAG_PATTERN = /^[\p{L}\p{N}._:+-]+$/u

export const TagSchema = z
  .string()
  .min(1, 'a tag is not empty')
  .max(MAX_TAG_CHARS, `a tag has at most ${MAX_TAG_CHARS} characters`)
  .regex(TAG_PATTERN, 'a tag is letters, digits and . _ : + - (no spaces)')

/** Tags as given: duplicates dropped, order kept. */
export const TagsSchema = z
  .array(TagSchema)
  .max(MAX_TAGS, `at most ${MAX_TAGS} tags`)
  .transform((t) => [...new Set(t)])

export const NoteSchema = z
  .string()
  .max(MAX_NOTE_CHARS, `a note has at most ${MAX_NOTE_CHARS} characters`)
  .transform((s) =>
    s
      .trim()
      .split(/\r?\n/)
      .map((line) => safeText(line))
      .join('\n')
  )

export interface Annotations {
  tags: string[]
  note: string
}
