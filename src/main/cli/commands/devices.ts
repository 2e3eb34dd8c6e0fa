/** `edgent serve`, `pair`, `unpair`, `devices`, `infer`: the console and its devices. */
import { resolve } from 'node:path'
import { DEFAULT_SETTINGS } from '../../../shared/contracts/settings.js'
import { type Command, Option } from 'commander'
import { readSettings } from '../../runtime/settings-file.js'
import { UserError } from '../../../shared/errors.js'
import { DEFAULT_MAX_CODEC_DROP_PTS } from '../../../shared/algorithms/planner.js'
import { DEFAULT_MAX_IMPORT_BYTES } from '../../models/library.js'
import { noteOption, tagOption } from './runs.js'
import { devicesCommand, inferCommand, pairCommand, type ServeOptions, serve, unpairCommand, withSettings } from '../serve.js'
import { CODECS } from '../../../shared/algorithms/codecs.js'
import { type Io, type PinnedPlan, dataDirOption, modelOption, nonNegative, percentileArg, pinArg, portNumber, positive, positiveInt } from '../args.js'

export function registerDevices(program: Command, io: Io): void {
  program
    .command('serve')
    .description('start the console headless: embedded MQTT broker, edge runtime, planner, store, and a local emulated device')
    .option('--mqtt-port <port>', 'MQTT port of the embedded broker', portNumber, DEFAULT_SETTINGS.mqttPort)
    .option('--mqtt-host <host>', 'address of the plain MQTT listener (default: 127.0.0.1 with TLS on, else 0.0.0.0; 0.0.0.0 lets Pis in without TLS)')
    .option(
      '--mqtts-port <port>',
      "MQTT over TLS port of the embedded broker (the console's own CA, pinned by paired agents)",
      portNumber,
      DEFAULT_SETTINGS.mqttsPort
    )
    .option('--mqtts-host <host>', 'address of the MQTT over TLS listener', DEFAULT_SETTINGS.mqttsHost)
    .option('--no-mqtts', 'no MQTT over TLS listener (the plain one then listens on 0.0.0.0)')
    .option('--http-port <port>', 'control API port on 127.0.0.1', portNumber, DEFAULT_SETTINGS.httpPort)
    .option('--advertise-host <host>', 'the address Pis dial, named in pairing commands (default: the address of the default route)')
    .addOption(dataDirOption())
    .option('--no-local-agent', 'do not start the local emulated device')
    .option('--broker <url>', 'use an existing MQTT broker (mqtt://user:pass@host:port) instead of the embedded one')
    .addOption(modelOption())
    .option('--local-uplink-kbps <kbps>', 'uplink of the local emulated device', positive, DEFAULT_SETTINGS.localDevice.uplinkKbps)
    .option('--local-cpu-quota <share>', 'CPU share of the local emulated device (0.15 ≈ 6.7× slower)', positive, DEFAULT_SETTINGS.localDevice.cpuQuota)
    .addOption(
      new Option(
        '--local-cpu <mode>',
        'how the local device is slowed: slowdown (each device segment takes 1/share × its median compute time here: a steadily slower CPU) or cgroup (a CFS quota, needs root: real contention, bursty for short segments)'
      )
        .choices(['slowdown', 'cgroup'])
        .default(DEFAULT_SETTINGS.localDevice.cpu)
    )
    .option(
      '--max-codec-drop <points>',
      'the largest top-1 accuracy drop a lossy codec (f16, int8, int8c) may cost a plan, percentage points',
      nonNegative,
      DEFAULT_MAX_CODEC_DROP_PTS
    )
    .option('--no-policies', "plan over static exits only (the paper's Edgent): no confidence-exit policies unless turned on per device")
    .option(
      '--max-upload-mb <n>',
      'the largest file the console accepts by upload (a model imported from the Models page), MiB',
      positive,
      DEFAULT_MAX_IMPORT_BYTES / 2 ** 20
    )
    .option('--log-level <level>', 'log level (pino)', 'info')
    .action(async (flags: ServeOptions & { maxCodecDrop: number; maxUploadMb: number }, cmd: Command) => {
      if (flags.broker && !/^mqtts?:\/\//.test(flags.broker)) throw new UserError(`--broker must be an mqtt:// or mqtts:// URL, got "${flags.broker}"`)
      if (flags.localCpuQuota > 1) throw new UserError(`--local-cpu-quota is a share of one CPU in (0, 1], got ${flags.localCpuQuota}`)
      // The Settings page's values (<data dir>/settings.json) where no flag was given.
      const { maxCodecDrop, maxUploadMb, ...rest } = flags
      const o = withSettings(
        { ...rest, maxCodecDropPts: maxCodecDrop, maxUploadBytes: Math.round(maxUploadMb * 2 ** 20) },
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
    .addOption(tagOption('run'))
    .addOption(noteOption('run'))
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
        tag?: string[]
        note?: string
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
            ...(o.plan ? { plan: o.plan } : {}),
            ...(o.tag ? { tags: o.tag } : {}),
            ...(o.note !== undefined ? { note: o.note } : {})
          })
        )
      }
    )
}
