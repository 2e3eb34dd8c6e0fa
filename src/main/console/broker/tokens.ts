/**
 * Pairing tokens: 192 random bits, shown once, stored only as a salted keyed hash
 * (`hmac-sha256$salt$hash`). A token is not a password: it cannot be guessed, so a slow hash buys
 * nothing and costs the console a thread per try (scrypt took ~70 ms of the main thread per CONNECT,
 * which a wrong-token flood turned into a denial of service). Verification costs microseconds and
 * the same for known and unknown ids (`verifyToken` against DUMMY_HASH for an unknown one).
 * Databases from before keep `scrypt$…` hashes: those are checked with the asynchronous scrypt
 * (libuv's thread pool, off the main thread) and rehashed on the first successful login.
 */
import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'

const scryptAsync = promisify(scrypt) as (pw: string, salt: Buffer, len: number, o: { N: number; r: number; p: number }) => Promise<Buffer>
const SCHEME = 'hmac-sha256'

export function newToken(): string {
  return randomBytes(24).toString('base64url')
}

function hmac(token: string, salt: Buffer): Buffer {
  return createHmac('sha256', salt).update(token, 'utf8').digest()
}

export function hashToken(token: string): string {
  const salt = randomBytes(16)
  return `${SCHEME}$${salt.toString('base64url')}$${hmac(token, salt).toString('base64url')}`
}

/** What an unknown or revoked id is checked against, so that it takes as long as a known one. */
export const DUMMY_HASH = hashToken(newToken())

export interface Verdict {
  ok: boolean
  /** A new hash to store, when `stored` used an older scheme. */
  rehash?: string
}

/**
 * The broker's login check of a paired id (an agent or an edge worker): its row's hash when paired
 * and not revoked, else DUMMY_HASH — unknown and revoked ids cost the same work, the same time. A hash
 * of an older scheme is replaced through `rehash` once the token matched it.
 */
export async function checkPairedToken(
  row: { token_hash: string; revoked_at: string | null } | undefined,
  token: string,
  rehash?: (oldHash: string, newHash: string) => void
): Promise<boolean> {
  const stored = row && !row.revoked_at && row.token_hash ? row.token_hash : DUMMY_HASH
  const verdict = await verifyToken(token, stored)
  if (stored === DUMMY_HASH || !verdict.ok) return false
  if (verdict.rehash) rehash?.(stored, verdict.rehash)
  return true
}

export async function verifyToken(token: string, stored: string): Promise<Verdict> {
  const parts = stored.split('$')
  if (parts[0] === SCHEME && parts.length === 3) {
    const expected = Buffer.from(parts[2]!, 'base64url')
    const got = hmac(token, Buffer.from(parts[1]!, 'base64url'))
    return { ok: got.length === expected.length && timingSafeEqual(got, expected) }
  }
  if (parts[0] === 'scrypt' && parts.length === 4) {
    const [, n, salt, hash] = parts as [string, string, string, string]
    const expected = Buffer.from(hash, 'base64url')
    const N = Number(n)
    if (!Number.isInteger(N) || N < 2 || N > 1 << 20 || expected.length === 0) return { ok: false }
    const got = await scryptAsync(token, Buffer.from(salt, 'base64url'), expected.length, { N, r: 8, p: 1 })
    const ok = got.length === expected.length && timingSafeEqual(got, expected)
    return ok ? { ok, rehash: hashToken(token) } : { ok }
  }
  return { ok: false }
}
