#!/usr/bin/env node
// `npm start`: the Electron console where Electron's binary is installed; otherwise one line saying
// so, then the parts of the console that run in plain Node.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const electronDir = join(root, 'node_modules', 'electron')
const pathFile = join(electronDir, 'path.txt')
const binary = existsSync(pathFile) ? join(electronDir, 'dist', readFileSync(pathFile, 'utf8').trim()) : null

if (binary && existsSync(binary)) {
  const child = spawn(binary, [root], { stdio: 'inherit' })
  child.on('exit', (code) => process.exit(code ?? 0))
} else {
  console.log('Electron binary not installed (it downloads from outside the npm registry); running the headless console instead.')
  const edgent = join(root, 'bin', 'edgent.js')
  const args = process.argv.slice(2)
  const child = spawn(process.execPath, [edgent, ...(args.length ? args : ['serve'])], { stdio: 'inherit' })
  child.on('exit', (code) => process.exit(code ?? 0))
}
