/**
 * An agent's credentials file, written by `edgent pair` (mode 0600) and read by `edgent-agent
 * --credentials FILE`: the agent id, the broker URL, the pairing token and, for mqtts://, the console's
 * CA to pin. The token travels in this file, not on a command line (where `ps` shows it to everyone).
 */
import { z } from 'zod'
import { UserError, describeIssues } from '../errors.js'
import { npxCommand } from '../npx.js'

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

/**
 * The credentials of a newly paired agent, as the text of its file: over TLS (pinning `ca`) when the
 * console has a TLS listener, else plain MQTT.
 */
export function credentialsFor(o: { id: string; token: string; host: string; port: number; tls?: { port: number; ca: string; caSha256: string } | null }): {
  broker: string
  text: string
} {
  const broker = o.tls ? `mqtts://${o.host}:${o.tls.port}` : `mqtt://${o.host}:${o.port}`
  const c: Credentials = { schema: 1, id: o.id, broker, token: o.token, ...(o.tls ? { ca: o.tls.ca, caSha256: o.tls.caSha256 } : {}) }
  return { broker, text: `${JSON.stringify(c, null, 2)}\n` }
}

/** What to run on the Pi with the file beside it. */
export const credentialsCommand = (file: string): string => npxCommand('edgent-agent', '--credentials', file)
