/**
 * Native modules and the runtime that loads them. better-sqlite3 is compiled against one runtime's
 * ABI: `npm ci` builds it for Node (the CLI, the tests); the desktop console runs inside Electron,
 * whose ABI differs, so `npm run rebuild:electron` (@electron/rebuild) builds a second copy into
 * `.electron-native/`, which the Electron entry selects here. onnxruntime-node uses N-API and loads
 * under both.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'

let sqliteBinding: string | undefined

/** Makes every database opened from now on load better-sqlite3's addon from `file`. */
export function selectSqliteBinding(file: string | undefined): void {
  sqliteBinding = file
}

export function sqliteBindingFile(): string | undefined {
  return sqliteBinding
}

/** Where `npm run rebuild:electron` puts the Electron build of better-sqlite3's addon, under a root. */
export function electronSqliteBinding(root: string): string {
  return join(root, '.electron-native', 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')
}

/** The Electron build of the addon when it was made, in the package or (packaged app) its resources. */
export function findElectronSqliteBinding(roots: readonly string[]): string | null {
  for (const r of roots) {
    const f = electronSqliteBinding(r)
    if (existsSync(f)) return f
  }
  return null
}

/**
 * A plain statement of an addon built for another runtime, from the loader's error ("compiled against
 * a different Node.js version using NODE_MODULE_VERSION 115. This version of Node.js requires
 * NODE_MODULE_VERSION 139"), or null when the error is something else.
 */
export function abiMismatch(err: unknown, inElectron: boolean = !!process.versions['electron']): string | null {
  const m = /NODE_MODULE_VERSION (\d+)[\s\S]*NODE_MODULE_VERSION (\d+)/.exec(err instanceof Error ? err.message : String(err))
  if (!m) return null
  const fix = inElectron
    ? 'run `npm run rebuild:electron` in the edgent-console folder (needs the network once), then start the console again'
    : 'run `npm rebuild better-sqlite3` in the edgent-console folder'
  return `better-sqlite3's native addon was built for another runtime (ABI ${m[1]}; this ${inElectron ? 'Electron' : 'Node'} needs ${m[2]}): ${fix}`
}
