import { homedir } from 'node:os'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** Package names whose folder holds resources/: the console, and the packed agent (`npm run pack:agent`). */
const OUR_PACKAGES = ['edgent-console', 'edgent-agent']

/**
 * The folder of the edgent-console package (works from src/ under vitest and from out/ when built),
 * or of the packed agent package, whose layout (out/main, resources/models) is the same.
 */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from
  for (;;) {
    const pkg = join(dir, 'package.json')
    if (existsSync(pkg)) {
      try {
        if (OUR_PACKAGES.includes((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name ?? '')) return dir
      } catch {
        // not ours; keep walking up
      }
    }
    const up = dirname(dir)
    if (up === dir) throw new Error(`edgent-console (or edgent-agent) package.json not found above ${from}`)
    dir = up
  }
}

export const DEFAULT_MODEL_ID = 'branchy-alexnet'

export function defaultModelDir(): string {
  return join(packageRoot(), 'resources', 'models', DEFAULT_MODEL_ID)
}

/** Where an agent keeps the models it fetched: $XDG_CACHE_HOME/edgent-agent/models (~/.cache when unset). */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'edgent-agent', 'models')
}
