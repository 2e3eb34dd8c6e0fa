/** `edgent worker` (an edge worker process, issue 34) and `edgent workers` (pair, unpair, list through the running console). */
import { resolve } from 'node:path'
import { pino } from 'pino'
import type { Command } from 'commander'
import { UserError } from '../../../shared/errors.js'
import { checkAgentId } from '../../../shared/contracts/topics.js'
import { defaultModelDir } from '../../runtime/paths.js'
import { EdgeWorker } from '../../worker/worker.js'
import { installProcessGuard } from '../../shell/process-guard.js'
import { callConsole, runningConsole } from '../client.js'
import { ms, table } from '../format.js'
import { type Io, dataDirOption, positive, positiveInt } from '../args.js'
import { dirname } from 'node:path'

export function registerWorker(program: Command, io: Io): void {
  program
    .command('worker')
    .description('run an edge worker: runs the edge half of co-inference for a console, reached through its MQTT broker')
    .requiredOption('--broker <url>', "the console's broker (mqtt://host:port)")
    .requiredOption('--id <id>', 'the worker id it was paired as (edgent workers pair <id>)')
    .option('--token <token>', 'its token (default: $EDGENT_WORKER_TOKEN, which keeps it out of the process list)')
    .option('--models <dir>', 'a model folder, or a folder of them (default: the shipped models)')
    .option('--threads <n>', 'ORT threads: runs at once', positiveInt, 1)
    .option('--slowdown <k>', 'each run takes k × its time here (an emulated slower machine)', positive, 1)
    .option('--log-level <level>', 'pino log level', 'info')
    .action(async (o: { broker: string; id: string; token?: string; models?: string; threads: number; slowdown: number; logLevel: string }) => {
      const token = o.token ?? process.env['EDGENT_WORKER_TOKEN']
      if (!token) throw new UserError('--token (or $EDGENT_WORKER_TOKEN) is required: the token `edgent workers pair <id>` printed')
      const log = pino({ level: o.logLevel }, pino.destination(2))
      installProcessGuard(log)
      const worker = new EdgeWorker({
        broker: o.broker,
        id: checkAgentId(o.id),
        token,
        models: resolve(o.models ?? dirname(defaultModelDir())),
        threads: o.threads,
        slowdown: o.slowdown,
        log
      })
      await worker.start()
      io.out(`edge worker ${o.id} serving through ${o.broker}`)
      await new Promise<void>((done) => {
        const stop = () => void worker.stop().finally(done)
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
    })

  const workers = program.command('workers').description('edge workers of the running console: list, pair, unpair')
  workers
    .command('list', { isDefault: true })
    .description('paired workers (and the console’s own pool): state, load, service time')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(async (o: { dataDir: string; json?: boolean }) => {
      const list = await callConsole(runningConsole(o.dataDir), 'workers', {})
      if (o.json) return io.out(JSON.stringify(list, null, 2))
      io.out(
        table(
          ['worker', 'state', 'threads', 'in flight', 'service', 'round trip', 'answered', 'refused', 'deaths'],
          list.map((w) => [
            w.id,
            w.state,
            w.pool === null ? '—' : String(w.pool),
            String(w.inFlight),
            w.serviceMs === null ? '—' : ms(w.serviceMs),
            w.tripMs === null ? '—' : ms(w.tripMs),
            String(w.answered),
            String(w.refused),
            String(w.deaths)
          ])
        )
      )
    })
  workers
    .command('pair <id>')
    .description('issue a token for an edge worker and print the command that starts it')
    .addOption(dataDirOption())
    .option('--force', 'pair an id again: its old token stops working at once')
    .action(async (id: string, o: { dataDir: string; force?: boolean }) => {
      const p = await callConsole(runningConsole(o.dataDir), 'workerPair', { id, ...(o.force ? { force: true } : {}) })
      io.out(`worker ${p.id} paired${p.replaced ? ' again (its old token is dead)' : ''}; start it on the machine that will run it:\n  ${p.command}`)
    })
  workers
    .command('unpair <id>')
    .description('revoke an edge worker’s token and drop its connection (its runs in flight go to other workers)')
    .addOption(dataDirOption())
    .action(async (id: string, o: { dataDir: string }) => {
      const r = await callConsole(runningConsole(o.dataDir), 'workerUnpair', { id })
      io.out(`worker ${r.id} ${r.revoked ? 'unpaired' : 'was already unpaired'}${r.disconnected ? ' and disconnected' : ''}`)
    })
}
