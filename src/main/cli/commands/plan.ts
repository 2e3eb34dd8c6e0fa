/** `edgent plan`: one plan, every candidate, or the configuration map, offline. */
import { type Command, Option } from 'commander'
import { DEFAULT_MAX_CODEC_DROP_PTS, PLANNER_MODES, type PlannerMode } from '../../../shared/algorithms/planner.js'
import { defaultModelDir } from '../../runtime/paths.js'
import { runPlan, type PlanOptions } from '../plan.js'
import { defaultDataDir } from '../serve.js'
import { CODECS } from '../../../shared/algorithms/codecs.js'
import { type Io, codecsArg, nonNegative, positive } from '../args.js'

export function registerPlan(program: Command, io: Io): void {
  program
    .command('plan')
    .description('choose the exit and partition for a latency requirement at a bandwidth, or print the configuration map')
    .addOption(new Option('--model <path>', 'manifest.json or model folder').default(defaultModelDir(), 'the shipped branchy-alexnet'))
    .requiredOption('--profile <name|id|file>', 'calibration profile: the built-in paper-2018, a stored profile id, a profile .json, or export.json#<id>')
    .addOption(new Option('--data-dir <dir>', 'where stored profiles are looked up').default(defaultDataDir()))
    .option('--bandwidth-kbps <kbps>', 'uplink bandwidth, kbit/s', positive)
    .option('--downlink-kbps <kbps>', 'downlink bandwidth, kbit/s (default: same as uplink)', positive)
    .option('--latency-ms <ms>', 'latency requirement, milliseconds', positive)
    .addOption(new Option('--mode <mode>', 'edgent (accuracy-ranked, best effort) or paper (Algorithm 1)').choices(PLANNER_MODES).default('edgent'))
    .option('--all', 'also list every (exit, deviceLayers, codec) candidate')
    .option(
      '--codecs <list|all>',
      `what the device may send besides f32 (${CODECS.join(', ')}, or all); lossy ones where model verify --codecs measured their accuracy`,
      codecsArg
    )
    .option('--max-codec-drop <points>', 'the largest accuracy drop a lossy codec may cost, percentage points', nonNegative, DEFAULT_MAX_CODEC_DROP_PTS)
    .option('--policies', "also offer the model's confidence-exit policies (edgent model policies; mode edgent)")
    .option('--map', 'print the configuration map over a bandwidth range instead of one plan')
    .option('--from-kbps <kbps>', 'map: lowest uplink bandwidth', positive)
    .option('--to-kbps <kbps>', 'map: highest uplink bandwidth', positive)
    .option('--json', 'machine-readable output')
    .action(({ maxCodecDrop, ...o }: PlanOptions & { mode: PlannerMode; maxCodecDrop: number }) => {
      io.out(runPlan({ ...o, maxCodecDropPts: maxCodecDrop }))
    })
}
