/** Tiny timing helpers: every figure is a median over rounds, and ratios are measured in one run. */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface Timing {
  name: string
  /** Median time of one operation over the rounds, microseconds. */
  medianUs: number
  rounds: number
  opsPerRound: number
}

/** Runs `fn` `ops` times per round for `rounds` rounds (after one warm-up round). */
export function time(name: string, fn: () => unknown, ops: number, rounds = 7): Timing {
  let sink: unknown
  for (let i = 0; i < ops; i++) sink = fn()
  const perOp: number[] = []
  for (let r = 0; r < rounds; r++) {
    const t0 = process.hrtime.bigint()
    for (let i = 0; i < ops; i++) sink = fn()
    perOp.push(Number(process.hrtime.bigint() - t0) / 1000 / ops)
  }
  if (sink === Symbol.for('never')) console.log(sink)
  perOp.sort((a, b) => a - b)
  return { name, medianUs: perOp[Math.floor(perOp.length / 2)]!, rounds, opsPerRound: ops }
}

export function writeResult(name: string, result: unknown): string {
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `${name}.json`)
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`)
  return file
}
