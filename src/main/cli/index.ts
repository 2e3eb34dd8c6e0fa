/**
 * `edgent`: the console's command line (plain Node, no Electron). Every command is a plain function;
 * this file only parses flags. Errors a user can cause print one line on stderr and exit with 2.
 */
import { resolve } from 'node:path'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { readSettings } from '../runtime/settings-file.js'
import { UserError, errorMessage } from '../../shared/errors.js'
import { parsePreprocessSpec } from '../../shared/preprocess.js'
import { DEFAULT_MAX_CODEC_DROP_PTS, PLANNER_MODES, type PlannerMode } from '../../shared/planner.js'
import { defaultModelDir } from '../runtime/paths.js'
import { runPlan, type PlanOptions } from './plan.js'
import {
  decisionTable,
  formatDecisions,
  formatImport,
  formatModelList,
  formatVerify,
  importCommand,
  modelUse,
  runModelInfo,
  verifyModel,
  type ImportCommandOptions,
  type Progress
} from './model.js'
import { DEFAULT_MAX_IMPORT_BYTES, listModels, resolveModel } from '../models/library.js'
import { loadManifest } from '../runtime/files.js'
import { testbedCommand } from './testbed.js'
import {
  type CampaignRunOptions,
  campaignCancel,
  campaignList,
  campaignRun,
  exportCalibration,
  importCalibration,
  profileList,
  profileUse
} from './campaign.js'
import { DEFAULT_MQTTS_PORT } from '../shell/stack.js'
import { defaultDataDir, devicesCommand, inferCommand, pairCommand, type ServeOptions, serve, unpairCommand, withSettings } from './serve.js'
import { versionLine } from '../runtime/version.js'
import { PERCENTILE_RANGE } from '../../shared/tail.js'
import { CODECS, isCodec, type Codec } from '../../shared/codecs.js'
import { REGRESSORS, type Regressor } from '../../shared/latency.js'

export interface Io {
  out(text: string): void
  err(text: string): void
  /** Progress of long work; shown only where stderr is a terminal. */
  progress?: Progress
}

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

function positiveList(value: string): number[] {
  const items = value.split(',').map((v) => v.trim())
  const nums = items.map(Number)
  if (items.some((v) => v === '') || nums.some((n) => !Number.isFinite(n) || n <= 0))
    throw new InvalidArgumentError('expected comma-separated positive numbers, e.g. 50,100,500.')
  return nums
}

type PinnedPlan = { exit: number; deviceLayers: number; codec?: Codec }

/** "5/8" or "5/8/int8" → a pinned plan. */
function pinArg(value: string): PinnedPlan {
  const m = /^(\d+)\/(\d+)(?:\/([a-z0-9]+))?$/.exec(value.trim())
  if (!m || Number(m[1]) < 1) throw new InvalidArgumentError('expected exit/deviceLayers[/codec], e.g. 5/8 or 5/8/int8.')
  if (m[3] !== undefined && !isCodec(m[3])) throw new InvalidArgumentError(`unknown codec "${m[3]}" (known: ${CODECS.join(', ')}).`)
  return { exit: Number(m[1]), deviceLayers: Number(m[2]), ...(m[3] ? { codec: m[3] as Codec } : {}) }
}

function nonNegativeInt(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a whole number ≥ 0.')
  return n
}

function positiveInt(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer.')
  return n
}

/** "50,100,250" → [50, 100, 250]: positive numbers only. */
function numberList(flag: string): (value: string) => number[] {
  return (value: string) => {
    const list = value.split(',').map((v) => v.trim())
    const nums = list.map(Number)
    if (!list.length || nums.some((n, i) => !list[i] || !Number.isFinite(n) || n <= 0))
      throw new InvalidArgumentError(`${flag} takes positive numbers separated by commas, e.g. 50,100,250`)
    return nums
  }
}

/** One positive number (a rate, a duration). */
function positiveNumber(flag: string): (value: string) => number {
  return (value: string) => {
    const n = Number(value.trim())
    if (!value.trim() || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} takes a positive number, e.g. 100000`)
    return n
  }
}

/** "1x3x224x224" → [1, 3, 224, 224] */
/** A list of codecs, or `all`. */
function codecsArg(value: string): Codec[] {
  const v = value.trim()
  if (v === 'all') return [...CODECS]
  const list = v.split(',').map((x) => x.trim())
  for (const c of list) if (!isCodec(c)) throw new InvalidArgumentError(`unknown codec "${c}" (known: ${CODECS.join(', ')}, or all).`)
  return [...new Set(['f32' as Codec, ...(list as Codec[])])]
}

function shapeArg(value: string): number[] {
  const dims = value.split(/[x×,]/).map((v) => Number(v.trim()))
  if (dims.length < 2 || dims.some((d) => !Number.isInteger(d) || d <= 0))
    throw new InvalidArgumentError('expected positive integers separated by x, e.g. 1x3x224x224.')
  return dims
}

/** "scale=0.00392,mean=0.485/0.456/0.406,std=0.229/0.224/0.225" */
function preprocessArg(value: string): { scale?: number; mean?: number[]; std?: number[] } {
  try {
    return parsePreprocessSpec(value)
  } catch (err) {
    throw new InvalidArgumentError(errorMessage(err))
  }
}

/** "0.81,0.89" → accuracies in [0, 1] */
function fractionList(value: string): number[] {
  const nums = value.split(',').map((v) => Number(v.trim()))
  if (nums.some((n) => !Number.isFinite(n) || n < 0 || n > 1))
    throw new InvalidArgumentError('expected accuracies in [0, 1] separated by commas, e.g. 0.81,0.90.')
  return nums
}

/** A percentile of inferences a requirement holds for: 50–99.9. */
function percentileArg(value: string): number {
  const n = Number(value.trim())
  if (!value.trim() || !Number.isFinite(n) || n < PERCENTILE_RANGE[0] || n > PERCENTILE_RANGE[1])
    throw new InvalidArgumentError(`expected a percentile from ${PERCENTILE_RANGE[0]} to ${PERCENTILE_RANGE[1]}, e.g. 95.`)
  return n
}

function positive(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number.')
  return n
}

function nonNegative(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number ≥ 0.')
  return n
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
    .option('--map', 'print the configuration map over a bandwidth range instead of one plan')
    .option('--from-kbps <kbps>', 'map: lowest uplink bandwidth', positive)
    .option('--to-kbps <kbps>', 'map: highest uplink bandwidth', positive)
    .option('--json', 'machine-readable output')
    .action(({ maxCodecDrop, ...o }: PlanOptions & { mode: PlannerMode; maxCodecDrop: number }) => {
      io.out(runPlan({ ...o, maxCodecDropPts: maxCodecDrop }))
    })
  const dataDirOption = () => new Option('--data-dir <dir>', 'console data directory (database, console.json)').default(defaultDataDir())
  const model = program
    .command('model')
    .description('the model library (shipped and imported models): import, list, inspect, verify, and see the decisions a model leads to')
  const modelOption = () =>
    new Option('--model <id|dir>', 'a library model id, a model folder or a manifest.json').default(defaultModelDir(), 'the shipped branchy-alexnet')
  /** `--model` as a folder: a library id is looked up in the data directory's library. */
  const resolved = <T extends { model: string; dataDir: string }>(o: T): T => ({ ...o, model: resolveModel(o.model, o.dataDir) })
  model
    .command('import <model.onnx>')
    .description('import an ONNX classifier (chain or DAG, one output per exit) into the library: cut points, layers and a manifest derived from the graph')
    .option('--id <id>', 'model id (default: from the file name)')
    .option('--input-shape <NxCxHxW>', 'the input shape, where the graph leaves a dimension open (e.g. 1x3x224x224)', shapeArg)
    .option(
      '--preprocess <spec>',
      'x = (pixel·scale − mean[c]) / std[c]: scale=…,mean=m1/m2/m3,std=s1/s2/s3 (default scale=1/255, mean 0, std 1)',
      preprocessArg
    )
    .option('--classes <file>', 'class names, one per line')
    .option('--images <idx3-ubyte[.gz]>', "labelled test images (MNIST idx), each exit's accuracy is measured on them")
    .option('--labels <idx1-ubyte[.gz]>', 'their labels')
    .option(
      '--image-dir <dir>',
      'a labelled image folder instead (PNG/JPEG/BMP…, resized to the input): labels.txt with "<file> <label>" lines, or one subfolder per class'
    )
    .option('--accuracy <a1,a2,…>', "each exit's accuracy in [0, 1], supplied (marked as such) instead of measured", fractionList)
    .option('--max-mb <n>', 'largest ONNX file accepted, MiB', positive, DEFAULT_MAX_IMPORT_BYTES / 2 ** 20)
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(async (file: string, o: Omit<ImportCommandOptions, 'file'>) => {
      const report = await importCommand({ ...o, file }, io.progress)
      io.out(o.json ? JSON.stringify(report, null, 2) : formatImport(report))
    })
  model
    .command('list')
    .description('the shipped and imported models, with their exits and accuracies')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action((o: { dataDir: string; json?: boolean }) =>
      io.out(o.json ? JSON.stringify(listModels(o.dataDir), null, 2) : formatModelList(listModels(o.dataDir)))
    )
  model
    .command('use <id>')
    .description(
      'plan and serve a device (--agent) or every device without its own choice with a library model ("default": back to the default); agents fetch it from the console'
    )
    .option('--agent <id>', 'one paired agent (default: every device without its own choice)')
    .addOption(dataDirOption())
    .action(async (id: string, o: { agent?: string; dataDir: string }) => io.out(await modelUse(id, o.agent, o.dataDir)))
  model
    .command('info')
    .description('layers, shapes, bytes, exits and accuracies')
    .addOption(modelOption())
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action((o: { model: string; dataDir: string; json?: boolean }) => io.out(runModelInfo(resolved(o))))
  model
    .command('verify')
    .description('per-exit accuracy on the shipped samples (or an idx test set) beside the manifest, and every split against the unsplit run')
    .addOption(modelOption())
    .option('--samples <n>', 'use the first n samples', positiveInt)
    .option('--images <idx3-ubyte[.gz]>', 'test images in MNIST idx format')
    .option('--labels <idx1-ubyte[.gz]>', 'test labels in MNIST idx format')
    .option('--split-samples <n>', 'samples per (exit, deviceLayers) split check', positiveInt, 4)
    .option('--codecs', "also measure every exit × cut × lossy codec's top-1 accuracy (f16, int8, int8c) and store it in the model's manifest")
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(
      async (o: {
        model: string
        dataDir: string
        samples?: number
        images?: string
        labels?: string
        splitSamples: number
        codecs?: boolean
        json?: boolean
      }) => {
        const report = await verifyModel(resolved(o), io.progress)
        io.out(o.json ? JSON.stringify(report, null, 2) : formatVerify(report))
        if (!report.ok) throw new ExitCode(1)
      }
    )
  model
    .command('decisions')
    .description("measure every layer here, take a device N times slower, and print the planner's decision table")
    .addOption(modelOption())
    .option('--device-factor <x>', 'how many times slower than this machine the device is (30: a Raspberry Pi 3-class core; see README)', positive, 30)
    .option('--bandwidths-kbps <list>', 'uplink bandwidths, kbit/s', positiveList, [50, 100, 250, 500, 1000, 1500])
    .option('--latencies-ms <list>', 'latency requirements, ms', positiveList, [20, 50, 100, 200, 500, 1000])
    .addOption(latencyListAlias())
    .option('--reps <n>', 'timed repetitions per layer (median)', positiveInt, 15)
    .option('--codecs <list|all>', `what the device may send besides f32 (${CODECS.join(', ')}, or all): a table per codec and one with all`, codecsArg)
    .option('--max-codec-drop <points>', 'the largest accuracy drop a lossy codec may cost, percentage points', nonNegative, DEFAULT_MAX_CODEC_DROP_PTS)
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(
      async (raw: {
        model: string
        dataDir: string
        deviceFactor: number
        bandwidthsKbps: number[]
        latenciesMs: number[]
        latencyMs?: number[]
        reps: number
        codecs?: Codec[]
        maxCodecDrop: number
        json?: boolean
      }) => {
        const { maxCodecDrop, ...o } = resolved(raw)
        const report = await decisionTable({ ...o, maxCodecDropPts: maxCodecDrop, latenciesMs: o.latencyMs ?? o.latenciesMs }, io.progress)
        io.out(o.json ? JSON.stringify(report, null, 2) : formatDecisions(report, loadManifest(o.model).manifest))
      }
    )
  program
    .command('serve')
    .description('start the console headless: embedded MQTT broker, edge runtime, planner, store, and a local emulated device')
    .option('--mqtt-port <port>', 'MQTT port of the embedded broker', positiveInt, 1883)
    .option('--mqtt-host <host>', 'address of the plain MQTT listener (default: 127.0.0.1 with TLS on, else 0.0.0.0; 0.0.0.0 lets Pis in without TLS)')
    .option('--mqtts-port <port>', "MQTT over TLS port of the embedded broker (the console's own CA, pinned by paired agents)", positiveInt, DEFAULT_MQTTS_PORT)
    .option('--mqtts-host <host>', 'address of the MQTT over TLS listener', '0.0.0.0')
    .option('--no-mqtts', 'no MQTT over TLS listener (the plain one then listens on 0.0.0.0)')
    .option('--http-port <port>', 'control API port on 127.0.0.1', positiveInt, 8080)
    .option('--advertise-host <host>', 'the address Pis dial, named in pairing commands (default: the address of the default route)')
    .addOption(dataDirOption())
    .option('--no-local-agent', 'do not start the local emulated device')
    .option('--broker <url>', 'use an existing MQTT broker (mqtt://user:pass@host:port) instead of the embedded one')
    .addOption(modelOption())
    .option('--local-uplink-kbps <kbps>', 'uplink of the local emulated device', positive, 1000)
    .option('--local-cpu-quota <share>', 'CPU share of the local emulated device (0.15 ≈ 6.7× slower)', positive, 0.15)
    .addOption(
      new Option(
        '--local-cpu <mode>',
        'how the local device is slowed: slowdown (each device segment takes 1/share × its median compute time here: a steadily slower CPU) or cgroup (a CFS quota, needs root: real contention, bursty for short segments)'
      )
        .choices(['slowdown', 'cgroup'])
        .default('slowdown')
    )
    .option(
      '--max-codec-drop <points>',
      'the largest top-1 accuracy drop a lossy codec (f16, int8, int8c) may cost a plan, percentage points',
      nonNegative,
      DEFAULT_MAX_CODEC_DROP_PTS
    )
    .option('--log-level <level>', 'log level (pino)', 'info')
    .action(async (flags: ServeOptions & { maxCodecDrop: number }, cmd: Command) => {
      if (flags.broker && !/^mqtts?:\/\//.test(flags.broker)) throw new UserError(`--broker must be an mqtt:// or mqtts:// URL, got "${flags.broker}"`)
      if (flags.localCpuQuota > 1) throw new UserError(`--local-cpu-quota is a share of one CPU in (0, 1], got ${flags.localCpuQuota}`)
      // The Settings page's values (<data dir>/settings.json) where no flag was given.
      const { maxCodecDrop, ...rest } = flags
      const o = withSettings(
        { ...rest, maxCodecDropPts: maxCodecDrop },
        readSettings(resolve(flags.dataDir)),
        (name) => cmd.getOptionValueSource(name) === 'cli'
      )
      await serve(o, io.out)
    })
  program
    .command('pair <id>')
    .description("issue a token for a new agent id, write the agent's credentials file (mode 0600) and print the command to run on the Pi")
    .addOption(dataDirOption())
    .option('--out <file>', 'where to write the credentials file (default: ./<id>.credentials.json)')
    .option('--force', 'pair an id that is paired already: a new token, and the old one stops working at once')
    .option('--advertise-host <host>', 'when no console runs: the address the credentials name (default: the stored setting, else the default route)')
    .action(async (id: string, o: { dataDir: string; out?: string; force?: boolean; advertiseHost?: string }) =>
      io.out(
        await pairCommand(id, o.dataDir, {
          ...(o.out ? { out: o.out } : {}),
          ...(o.force ? { force: true } : {}),
          ...(o.advertiseHost ? { advertiseHost: o.advertiseHost } : {})
        })
      )
    )
  program
    .command('unpair <id>')
    .description("revoke an agent's token and disconnect it")
    .addOption(dataDirOption())
    .action(async (id: string, o: { dataDir: string }) => io.out(await unpairCommand(id, o.dataDir)))
  program
    .command('devices')
    .description('paired agents with state, capabilities, plan and uplink estimate')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(async (o: { dataDir: string; json?: boolean }) => io.out(await devicesCommand(o.dataDir, !!o.json)))
  program
    .command('infer')
    .description("run n co-inferences from the agent's samples under the planner's plan")
    .requiredOption('--agent <id>', 'paired agent')
    .option('--count <n>', 'number of inferences', positiveInt, 20)
    .requiredOption('--latency-ms <ms>', 'latency requirement', positive)
    .option('--bandwidth-kbps <kbps|auto>', 'plan for this uplink, or auto (the live estimate)', 'auto')
    .option(
      '--percentile <p>',
      'the requirement holds for this percentile of inferences (50–99.9): plans are chosen with the device’s measured dispersion (default: the typical inference)',
      percentileArg
    )
    .option('--plan <exit/deviceLayers[/codec]>', `pin the plan instead of planning, e.g. 5/8/int8 (codecs: ${CODECS.join(', ')}; default f32)`, pinArg)
    .addOption(dataDirOption())
    .option('--json', 'the summary and every row as JSON')
    .action(
      async (o: {
        agent: string
        count: number
        latencyMs: number
        bandwidthKbps: string
        percentile?: number
        plan?: PinnedPlan
        dataDir: string
        json?: boolean
      }) => {
        const b = o.bandwidthKbps === 'auto' ? undefined : Number(o.bandwidthKbps)
        if (b !== undefined && !(b > 0)) throw new UserError(`--bandwidth-kbps must be a positive number or auto, got "${o.bandwidthKbps}"`)
        io.out(
          await inferCommand({
            agent: o.agent,
            count: o.count,
            latencyMs: o.latencyMs,
            dataDir: o.dataDir,
            ...(o.json ? { json: true } : {}),
            ...(b !== undefined ? { uplinkKbps: b } : {}),
            ...(o.percentile !== undefined ? { percentile: o.percentile } : {}),
            ...(o.plan ? { plan: o.plan } : {})
          })
        )
      }
    )
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
  program
    .command('testbed')
    .description(
      'needs root: the device in a network namespace behind a tc-shaped link with a CPU quota, the console here; calibrate, sweep, and write a reproduction report with baselines'
    )
    .option('--bandwidths-kbps <list>', 'shaped link rates, comma-separated', numberList('--bandwidths-kbps'), [50, 100, 250, 500, 1000, 1500])
    .option('--latencies-ms <list>', 'latency requirements, comma-separated', numberList('--latencies-ms'), [10, 20, 50, 100, 1000])
    .addOption(latencyListAlias())
    .option('--cpu-quota <share>', 'CPU share of the device (0.15 ≈ 6.7× slower)', positive, 0.15)
    .addOption(
      new Option(
        '--cpu <mode>',
        'slowdown: each device segment takes 1/share × its median compute time here (a steadily slower CPU); cgroup: a CFS quota on the agent process (bursty: see README)'
      )
        .choices(['slowdown', 'cgroup'])
        .default('slowdown')
    )
    .option('--reps <n>', 'co-inferences per configuration and point (fewer: faster, noisier comparisons)', positiveInt, 30)
    .option('--no-traces', 'skip the dynamic-bandwidth traces (static against adaptive planning)')
    .option('--short', 'the CI variant: 3 bandwidths × 2 requirements, 3 reps, traces at 70 % length')
    .option('--out <dir>', 'report folder', 'testbed-report')
    .option('--model <dir>', 'model folder', defaultModelDir())
    .option('--log-level <level>', 'pino level (stderr)', 'warn')
    .action(
      async (raw: {
        bandwidthsKbps: number[]
        latenciesMs: number[]
        latencyMs?: number[]
        cpuQuota: number
        cpu: 'cgroup' | 'slowdown'
        reps: number
        short?: boolean
        traces: boolean
        out: string
        model: string
        logLevel: string
      }) => {
        const o = { ...raw, latencyMs: raw.latencyMs ?? raw.latenciesMs }
        if (o.cpuQuota > 1) throw new UserError(`--cpu-quota is a share of one CPU in (0, 1], got ${o.cpuQuota}`)
        const opts = o.short ? { ...o, bandwidthsKbps: [100, 1000, 10000], latencyMs: [20, 100], reps: 3, traceScale: 0.7 } : o
        const r = await testbedCommand(opts, io.progress)
        io.out(r.text)
        if (r.failed.length) throw new ExitCode(1) // the report is written either way; the exit code says the checks failed
      }
    )
  program
    .command('load-test')
    .description(
      'N emulated devices (agent processes) co-inferring at once against one console, with the embedded broker and with mosquitto; checks every result (0 lost, duplicated or mismatched) and compares load-blind with load-aware planning'
    )
    .option('--agents <n>', 'devices at once (1–64)', positiveInt, 20)
    .addOption(new Option('--broker <list>', 'brokers, comma-separated: embedded, mosquitto').default('embedded,mosquitto'))
    .option('--count <n>', 'co-inferences per device per phase', positiveInt, 50)
    .option('--latency-ms <ms>', 'the latency requirement', positive, 10)
    .option('--uplink-kbps <kbps>', 'the bandwidth plans are made for (the devices share loopback)', positive, 100_000)
    .option('--cpu-quota <share>', "each device's CPU share (0.25 ≈ 4× slower)", positive, 0.25)
    .option('--compare <rounds>', 'rounds of load-blind then load-aware planning (embedded broker); 0: load-aware only', (v) => nonNegativeInt(v), 2)
    .option('--mosquitto <path>', 'the mosquitto binary', '/usr/sbin/mosquitto')
    .option('--json <file>', 'also write the report as JSON')
    .option('--model <dir>', 'model folder', defaultModelDir())
    .option('--log-level <level>', 'pino level (stderr)', 'warn')
    .action(
      async (o: {
        agents: number
        broker: string
        count: number
        latencyMs: number
        uplinkKbps: number
        cpuQuota: number
        compare: number
        mosquitto: string
        json?: string
        model: string
        logLevel: string
      }) => {
        const brokers = o.broker.split(',').map((b) => b.trim())
        const bad = brokers.filter((b) => b !== 'embedded' && b !== 'mosquitto')
        if (bad.length || !brokers.length) throw new UserError(`--broker takes embedded, mosquitto or both (comma-separated), got "${o.broker}"`)
        if (o.cpuQuota > 1) throw new UserError(`--cpu-quota is a share of one CPU in (0, 1], got ${o.cpuQuota}`)
        const { runLoadTest, formatLoadReport } = await import('../testbed/load.js')
        const { pino } = await import('pino')
        const r = await runLoadTest({
          agents: o.agents,
          brokers: brokers as ('embedded' | 'mosquitto')[],
          count: o.count,
          latencyMs: o.latencyMs,
          uplinkKbps: o.uplinkKbps,
          cpuQuota: o.cpuQuota,
          compareRounds: o.compare,
          modelDir: resolve(o.model),
          mosquitto: o.mosquitto,
          log: pino({ level: o.logLevel }, pino.destination(2)),
          progress: (line) => io.err(line)
        })
        if (o.json) {
          const { writeFileSync } = await import('node:fs')
          writeFileSync(resolve(o.json), `${JSON.stringify(r, null, 2)}\n`)
        }
        io.out(formatLoadReport(r))
        if (!r.clean) throw new ExitCode(1)
      }
    )

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
  return program
}

/** Lists of requirements are `--latencies-ms` everywhere (as `--bandwidths-kbps`); the old spelling still parses, unlisted. */
function latencyListAlias(): Option {
  return new Option('--latency-ms <list>', 'same as --latencies-ms').argParser(numberList('--latency-ms')).hideHelp()
}

/** Thrown by a command to end with a given exit code after printing its own output. */
class ExitCode extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`)
  }
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
      io.err(`edgent: ${err.message}`)
      return 2
    }
    io.err(`edgent: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    return 1
  }
}
