/**
 * TLS for the embedded broker: a certificate authority made by this console at its first start, and a
 * server certificate it signs, kept in `<data dir>/tls/` (directory 0700, keys 0600). Agents pin the
 * CA (its PEM travels in the credentials file written at pairing, src/main/cli/serve.ts): the CA is
 * the broker's identity, so the agent checks the chain against it and nothing else (not the host name:
 * a Pi dials whatever address DHCP gave the console, and the private CA signs nothing but this broker).
 * Certificates are ECDSA P-256, made with @peculiar/x509 on Node's WebCrypto.
 */
// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata polyfill first.
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { createHash, webcrypto } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { hostname, networkInterfaces } from 'node:os'
import { join } from 'node:path'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

export interface BrokerTls {
  /** PEM of the console's CA (what agents pin). */
  ca: string
  /** PEM of the broker's certificate and its key. */
  cert: string
  key: string
  /** SHA-256 of the CA certificate (DER), hex: shown to the user to compare with what a Pi holds. */
  caSha256: string
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const
const YEAR_MS = 365 * 24 * 3600 * 1000

function pemKey(der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n')
  return `-----BEGIN PRIVATE KEY-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END PRIVATE KEY-----\n`
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString('hex')
    .replace(/^[89a-f]/, '1')
}

/** The names a Pi may dial the console by when this certificate is made (kept informative: agents pin the CA). */
function localNames(): x509.JsonGeneralName[] {
  const names: x509.JsonGeneralName[] = [
    { type: 'dns', value: 'localhost' },
    { type: 'dns', value: hostname() }
  ]
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.push({ type: 'ip', value: a.address.split('%')[0]! })
  return names
}

export function caFingerprint(caPem: string): string {
  return createHash('sha256')
    .update(Buffer.from(new x509.X509Certificate(caPem).rawData))
    .digest('hex')
}

async function makeAll(): Promise<BrokerTls> {
  const now = new Date()
  const caKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Edgent console CA (${hostname()})`,
    notBefore: new Date(now.getTime() - 3600_000),
    notAfter: new Date(now.getTime() + 20 * YEAR_MS),
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey)
    ]
  })
  const serverKeys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=Edgent console broker (${hostname()})`,
    issuer: ca.subject,
    notBefore: new Date(now.getTime() - 3600_000),
    notAfter: new Date(now.getTime() + 10 * YEAR_MS),
    signingKey: caKeys.privateKey,
    publicKey: serverKeys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(localNames()),
      await x509.AuthorityKeyIdentifierExtension.create(ca, false)
    ]
  })
  // The CA's private key is not kept: it signs the one server certificate and is dropped, so a stolen
  // data directory cannot mint certificates the agents would trust for anything else.
  const caPem = ca.toString('pem')
  return {
    ca: `${caPem}\n`,
    cert: `${cert.toString('pem')}\n`,
    key: pemKey(await webcrypto.subtle.exportKey('pkcs8', serverKeys.privateKey)),
    caSha256: caFingerprint(caPem)
  }
}

/** The broker's TLS material in `<dataDir>/tls`, made on first use. */
export async function ensureBrokerTls(dataDir: string): Promise<BrokerTls & { created: boolean }> {
  const dir = join(dataDir, 'tls')
  const files = { ca: join(dir, 'ca.pem'), cert: join(dir, 'server.pem'), key: join(dir, 'server.key') }
  if (existsSync(files.ca) && existsSync(files.cert) && existsSync(files.key)) {
    const ca = readFileSync(files.ca, 'utf8')
    return { ca, cert: readFileSync(files.cert, 'utf8'), key: readFileSync(files.key, 'utf8'), caSha256: caFingerprint(ca), created: false }
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  chmodSync(dir, 0o700)
  const t = await makeAll()
  // key first, CA last: a start interrupted half-way finds no ca.pem and makes everything again
  for (const [path, text, mode] of [
    [files.key, t.key, 0o600],
    [files.cert, t.cert, 0o644],
    [files.ca, t.ca, 0o644]
  ] as const) {
    writeFileSync(`${path}.tmp`, text, { mode })
    renameSync(`${path}.tmp`, path)
  }
  return { ...t, created: true }
}
