import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The folder of the edgent-console package (works from src/ under vitest and from out/ when built). */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from
  for (;;) {
    const pkg = join(dir, 'package.json')
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'edgent-console') return dir
      } catch {
        // not ours; keep walking up
      }
    }
    const up = dirname(dir)
    if (up === dir) throw new Error(`edgent-console package.json not found above ${from}`)
    dir = up
  }
}

export const DEFAULT_MODEL_ID = 'branchy-alexnet'

export function defaultModelDir(): string {
  return join(packageRoot(), 'resources', 'models', DEFAULT_MODEL_ID)
}
