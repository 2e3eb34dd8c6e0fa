import { createRequire } from 'node:module'

/** The installed onnxruntime-node version (read from its package.json, without loading the binary). */
export const ORT_PACKAGE_VERSION: string = (() => {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version
  } catch {
    return 'unknown'
  }
})()
