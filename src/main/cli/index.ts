/**
 * `edgent`: the console's command line (plain Node, no Electron). Every command is a plain function;
 * this file only parses flags. Errors a user can cause print one line on stderr and exit with 2.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { UserError } from '../../shared/errors.js'
import { PLANNER_MODES, type PlannerMode } from '../../shared/planner.js'
import { defaultModelDir } from '../paths.js'
import { runPlan, type PlanOptions } from './plan.js'

export interface Io {
  out(text: string): void
  err(text: string): void
}

const processIo: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`)
}

function positive(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number.')
  return n
}

function buildProgram(io: Io): Command {
  const program = new Command('edgent')
    .description('Edgent Console: device–edge DNN co-inference (partitioning + right-sizing)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: (s, write) => write(`edgent: ${s.replace(/^error: /, '').trim()}\n`)
    })
    .showSuggestionAfterError(true)

  program
    .command('plan')
    .description('choose the exit and partition for a latency requirement at a bandwidth, or print the configuration map')
    .addOption(new Option('--model <path>', 'manifest.json or model folder').default(defaultModelDir(), 'the shipped branchy-alexnet'))
    .requiredOption('--profile <name|file>', 'calibration profile: a .json file, or the built-in paper-2018')
    .option('--bandwidth-kbps <kbps>', 'uplink bandwidth, kbit/s', positive)
    .option('--downlink-kbps <kbps>', 'downlink bandwidth, kbit/s (default: same as uplink)', positive)
    .option('--latency-ms <ms>', 'latency requirement, milliseconds', positive)
    .addOption(new Option('--mode <mode>', 'edgent (accuracy-ranked, best effort) or paper (Algorithm 1)').choices(PLANNER_MODES).default('edgent'))
    .option('--all', 'also list every (exit, deviceLayers) candidate')
    .option('--map', 'print the configuration map over a bandwidth range instead of one plan')
    .option('--from-kbps <kbps>', 'map: lowest uplink bandwidth', positive)
    .option('--to-kbps <kbps>', 'map: highest uplink bandwidth', positive)
    .option('--json', 'machine-readable output')
    .action((o: PlanOptions & { mode: PlannerMode }) => {
      io.out(runPlan(o))
    })
  return program
}

/** Runs the CLI on argv (without `node script`); resolves to the exit code. */
export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const program = buildProgram(io)
  try {
    if (argv.length === 0) {
      program.outputHelp()
      return 2
    }
    await program.parseAsync([...argv], { from: 'user' })
    return 0
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0
      return 2 // commander has already printed its one line through outputError
    }
    if (err instanceof UserError) {
      io.err(`edgent: ${err.message}`)
      return 2
    }
    io.err(`edgent: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    return 1
  }
}
