import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { packageRoot } from './paths.js'

/** The installed onnxruntime-node version (read from its package.json, without loading the binary). */
export const ORT_PACKAGE_VERSION: string = (() => {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version
  } catch {
    return 'unknown'
  }
})()

/** This package's version (edgent-console, or edgent-agent when packed for a Pi). */
export function appVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

/** What `--version` prints: this package, Node and the runtime. */
export const versionLine = (name: string): string => `${name} ${appVersion()} (Node ${process.version}, onnxruntime-node ${ORT_PACKAGE_VERSION})`
