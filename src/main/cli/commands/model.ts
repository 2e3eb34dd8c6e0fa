/** `edgent model …`: the model library — import, list, use, info, verify, decisions, exits add, policies. */
import type { Command } from 'commander'
import { DEFAULT_MAX_CODEC_DROP_PTS } from '../../../shared/algorithms/planner.js'
import { addExits, type AddExitsOptions } from '../../models/exits.js'
import { measurePolicies } from '../../models/policies.js'
import { FieldError } from '../../../shared/errors.js'
import { withExecutor } from '../../models/verify.js'
import {
  formatAddedExits,
  formatDecisions,
  formatImport,
  formatModelList,
  formatPolicies,
  formatVerify,
  importCommand,
  modelUse,
  runModelInfo,
  type ImportCommandOptions
} from '../model.js'
import { decisionTable } from '../../models/decisions.js'
import { verifyModel } from '../../models/verify.js'
import { DEFAULT_MAX_IMPORT_BYTES, listModels, resolveModel } from '../../models/library.js'
import { loadManifest } from '../../runtime/files.js'
import { CODECS, type Codec } from '../../../shared/algorithms/codecs.js'
import {
  type Io,
  ExitCode,
  codecsArg,
  dataDirOption,
  modelOption,
  fractionList,
  latencyListAlias,
  nonNegative,
  positive,
  positiveInt,
  nonNegativeInt,
  positiveList,
  preprocessArg,
  shapeArg
} from '../args.js'

export function registerModel(program: Command, io: Io): void {
  const model = program
    .command('model')
    .description('the model library (shipped and imported models): import, list, inspect, verify, and see the decisions a model leads to')
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
  const exits = model.command('exits').description("early exits for a model that has none (or too few): right-size the user's own network")
  exits
    .command('add <id>')
    .description(
      'add early exits to a library model: exit points among its cut points, a classifier head trained at each on labelled frames (backbone frozen, onnxruntime features, no Python), written as a new library model whose every exit is measured on held-out frames'
    )
    .requiredOption('--images <idx3-ubyte[.gz]>', "labelled training frames (MNIST idx), in the model's input size")
    .requiredOption('--labels <idx1-ubyte[.gz]>', 'their labels')
    .option(
      '--test-images <idx3-ubyte[.gz]>',
      "held-out labelled frames each exit's accuracy is measured on (default: the last fifth of --images, not trained on)"
    )
    .option('--test-labels <idx1-ubyte[.gz]>', 'their labels')
    .option('--at <layer,…>', 'the layers an exit follows (ids on the path to the final exit; default: proposed)', (v: string) => v.split(',').filter(Boolean))
    .option('--count <n>', 'how many exits to propose (default 3)', positiveInt)
    .option('--codecs', "also measure every exit × cut × lossy codec's accuracy on held-out frames (as model verify --codecs)")
    .option('--codec-samples <n>', 'held-out frames the codecs are measured on (default 500)', positiveInt)
    .option('--id <id>', "the new model's id (default <id>-exits)")
    .option('--epochs <n>', 'training passes over the frames (default 30)', positiveInt)
    .option('--seed <n>', 'the training seed (default 2018)', positiveInt)
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: Omit<AddExitsOptions, 'model' | 'signal'> & { json?: boolean }) => {
      const { json, ...rest } = o
      const report = await withExecutor(undefined, (ex) => addExits({ ...rest, model: resolveModel(id, o.dataDir) }, ex, io.progress))
      io.out(json ? JSON.stringify(report, null, 2) : formatAddedExits(report))
    })
  model
    .command('policies')
    .description(
      'confidence exits: a temperature per exit and the Pareto exit policies (a threshold per exit) chosen on half of a labelled set, measured on the other half, stored in the manifest'
    )
    .addOption(modelOption())
    .option('--images <idx3-ubyte[.gz]>', 'labelled frames (MNIST idx; default: the samples the model keeps)')
    .option('--labels <idx1-ubyte[.gz]>', 'their labels')
    .option('--samples <n>', 'use the first n frames (after --skip)', positiveInt)
    .option('--skip <n>', 'leave out the first n frames (e.g. the ones the model keeps as samples, which then stay unseen)', nonNegativeInt, 0)
    .option('--measure <measure>', 'confidence: max-softmax or entropy (default max-softmax)')
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(
      async (o: { model: string; dataDir: string; images?: string; labels?: string; samples?: number; skip: number; measure?: string; json?: boolean }) => {
        if (o.measure !== undefined && o.measure !== 'max-softmax' && o.measure !== 'entropy')
          throw new FieldError(`{measure} must be max-softmax or entropy, got "${o.measure}"`)
        const { json, measure, ...rest } = resolved(o)
        const report = await withExecutor(undefined, (ex) =>
          measurePolicies({ ...rest, ...(measure ? { measure: measure as 'max-softmax' | 'entropy' } : {}) }, ex, io.progress)
        )
        io.out(json ? JSON.stringify(report, null, 2) : formatPolicies(report))
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
    .option('--policies', "also offer the model's confidence-exit policies (edgent model policies)")
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(
      async (raw: {
        model: string
        dataDir: string
        policies?: boolean
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
}
