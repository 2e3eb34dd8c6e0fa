/** Pairing tokens: random, shown once, stored only as a salted scrypt hash. */
import { randomBytes, scryptSync, timingSafeEqual } from 'node:crypto'

const N = 16384
const KEYLEN = 32

export function newToken(): string {
  return randomBytes(24).toString('base64url')
}

export function hashToken(token: string): string {
  const salt = randomBytes(16)
  const hash = scryptSync(token, salt, KEYLEN, { N, r: 8, p: 1 })
  return `scrypt$${N}$${salt.toString('base64url')}$${hash.toString('base64url')}`
}

export function verifyToken(token: string, stored: string): boolean {
  const [scheme, n, salt, hash] = stored.split('$')
  if (scheme !== 'scrypt' || !n || !salt || !hash) return false
  const expected = Buffer.from(hash, 'base64url')
  const got = scryptSync(token, Buffer.from(salt, 'base64url'), expected.length, { N: Number(n), r: 8, p: 1 })
  return got.length === expected.length && timingSafeEqual(got, expected)
}
