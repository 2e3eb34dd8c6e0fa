#!/usr/bin/env node
// `npm run rebuild:electron`: builds better-sqlite3's native addon for the installed Electron's ABI
// with @electron/rebuild, into .electron-native/ — a second copy, so that the Node build in
// node_modules (the CLI, the tests) keeps working. The desktop console loads it from there, and the
// packaged app from its resources. Needs the network once (Electron's headers). `--if-electron`
// (the postinstall) does nothing, saying so, when Electron's binary is not installed.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(join(root, 'package.json'))
const optional = process.argv.includes('--if-electron')
const say = (line) => process.stdout.write(`rebuild:electron: ${line}\n`)

function electronInstalled() {
  const dir = join(root, 'node_modules', 'electron')
  const pathFile = join(dir, 'path.txt')
  if (!existsSync(pathFile)) return null
  const binary = join(dir, 'dist', readFileSync(pathFile, 'utf8').trim())
  return existsSync(binary) ? JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version : null
}

const electronVersion = process.env.EDGENT_ELECTRON_VERSION ?? electronInstalled()
if (!electronVersion) {
  const why = process.env.ELECTRON_SKIP_BINARY_DOWNLOAD
    ? 'ELECTRON_SKIP_BINARY_DOWNLOAD is set'
    : 'its download did not happen (no network, or the electron install script was not allowed)'
  say(`Electron's binary is not installed (${why}): the desktop console cannot run; the headless console (npm start, edgent serve) and the tests use Node.`)
  process.exit(optional ? 0 : 2)
}

const sqliteDir = dirname(require.resolve('better-sqlite3/package.json'))
const sqliteVersion = JSON.parse(readFileSync(join(sqliteDir, 'package.json'), 'utf8')).version
const stage = join(root, '.electron-native')
const target = join(stage, 'node_modules', 'better-sqlite3')
const stamp = join(stage, 'built-for.json')
const want = { electron: electronVersion, betterSqlite3: sqliteVersion }
if (
  existsSync(stamp) &&
  JSON.stringify(JSON.parse(readFileSync(stamp, 'utf8'))) === JSON.stringify(want) &&
  existsSync(join(target, 'build', 'Release', 'better_sqlite3.node'))
) {
  say(`better-sqlite3 ${sqliteVersion} is already built for Electron ${electronVersion} (.electron-native/)`)
  process.exit(0)
}
say(`building better-sqlite3 ${sqliteVersion} for Electron ${electronVersion} into .electron-native/ …`)
rmSync(stage, { recursive: true, force: true })
mkdirSync(dirname(target), { recursive: true })
cpSync(sqliteDir, target, { recursive: true, filter: (src) => !src.startsWith(join(sqliteDir, 'build')) })
writeFileSync(
  join(stage, 'package.json'),
  JSON.stringify({ name: 'edgent-electron-native', private: true, dependencies: { 'better-sqlite3': sqliteVersion } }, null, 2)
)
try {
  const { rebuild } = await import('@electron/rebuild')
  await rebuild({ buildPath: stage, electronVersion, onlyModules: ['better-sqlite3'], force: true, mode: 'sequential' })
} catch (err) {
  rmSync(stage, { recursive: true, force: true })
  say(`failed: ${err instanceof Error ? err.message : String(err)}`)
  say('the desktop console will say that its database module is built for another runtime until this succeeds (it needs the network once).')
  process.exit(optional ? 0 : 1)
}
writeFileSync(stamp, JSON.stringify(want))
say(`done: the desktop console loads .electron-native/node_modules/better-sqlite3/build/Release/better_sqlite3.node`)
