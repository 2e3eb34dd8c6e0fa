/**
 * `npm run bench -- [name…]`: runs benchmarks and writes bench/results/<name>.json.
 * Every figure is a ratio against a baseline measured in the same run (the machines are shared).
 */
import { runPlannerBench } from './planner.js'
import { runExecutorBench } from './executor.js'
import { runRelayBench } from './relay.js'
import { runCodecsBench } from './codecs.js'
import { writeResult } from './lib.js'

const BENCHES: Record<string, () => Record<string, unknown> | Promise<Record<string, unknown>>> = {
  planner: runPlannerBench,
  executor: runExecutorBench,
  relay: runRelayBench,
  codecs: runCodecsBench
}

const names = process.argv.slice(2).filter((a) => !a.startsWith('-'))
const unknown = names.filter((n) => !BENCHES[n])
if (unknown.length) {
  console.error(`bench: unknown benchmark ${unknown.join(', ')} (available: ${Object.keys(BENCHES).join(', ')})`)
  process.exit(2)
}
for (const name of names.length ? names : Object.keys(BENCHES)) {
  const result = await BENCHES[name]!()
  const file = writeResult(name, { bench: name, node: process.version, at: new Date().toISOString(), ...result })
  console.log(`${name}:`, JSON.stringify(result, null, 2))
  console.log(`wrote ${file}`)
}
process.exit(0) // benchmarks leave no work behind; do not wait for lingering handles
