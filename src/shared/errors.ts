/**
 * An error a user can cause (a bad flag, file, payload, unknown model or device). Its message is one
 * line that names the thing and what was expected; callers show it as is (CLI: stderr, exit code 2).
 */
export class UserError extends Error {
  override readonly name = 'UserError'
}

/** A UserError about size: a file, an upload or a body past a cap. Shells say so in their own words (HTTP 413). */
export class TooLargeError extends UserError {}

/**
 * A UserError about the fields of a request (a library call, an API method): its message names them
 * as `{field}`, and each shell renders the names in its own vocabulary — the CLI as its flags
 * (`--image-dir`), the API and its pages as the fields (`imageDir`), which `message` holds.
 */
export class FieldError extends UserError {
  constructor(readonly template: string) {
    super(template.replace(/\{(\w+)\}/g, '$1'))
  }

  /** The message with each field named by `name`. */
  render(name: (field: string) => string): string {
    return this.template.replace(/\{(\w+)\}/g, (_, field: string) => name(field))
  }
}

/** A field as the CLI's flag: `imageDir` → `--image-dir`. */
export const flagOf = (field: string): string => `--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`

/** `exits[2].layers[3]` from a zod-style path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = ''
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`
    else out += out === '' ? String(key) : `.${String(key)}`
  }
  return out
}

interface IssueLike {
  readonly path: readonly PropertyKey[]
  readonly message: string
}

/** One line for the first problem, and how many more there are. */
export function describeIssues(source: string, issues: readonly IssueLike[]): string {
  const first = issues[0]
  if (!first) return `${source}: invalid`
  const where = formatPath(first.path)
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : ''
  return `${source}: ${where ? `${where}: ` : ''}${first.message}${more}`
}

/** The message of anything thrown: an Error's message, else its string form. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
