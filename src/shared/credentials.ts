/**
 * An agent's credentials file, written by `edgent pair` (mode 0600) and read by `edgent-agent
 * --credentials FILE`: the agent id, the broker URL, the pairing token and, for mqtts://, the console's
 * CA to pin. The token travels in this file, not on a command line (where `ps` shows it to everyone).
 */
import { readFileSync, statSync } from 'node:fs'
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
const MAX_BYTES = 64 * 1024

export function readCredentials(path: string): Credentials & { worldReadable: boolean } {
  let st: ReturnType<typeof statSync>
  try {
    st = statSync(path)
  } catch {
    throw new UserError(`credentials file ${path} not found: copy the file \`edgent pair\` wrote on the console`)
  }
  if (!st.isFile() || st.size > MAX_BYTES) throw new UserError(`credentials file ${path} is not a credentials file (a regular file under 64 KiB)`)
  let json: unknown
  try {
    json = JSON.parse(readFileSync(path, 'utf8'))
  } catch {
    throw new UserError(`credentials file ${path} is not JSON`)
  }
  const r = CredentialsSchema.safeParse(json)
  if (!r.success) throw new UserError(describeIssues(`credentials file ${path}`, r.error.issues))
  return { ...r.data, worldReadable: (st.mode & 0o077) !== 0 }
}
