/**
 * `<data dir>/settings.json` (mode 0600): the Settings page's values, read by both shells at start.
 * Written whole (a private file renamed into place), so a crash never leaves half a file; a file
 * that is not valid settings stops the start with a message naming the field.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { UserError, errorMessage } from '../../shared/errors.js'
import { DEFAULT_SETTINGS, parseSettings, type Settings } from '../../shared/contracts/settings.js'

export const SETTINGS_FILE = 'settings.json'

export function settingsPath(dataDir: string): string {
  return join(dataDir, SETTINGS_FILE)
}

/** The stored settings, or the defaults when there is no file. */
export function readSettings(dataDir: string): Settings {
  const file = settingsPath(dataDir)
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    // No file, or no directory yet (or a path through a file, which the data directory check then reports).
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return DEFAULT_SETTINGS
    throw new UserError(`${file}: cannot read (${errorMessage(err)})`)
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw new UserError(`${file}: not JSON (${errorMessage(err)}): fix it, or delete it to start with the defaults`)
  }
  try {
    return parseSettings(raw, file)
  } catch (err) {
    throw new UserError(`${errorMessage(err)} — fix it on the Settings page or in the file, or delete it to start with the defaults`)
  }
}

export function writeSettings(dataDir: string, s: Settings): void {
  const file = settingsPath(dataDir)
  const tmp = `${file}.${randomBytes(6).toString('hex')}`
  try {
    writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 })
    renameSync(tmp, file)
  } finally {
    rmSync(tmp, { force: true })
  }
}
