#!/usr/bin/env node
// The `edgent-agent` command: runs the built agent (out/main/agent.js, produced by `npm run build`).
import { existsSync } from 'node:fs'

const entry = new URL('../../out/main/agent.js', import.meta.url)
if (!existsSync(entry)) {
  process.stderr.write('edgent-agent: the agent is not built: run `npm run build` in the edgent-console folder first\n')
  process.exit(2)
}
const { main } = await import(entry.href)
process.exitCode = await main(process.argv.slice(2))
