/**
 * An agent's credentials file, written by `edgent pair` (mode 0600) and read by `edgent-agent
 * --credentials FILE`: the agent id, the broker URL, the pairing token and, for mqtts://, the console's
 * CA to pin. The token travels in this file, not on a command line (where `ps` shows it to everyone).
 */
import { z } from 'zod'
import { UserError, describeIssues } from './errors.js'

export const CredentialsSchema = z.object({
  schema: z.literal(1),
  id: z.string(),
  broker: z.string().regex(/^mqtts?:\/\//, 'an mqtt:// or mqtts:// URL'),
  token: z.string().min(16),
  /** PEM of the console's CA, pinned for mqtts:// */
  ca: z.string().includes('BEGIN CERTIFICATE').optional(),
  caSha256: z.string().optional()
})
export type Credentials = z.infer<typeof CredentialsSchema>

/** Largest credentials file read (a CA certificate and a token fit many times over). */
export const MAX_CREDENTIALS_BYTES = 64 * 1024

/** The credentials in a file's text; a UserError names the file and what is wrong. */
export function parseCredentials(text: string, path: string): Credentials {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new UserError(`credentials file ${path} is not JSON`)
  }
  const r = CredentialsSchema.safeParse(json)
  if (!r.success) throw new UserError(describeIssues(`credentials file ${path}`, r.error.issues))
  return r.data
}
