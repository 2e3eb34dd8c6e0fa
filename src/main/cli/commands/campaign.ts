/** `edgent campaign …`, `profile …`, `export`, `import`: campaigns and the calibration data they leave. */
import { type Command, Option } from 'commander'
import { UserError } from '../../../shared/errors.js'
import {
  type CampaignRunOptions,
  campaignCancel,
  campaignList,
  campaignRun,
  exportCalibration,
  importCalibration,
  profileList,
  profileUse
} from '../campaign.js'
import { noteOption, tagOption } from './runs.js'
import { REGRESSORS, type Regressor } from '../../../shared/algorithms/latency.js'
import { type Io, ExitCode, dataDirOption, numberList, positiveInt, positiveNumber } from '../args.js'

export function registerCampaigns(program: Command, io: Io): void {
  const campaign = program.command('campaign').description('benchmark campaigns: profile both sides and fit the latency regressions')
  campaign
    .command('run')
    .description('run a campaign on an agent and on this edge, then fit and store its profile')
    .requiredOption('--agent <id>', 'paired, online agent')
    .addOption(new Option('--kind <kind>', 'what to measure').choices(['layers', 'model', 'sweep', 'plans']).default('layers'))
    .option('--reps <n>', 'timed repetitions per configuration (median); for sweep: co-inferences per point; for plans: per plan', positiveInt, 5)
    .option(
      '--bandwidths-kbps <list>',
      'sweep: uplink bandwidths, comma-separated (default 50,100,250,500,1000,1500,10000,100000)',
      numberList('--bandwidths-kbps')
    )
    .option('--latencies-ms <list>', 'sweep: latency requirements, comma-separated (default 5,10,20,50,100)', numberList('--latencies-ms'))
    .option('--uplink-kbps <kbps>', 'plans: the fixed uplink every plan co-infers at (default 100000)', positiveNumber('--uplink-kbps'))
    .addOption(
      new Option('--timing <regime>', 'layers: warm (runs back to back) or cold (each run after a cache flush and an idle, as plans run; the default)').choices(
        ['warm', 'cold']
      )
    )
    .addOption(tagOption('campaign'))
    .addOption(noteOption('campaign'))
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(async (o: CampaignRunOptions) => {
      if (o.kind !== 'sweep' && (o.bandwidthsKbps || o.latenciesMs)) throw new UserError('--bandwidths-kbps and --latencies-ms are for --kind sweep')
      if (o.kind !== 'plans' && o.uplinkKbps !== undefined) throw new UserError('--uplink-kbps is for --kind plans')
      if (o.kind !== 'layers' && o.timing !== undefined) throw new UserError('--timing is for --kind layers')
      const r = await campaignRun(o, io.progress)
      io.out(r.text)
      if (!r.ok) throw new ExitCode(1) // --json: the status says why; the exit code says it failed
    })
  campaign
    .command('cancel <id>')
    .description('stop a running campaign (between chunks; what it measured is kept)')
    .addOption(dataDirOption())
    .action(async (id: string, o: { dataDir: string }) => io.out(await campaignCancel(id, o.dataDir)))
  campaign
    .command('list')
    .description('campaigns with their status')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(async (o: { dataDir: string; json?: boolean }) => io.out(await campaignList(o.dataDir, !!o.json)))
  const profile = program.command('profile').description('the fitted profiles of a device, and which one the planner uses')
  profile
    .command('list')
    .description("a device's fitted profiles (newest first) and its current latency source")
    .requiredOption('--agent <id>', 'paired agent')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(async (o: { agent: string; dataDir: string; json?: boolean }) => io.out(await profileList(o.agent, o.dataDir, !!o.json)))
  profile
    .command('use')
    .description('plan a device with one of its fitted profiles, or with the measured per-layer tables')
    .requiredOption('--agent <id>', 'paired agent')
    .argument('<profile>', 'a profile id from `edgent profile list`, or "measured"')
    .addOption(
      new Option(
        '--regressor <r>',
        "which of the profile's regressors predicts: linear (its fits on the campaign's variables), paper (the paper's variables alone) or forest (its tree ensembles); your choice, which plans campaigns then keep (default: as the last plans campaign chose)"
      ).choices([...REGRESSORS])
    )
    .addOption(dataDirOption())
    .action(async (p: string, o: { agent: string; regressor?: Regressor; dataDir: string }) => io.out(await profileUse(o.agent, p, o.dataDir, o.regressor)))
  program
    .command('export')
    .description(
      'write calibration data (campaigns of every status, fitted profiles, raw measurements with every repetition, both machines), or co-inference runs, or bandwidth samples'
    )
    .requiredOption('--out <file>', 'output file')
    .addOption(
      new Option('--what <data>', 'calibration, runs (every inference), bandwidth (every uplink sample) or plans (every plan of every plans campaign)')
        .choices(['calibration', 'runs', 'bandwidth', 'plans'])
        .default('calibration')
    )
    .addOption(new Option('--format <format>', 'json, or csv (one row per measurement, inference or sample)').choices(['json', 'csv']).default('json'))
    .option('--campaign <id>', 'calibration: one campaign (default: every campaign, whatever its status)')
    .option('--agent <id>', 'runs, bandwidth: one device (default: all)')
    .addOption(dataDirOption())
    .action(
      (o: { out: string; format: 'json' | 'csv'; what: 'calibration' | 'runs' | 'bandwidth' | 'plans'; campaign?: string; agent?: string; dataDir: string }) =>
        io.out(exportCalibration(o))
    )
  program
    .command('import <file>')
    .description('read calibration data written by `edgent export` (all or nothing)')
    .addOption(dataDirOption())
    .action((file: string, o: { dataDir: string }) => io.out(importCalibration({ file, dataDir: o.dataDir })))
}
