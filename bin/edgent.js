#!/usr/bin/env node
// The `edgent` command: runs the built CLI (out/main/cli.js, produced by `npm run build`).
import { existsSync } from 'node:fs'

const cli = new URL('../out/main/cli.js', import.meta.url)
if (!existsSync(cli)) {
  process.stderr.write('edgent: the console is not built: run `npm run build` in the edgent-console folder first\n')
  process.exit(2)
}
const { main } = await import(cli.href)
process.exitCode = await main(process.argv.slice(2))
