/**
 * `edgent`: the console's command line (plain Node, no Electron), one module per command group
 * (commands/): each only parses flags and prints; the work is in plain functions. Errors a user can
 * cause print one line on stderr and exit with 2.
 */
import { Command, CommanderError } from 'commander'
import { FieldError, UserError, flagOf } from '../../shared/errors.js'
import { versionLine } from '../runtime/version.js'
import { ExitCode, type Io } from './args.js'
import { registerCampaigns } from './commands/campaign.js'
import { registerDevices } from './commands/devices.js'
import { registerModel } from './commands/model.js'
import { registerPlan } from './commands/plan.js'
import { registerTestbed } from './commands/testbed.js'
import { registerRuns } from './commands/runs.js'
import { registerWorker } from './commands/worker.js'

export type { Io } from './args.js'

const processIo: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
  progress: process.stderr.isTTY
    ? (done, total, label) => {
        const width = 30
        const filled = Math.round((done / total) * width)
        process.stderr.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${label}\x1b[K${done === total ? '\n' : ''}`)
      }
    : undefined
}

function buildProgram(io: Io): Command {
  const program = new Command('edgent')
    .description('Edgent Console: device–edge DNN co-inference (partitioning + right-sizing)')
    .version(versionLine('edgent'), '-V, --version', 'print the version (and Node and onnxruntime-node versions)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s),
      writeErr: (s) => io.err(s),
      outputError: (s, write) => write(`edgent: ${s.replace(/^error: /, '').trim()}\n`)
    })
    .showSuggestionAfterError(true)

  registerPlan(program, io)
  registerModel(program, io)
  registerDevices(program, io)
  registerCampaigns(program, io)
  registerRuns(program, io)
  registerTestbed(program, io)
  registerWorker(program, io)
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
    if (err instanceof ExitCode) return err.code
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0
      return 2 // commander has already printed its one line through outputError
    }
    if (err instanceof UserError) {
      io.err(`edgent: ${err instanceof FieldError ? err.render(flagOf) : err.message}`)
      return 2
    }
    io.err(`edgent: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    return 1
  }
}
