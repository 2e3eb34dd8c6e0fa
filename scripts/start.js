#!/usr/bin/env node
// `npm start`: the Electron console where Electron's binary is installed (building better-sqlite3 for
// Electron first if that was not done); otherwise one line saying so, then the headless console,
// which runs in plain Node with the same data directory.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Runs the console as a child; a signal to this launcher (systemd, a supervisor, kill) goes to it too, and its exit code is ours. */
function run(cmd, args) {
  const child = spawn(cmd, args, { stdio: 'inherit' })
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig))
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1) : 0)))
}
const electronDir = join(root, 'node_modules', 'electron')
const pathFile = join(electronDir, 'path.txt')
const binary = existsSync(pathFile) ? join(electronDir, 'dist', readFileSync(pathFile, 'utf8').trim()) : null

if (binary && existsSync(binary)) {
  const addon = join(root, '.electron-native', 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')
  // Without it the window says what to run; with the network this makes it.
  if (!existsSync(addon)) spawnSync(process.execPath, [join(root, 'scripts', 'rebuild-electron.mjs')], { stdio: 'inherit' })
  run(binary, [root, ...process.argv.slice(2)])
} else {
  console.log('Electron binary not installed (it downloads from outside the npm registry); running the headless console instead.')
  const edgent = join(root, 'bin', 'edgent.js')
  // `npm start -- --flag …` gives serve its flags; `npm start -- <command> …` runs another command.
  const args = process.argv.slice(2)
  run(process.execPath, [edgent, ...(args.length && !args[0].startsWith('-') ? args : ['serve', ...args])])
}
