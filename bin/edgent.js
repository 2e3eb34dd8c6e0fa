#!/usr/bin/env node
// The `edgent` command: runs the built CLI (out/main/cli.js, produced by `npm run build`).
import { existsSync } from 'node:fs'

const cli = new URL('../out/main/cli.js', import.meta.url)
if (!existsSync(cli)) {
  process.stderr.write('edgent: the console is not built: run `npm run build` in the edgent-console folder first\n')
  process.exit(2)
}
const { main } = await import(cli.href)
const code = await main(process.argv.slice(2))
process.exitCode = code
// A command is done when main returns (serve never does): whatever a failed start left running (a worker
// thread, a socket) must not keep the process alive past its answer.
setTimeout(() => process.exit(code), 1000).unref()
