/** `edgent serve` as a child process, for the tests that need the real shell (signals, crashes, hostile clients, the UI). */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findConsole, type ConsoleFile } from '../../src/main/shell/control-file.js'
import { freePort, root, waitFor } from './console/harness.js'

export const edgentBin = join(root, 'bin', 'edgent.js')

export interface ServeProcess {
  child: ChildProcess
  dataDir: string
  mqttPort: number
  httpPort: number
  control: ConsoleFile
  /** The URL that opens the console in a browser, as printed. */
  url: string
  /** What the console printed so far. */
  stdout(): string
  /** What the console wrote to stderr so far (its log). */
  stderr(): string
  /** Non-null once the console exited other than by a signal a test sent. */
  died(): string | null
  /** Sends a signal the test means (the exit it causes is not a death) and waits for the exit. */
  kill(signal: NodeJS.Signals): Promise<void>
  /** SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>
}

/**
 * Starts `edgent serve` on loopback with free ports (or the given ones) and waits until its control
 * file is written. `args` come after the defaults, so a test can override them (`--no-mqtts`).
 */
export async function startServe(
  o: { dataDir?: string; args?: string[]; logLevel?: string; mqttPort?: number; httpPort?: number; timeoutMs?: number } = {}
): Promise<ServeProcess> {
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), 'edgent-serve-'))
  const mqttPort = o.mqttPort ?? (await freePort())
  const httpPort = o.httpPort ?? (await freePort())
  const logs = mkdtempSync(join(tmpdir(), 'edgent-serve-log-'))
  const [outPath, errPath] = [join(logs, 'stdout.log'), join(logs, 'stderr.log')]
  const child = spawn(
    process.execPath,
    [
      edgentBin,
      'serve',
      '--data-dir',
      dataDir,
      '--mqtt-port',
      String(mqttPort),
      '--mqtt-host',
      '127.0.0.1',
      '--http-port',
      String(httpPort),
      '--mqtts-port',
      String(await freePort()),
      '--mqtts-host',
      '127.0.0.1',
      '--log-level',
      o.logLevel ?? 'warn',
      ...(o.args ?? [])
    ],
    { stdio: ['ignore', openSync(outPath, 'w'), openSync(errPath, 'w')] }
  )
  const stdout = () => readFileSync(outPath, 'utf8')
  const stderr = () => readFileSync(errPath, 'utf8')
  let died: string | null = null
  let signalled = false
  const exited = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      if (!signalled) died = `console exited by itself (code ${code}, signal ${signal}): ${stderr().slice(-2000)}`
      resolve()
    })
  )
  const kill = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return
    signalled = true
    child.kill(signal)
    await exited
  }
  const until = (what: string, probe: () => unknown) =>
    waitFor(
      what,
      () => {
        if (died) throw new Error(died)
        return probe()
      },
      o.timeoutMs ?? 90_000
    )
  const control = (await until('console up', () => findConsole(dataDir))) as ConsoleFile
  const url = (await until('the console URL', () => /open the console: (\S+)/.exec(stdout())?.[1])) as string
  return {
    child,
    dataDir,
    mqttPort,
    httpPort,
    control,
    url,
    stdout,
    stderr,
    died: () => died,
    kill,
    async stop() {
      const hard = setTimeout(() => child.kill('SIGKILL'), 5000)
      hard.unref()
      await kill('SIGTERM')
      clearTimeout(hard)
    }
  }
}
