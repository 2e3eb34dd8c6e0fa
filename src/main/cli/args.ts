/** What every command group of the CLI shares: its output, the flag parsers, and the common options. */
import { InvalidArgumentError, Option } from 'commander'
import { errorMessage } from '../../shared/errors.js'
import { parsePreprocessSpec } from '../../shared/algorithms/preprocess.js'
import { defaultModelDir } from '../runtime/paths.js'
import type { Progress } from './model.js'
import { defaultDataDir } from './serve.js'
import { PERCENTILE_RANGE } from '../../shared/algorithms/tail.js'
import { CODECS, isCodec, type Codec } from '../../shared/algorithms/codecs.js'

export interface Io {
  out(text: string): void
  err(text: string): void
  /** Progress of long work; shown only where stderr is a terminal. */
  progress?: Progress
}

export function positiveList(value: string): number[] {
  const items = value.split(',').map((v) => v.trim())
  const nums = items.map(Number)
  if (items.some((v) => v === '') || nums.some((n) => !Number.isFinite(n) || n <= 0))
    throw new InvalidArgumentError('expected comma-separated positive numbers, e.g. 50,100,500.')
  return nums
}

export type PinnedPlan = { exit: number; deviceLayers: number; codec?: Codec }

/** "5/8" or "5/8/int8" → a pinned plan. */
export function pinArg(value: string): PinnedPlan {
  const m = /^(\d+)\/(\d+)(?:\/([a-z0-9]+))?$/.exec(value.trim())
  if (!m || Number(m[1]) < 1) throw new InvalidArgumentError('expected exit/deviceLayers[/codec], e.g. 5/8 or 5/8/int8.')
  if (m[3] !== undefined && !isCodec(m[3])) throw new InvalidArgumentError(`unknown codec "${m[3]}" (known: ${CODECS.join(', ')}).`)
  return { exit: Number(m[1]), deviceLayers: Number(m[2]), ...(m[3] ? { codec: m[3] as Codec } : {}) }
}

export function nonNegativeInt(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number ≥ 0.')
  return n
}

export function positiveInt(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer.')
  return n
}

/** A TCP port, 1–65535 (commander names the flag in its refusal). */
export function portNumber(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('expected a port from 1 to 65535.')
  return n
}

/** "50,100,250" → [50, 100, 250]: positive numbers only. */
export function numberList(flag: string): (value: string) => number[] {
  return (value: string) => {
    const list = value.split(',').map((v) => v.trim())
    const nums = list.map(Number)
    if (!list.length || nums.some((n, i) => !list[i] || !Number.isFinite(n) || n <= 0))
      throw new InvalidArgumentError(`${flag} takes positive numbers separated by commas, e.g. 50,100,250`)
    return nums
  }
}

/** One positive number (a rate, a duration). */
export function positiveNumber(flag: string): (value: string) => number {
  return (value: string) => {
    const n = Number(value.trim())
    if (!value.trim() || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} takes a positive number, e.g. 100000`)
    return n
  }
}

/** "1x3x224x224" → [1, 3, 224, 224] */
/** A list of codecs, or `all`. */
export function codecsArg(value: string): Codec[] {
  const v = value.trim()
  if (v === 'all') return [...CODECS]
  const list = v.split(',').map((x) => x.trim())
  for (const c of list) if (!isCodec(c)) throw new InvalidArgumentError(`unknown codec "${c}" (known: ${CODECS.join(', ')}, or all).`)
  return [...new Set(['f32' as Codec, ...(list as Codec[])])]
}

export function shapeArg(value: string): number[] {
  const dims = value.split(/[x×,]/).map((v) => Number(v.trim()))
  if (dims.length < 2 || dims.some((d) => !Number.isInteger(d) || d <= 0))
    throw new InvalidArgumentError('expected positive integers separated by x, e.g. 1x3x224x224.')
  return dims
}

/** "scale=0.00392,mean=0.485/0.456/0.406,std=0.229/0.224/0.225" */
export function preprocessArg(value: string): { scale?: number; mean?: number[]; std?: number[] } {
  try {
    return parsePreprocessSpec(value)
  } catch (err) {
    throw new InvalidArgumentError(errorMessage(err))
  }
}

/** "0.81,0.89" → accuracies in [0, 1] */
export function fractionList(value: string): number[] {
  const nums = value.split(',').map((v) => Number(v.trim()))
  if (nums.some((n) => !Number.isFinite(n) || n < 0 || n > 1))
    throw new InvalidArgumentError('expected accuracies in [0, 1] separated by commas, e.g. 0.81,0.90.')
  return nums
}

/** A percentile of inferences a requirement holds for: 50–99.9. */
export function percentileArg(value: string): number {
  const n = Number(value.trim())
  if (!value.trim() || !Number.isFinite(n) || n < PERCENTILE_RANGE[0] || n > PERCENTILE_RANGE[1])
    throw new InvalidArgumentError(`expected a percentile from ${PERCENTILE_RANGE[0]} to ${PERCENTILE_RANGE[1]}, e.g. 95.`)
  return n
}

export function positive(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number.')
  return n
}

export function nonNegative(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number ≥ 0.')
  return n
}

/** `--model`: a library model id, a model folder or a manifest.json (default: the shipped model). */
export const modelOption = (): Option =>
  new Option('--model <id|dir>', 'a library model id, a model folder or a manifest.json').default(defaultModelDir(), 'the shipped branchy-alexnet')

/** `--data-dir`: the console's data directory (database, console.json). */
export const dataDirOption = (): Option => new Option('--data-dir <dir>', 'console data directory (database, console.json)').default(defaultDataDir())

/** Lists of requirements are `--latencies-ms` everywhere (as `--bandwidths-kbps`); the old spelling still parses, unlisted. */
export function latencyListAlias(): Option {
  return new Option('--latency-ms <list>', 'same as --latencies-ms').argParser(numberList('--latency-ms')).hideHelp()
}

/** Thrown by a command to end with a given exit code after printing its own output. */
export class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`)
  }
}
