/**
 * `edgent-agent`: the device agent's command line.
 *   edgent-agent --credentials <file from edgent pair> [--model-dir DIR] [--cache-dir DIR] [--uplink-kbps n]
 *   edgent-agent --broker mqtts://host:8883 --ca ca.pem --id <id> --token-file <file> …
 *   edgent-agent --check [--json] [--model-dir DIR]
 * Configuration may also come from the environment (EDGENT_BROKER, EDGENT_AGENT_ID, EDGENT_TOKEN,
 * EDGENT_MODEL_DIR, EDGENT_CACHE_DIR, EDGENT_UPLINK_KBPS), which is how the systemd unit passes it.
 * Logs are JSON lines (pino) on stderr.
 */
import { readFileSync, statSync } from 'node:fs'
import { Command, CommanderError, InvalidArgumentError } from 'commander'
import { pino } from 'pino'
import { MAX_CREDENTIALS_BYTES, parseCredentials, type Credentials } from '../../src/shared/contracts/credentials.js'
import { UserError } from '../../src/shared/errors.js'
import { checkAgentId } from '../../src/shared/contracts/topics.js'
import { defaultCacheDir, defaultModelDir } from '../../src/main/runtime/paths.js'
import { EdgentAgent, Emulation } from './agent.js'
import { runCheck } from './check.js'
import { CODECS, isCodec, type Codec } from '../../src/shared/algorithms/codecs.js'

/** A comma-separated list of codecs; f32 is always among them. */
function codecList(value: string): Codec[] {
  const list = value.split(',').map((x) => x.trim())
  for (const c of list) if (!isCodec(c)) throw new InvalidArgumentError(`unknown codec "${c}" (known: ${CODECS.join(', ')}).`)
  return [...new Set<Codec>(['f32', ...(list as Codec[])])]
}
import { versionLine } from '../../src/main/runtime/version.js'

function positive(value: string): number {
  const n = Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number.')
  return n
}

/** The credentials file `edgent pair` wrote, and whether others can read it. */
function readCredentialsFile(path: string): Credentials & { worldReadable: boolean } {
  let st: ReturnType<typeof statSync>
  try {
    st = statSync(path)
  } catch {
    throw new UserError(`credentials file ${path} not found: copy the file \`edgent pair\` wrote on the console`)
  }
  if (!st.isFile() || st.size > MAX_CREDENTIALS_BYTES) throw new UserError(`credentials file ${path} is not a credentials file (a regular file under 64 KiB)`)
  return { ...parseCredentials(readFileSync(path, 'utf8'), path), worldReadable: (st.mode & 0o077) !== 0 }
}

export async function main(argv: readonly string[]): Promise<number> {
  const env = process.env
  const program = new Command('edgent-agent')
    .description("Edgent device agent: runs the device prefix of the console's plan and co-infers over MQTT")
    .version(versionLine('edgent-agent'), '-V, --version', 'print the version (and Node and onnxruntime-node versions)')
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(`edgent-agent: ${s.replace(/^error: /, '').trim()}\n`) })
    .option('--broker <url>', 'console broker, mqtt://host:port', env['EDGENT_BROKER'])
    .option('--id <id>', "this agent's id (as paired)", env['EDGENT_AGENT_ID'])
    .option('--credentials <file>', 'the credentials file `edgent pair` wrote: id, broker, token and CA (mode 0600)', env['EDGENT_CREDENTIALS'])
    .option('--token-file <file>', 'a file holding the pairing token')
    // No default from EDGENT_TOKEN here: commander would print it in --help (read after parsing instead).
    .option('--token <token>', 'pairing token, or EDGENT_TOKEN (visible to other users in `ps`: prefer --credentials or --token-file)')
    .option('--ca <file>', "for mqtts://: the console's CA certificate (PEM) to pin")
    .option('--model-dir <dir>', "this agent's own model folder", env['EDGENT_MODEL_DIR'] ?? defaultModelDir())
    .option('--cache-dir <dir>', 'where models fetched from the console are kept', env['EDGENT_CACHE_DIR'] ?? defaultCacheDir())
    .option(
      '--uplink-kbps <kbps>',
      'emulate an uplink of this many kbit/s in the application (fallback when tc is unavailable)',
      positive,
      env['EDGENT_UPLINK_KBPS'] ? Number(env['EDGENT_UPLINK_KBPS']) : undefined
    )
    .option(
      '--slowdown <factor>',
      'emulate a CPU factor× slower: each device segment takes factor × its median compute time here (fallback when no cgroup quota)',
      positive
    )
    .option(
      '--codecs <list>',
      `the activation codecs this device offers to send (${CODECS.join(', ')}; f32 always): the console plans with these only`,
      codecList
    )
    .option('--emulation <json>', 'how this device is emulated, announced to the console (JSON)')
    .option('--log-level <level>', 'pino level', env['EDGENT_LOG_LEVEL'] ?? 'info')
    .option('--check', 'check this machine (architecture, runtime, model, one-sample timing) and exit')
    .option('--json', 'with --check: print the report as JSON')
    .option('--exit-with-parent', "exit when the process that started this one is gone (the console's local device)")
  try {
    program.parse([...argv], { from: 'user' })
  } catch (err) {
    if (err instanceof CommanderError) return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : 2
    throw err
  }
  const o = program.opts<{
    broker?: string
    id?: string
    token?: string
    tokenFile?: string
    credentials?: string
    ca?: string
    modelDir: string
    cacheDir: string
    uplinkKbps?: number
    slowdown?: number
    codecs?: Codec[]
    emulation?: string
    logLevel: string
    exitWithParent?: boolean
    check?: boolean
    json?: boolean
  }>()
  if (o.check) {
    const report = await runCheck(o.modelDir, o.json ? () => undefined : undefined)
    if (o.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`)
    return report.ok ? 0 : 1
  }
  const log = pino({ level: o.logLevel, base: { agent: o.id } }, pino.destination(2))
  try {
    let ca: string | undefined
    if (o.credentials) {
      const c = readCredentialsFile(o.credentials)
      if (c.worldReadable) log.warn({ file: o.credentials }, 'the credentials file is readable by other users: chmod 600 it')
      o.broker ??= c.broker
      o.id ??= c.id
      o.token ??= c.token
      ca = c.ca
    }
    if (o.tokenFile) {
      try {
        o.token = readFileSync(o.tokenFile, 'utf8').trim()
      } catch {
        throw new UserError(`cannot read --token-file ${o.tokenFile}`)
      }
    }
    o.token ??= env['EDGENT_TOKEN'] || undefined
    if (o.ca) {
      try {
        ca = readFileSync(o.ca, 'utf8')
      } catch {
        throw new UserError(`cannot read --ca ${o.ca}`)
      }
      if (!ca.includes('BEGIN CERTIFICATE')) throw new UserError(`--ca ${o.ca} is not a PEM certificate`)
    }
    if (!o.broker) throw new UserError('missing --broker mqtt://host:port (or EDGENT_BROKER)')
    if (!/^mqtts?:\/\//.test(o.broker)) throw new UserError(`--broker must be an mqtt:// or mqtts:// URL, got "${o.broker}"`)
    if (!o.id) throw new UserError('missing --id (or EDGENT_AGENT_ID)')
    checkAgentId(o.id)
    if (!o.token) throw new UserError('missing --credentials, --token-file or --token: run `edgent pair <id>` on the console')
    if (ca && !o.broker.startsWith('mqtts://')) throw new UserError(`a CA is pinned but --broker ${o.broker} is not mqtts://`)
    let emulation: Record<string, unknown> | undefined
    if (o.emulation) {
      try {
        emulation = JSON.parse(o.emulation) as Record<string, unknown>
      } catch {
        throw new UserError('--emulation must be JSON')
      }
    }
    const agent = new EdgentAgent({
      brokerUrl: o.broker,
      id: o.id,
      token: o.token,
      ...(ca ? { ca } : {}),
      modelDir: o.modelDir,
      cacheDir: o.cacheDir,
      log,
      // an emulated device (the console's local one, the testbed) is told how; a real Pi gets nothing
      ...(o.uplinkKbps || o.slowdown || emulation
        ? {
            emulation: new Emulation({
              ...(o.uplinkKbps ? { uplinkKbps: o.uplinkKbps } : {}),
              ...(o.slowdown ? { slowdown: o.slowdown } : {}),
              ...(emulation ? { description: emulation } : {}),
              log
            })
          }
        : {}),
      ...(o.codecs ? { codecs: o.codecs } : {})
    })
    await agent.start()
    let stopping = false
    const shutdown = async (signal: string) => {
      // once: a SIGINT from the terminal and the console's SIGTERM may both come (stopping twice
      // aborted in onnxruntime's native code)
      if (stopping) return
      stopping = true
      log.info({ signal }, 'stopping')
      await agent.stop().catch(() => undefined)
      process.exit(0)
    }
    if (o.exitWithParent) {
      // A console killed with SIGKILL cannot stop its local device: the device notices it was orphaned.
      const parent = process.ppid
      setInterval(() => {
        if (process.ppid !== parent) void shutdown('parent exited')
      }, 1000).unref()
    }
    process.on('SIGINT', () => void shutdown('SIGINT'))
    process.on('SIGTERM', () => void shutdown('SIGTERM'))
    return await new Promise<number>(() => undefined) // runs until a signal
  } catch (err) {
    if (err instanceof UserError) {
      process.stderr.write(`edgent-agent: ${err.message}\n`)
      return 2
    }
    throw err
  }
}

// Run when executed as the agent entry (out/main/agent.js), not when imported by tests.
if (process.argv[1] && /(^|[\\/])agent\.(js|ts)$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`edgent-agent: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
      process.exit(1)
    }
  )
}
