/** Test harness: a real console (aedes on loopback, ORT worker, SQLite file) and real agent processes. */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { DEFAULT_CONSOLE, EdgentConsole, type ConsoleOptions } from '../../../src/main/console/console.js'
import type { CampaignStatus } from '../../../src/shared/contracts/console-api.js'
import { defaultModelDir, packageRoot } from '../../../src/main/runtime/paths.js'
import { loadManifest, readShippedSamples } from '../../../src/main/runtime/files.js'
import { OrtExecutor } from '../../../src/main/runtime/executor.js'
import { argmax, preprocess } from '../../../src/shared/algorithms/preprocess.js'

export const root = packageRoot()
export const agentEntry = join(root, 'out', 'main', 'agent.js')

export function logFile(name: string): string {
  return join(mkdtempSync(join(tmpdir(), `edgent-${name}-`)), 'console.log')
}

export async function startConsole(over: Partial<ConsoleOptions> = {}): Promise<EdgentConsole & { logPath: string }> {
  if (!existsSync(agentEntry)) throw new Error('out/main/agent.js is missing: npm test builds it first (npm run build)')
  const dataDir = mkdtempSync(join(tmpdir(), 'edgent-console-'))
  const logPath = join(dataDir, 'console.log')
  const core = new EdgentConsole({
    ...DEFAULT_CONSOLE,
    dataDir,
    modelDir: defaultModelDir(),
    mqttHost: '127.0.0.1',
    mqttPort: 0,
    profileReps: 2,
    probeIntervalMs: 0,
    // the tests of static planning say so; the confidence exits' own tests turn policies on
    policies: false,
    log: pino({ level: 'debug' }, pino.destination({ dest: logPath, sync: true })),
    ...over
  })
  await core.start()
  return Object.assign(core, { logPath })
}

export interface AgentProc {
  child: ChildProcess
  stderr: () => string
}

export function spawnAgent(
  broker: string,
  id: string,
  token: string,
  extra: string[] = [],
  prefix: string[] = [],
  run: { node?: string; entry?: string } = {}
): AgentProc {
  let err = ''
  const args = [
    ...prefix,
    run.node ?? process.execPath,
    run.entry ?? agentEntry,
    '--broker',
    broker,
    '--id',
    id,
    '--token',
    token,
    '--log-level',
    'info',
    // Each agent its own empty model cache, unless the test names one.
    ...(extra.includes('--cache-dir') ? [] : ['--cache-dir', mkdtempSync(join(tmpdir(), `edgent-agent-cache-${id}-`))]),
    ...extra
  ]
  const child = spawn(args[0]!, args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  return { child, stderr: () => err }
}

/** An `edgent worker` process (issue 34), its token in the environment; `models`: a model folder (default: the 28×28 model). */
export function spawnWorker(broker: string, id: string, token: string, extra: string[] = [], models = defaultModelDir()): AgentProc {
  let err = ''
  const child = spawn(process.execPath, [join(root, 'bin', 'edgent.js'), 'worker', '--broker', broker, '--id', id, '--models', models, ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, EDGENT_WORKER_TOKEN: token }
  })
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  return { child, stderr: () => err }
}

export async function stopAgent(a: AgentProc | null | undefined): Promise<void> {
  if (!a || a.child.exitCode !== null || a.child.signalCode !== null) return
  await new Promise<void>((resolve) => {
    a.child.once('exit', () => resolve())
    a.child.kill('SIGTERM')
    setTimeout(() => a.child.kill('SIGKILL'), 5000)
  })
}

export async function waitFor<T>(what: string, probe: () => T | undefined | null | false, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const v = probe()
    if (v) return v
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

export function deviceState(core: EdgentConsole, id: string): string | undefined {
  return core.devices().find((d) => d.id === id)?.state
}

/** Labels of the unsplit model for the first n shipped samples of an exit, computed independently. */
export async function unsplitLabels(exit: number, n: number): Promise<number[]> {
  const loaded = loadManifest(defaultModelDir())
  const { manifest } = loaded
  const samples = readShippedSamples(loaded)
  const ex = new OrtExecutor()
  await ex.start()
  await ex.openModel(loaded.dir)
  const N = manifest.exits.find((e) => e.exit === exit)!.layers.length
  const out: number[] = []
  for (let k = 0; k < n; k++) {
    const x = preprocess(manifest, samples.images.subarray(k * samples.imageElements, (k + 1) * samples.imageElements))
    out.push(argmax((await ex.runSegment(manifest.id, { exit, from: 0, to: N }, x)).output))
  }
  await ex.stop()
  return out
}

export { freePort } from '../../../src/main/testbed/load.js'

/** A campaign's status once it has stopped running (done, failed, cancelled…). */
export function campaignFinished(core: EdgentConsole, id: string, timeoutMs = 240_000): Promise<CampaignStatus> {
  return waitFor(
    `campaign ${id} finished`,
    () => {
      const s = core.campaigns.status(id)!
      return s.status !== 'running' && s
    },
    timeoutMs
  )
}
