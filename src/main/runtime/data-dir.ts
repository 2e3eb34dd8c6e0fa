/**
 * The console's data directory — one for the desktop and the CLI, so that `edgent pair` writes the
 * token the running desktop console checks: `$EDGENT_DATA_DIR`, else `$XDG_DATA_HOME/edgent-console`,
 * else `~/.local/share/edgent-console`. `--data-dir` overrides both shells' default.
 */
import { existsSync, mkdirSync } from 'node:fs'
import { homedir } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'

export const DATA_DIR_ENV = 'EDGENT_DATA_DIR'

/** An XDG base directory variable: used when set to an absolute path (the spec says to ignore a relative one). */
function xdg(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const v = env[name]
  return v && isAbsolute(v) ? v : fallback
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  const explicit = env[DATA_DIR_ENV]
  if (explicit) return resolve(explicit)
  return join(xdg(env, 'XDG_DATA_HOME', join(home, '.local', 'share')), 'edgent-console')
}

/**
 * Where the desktop console kept its data before it shared the CLI's directory (Electron's
 * userData/data, ~/.config/edgent-console/data on Linux), when it exists: the shells say to move it.
 */
export function legacyDesktopDataDir(env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string | null {
  const dir = join(xdg(env, 'XDG_CONFIG_HOME', join(home, '.config')), 'edgent-console', 'data')
  return existsSync(join(dir, 'edgent.db')) ? dir : null
}

/**
 * `mkdir -p`, one level at a time: Node's recursive mkdir retries a level that fails with ENOENT by
 * creating its parent again, forever, where the parent exists but refuses children (/proc/x hung
 * `edgent serve --data-dir /proc/x` silently). A level that cannot be made throws its errno.
 */
export function makeDirs(dir: string, mode = 0o700): void {
  const missing: string[] = []
  for (let p = resolve(dir); !existsSync(p); p = dirname(p)) {
    missing.unshift(p)
    if (dirname(p) === p) break
  }
  for (const m of missing) {
    try {
      mkdirSync(m, { mode })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  }
}
