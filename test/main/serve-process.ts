/** `edgent serve` as a child process, for the tests that need the real shell (signals, crashes, hostile clients). */
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
  /** What the console wrote to stderr so far (its log). */
  stderr(): string
  /** Non-null once the console exited other than by a signal a test sent. */
  died(): string | null
  /** SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>
}

export async function startServe(
  o: { dataDir?: string; args?: string[]; logLevel?: string; mqttPort?: number; httpPort?: number } = {}
): Promise<ServeProcess> {
  const dataDir = o.dataDir ?? mkdtempSync(join(tmpdir(), 'edgent-serve-'))
  const mqttPort = o.mqttPort ?? (await freePort())
  const httpPort = o.httpPort ?? (await freePort())
  const errPath = join(mkdtempSync(join(tmpdir(), 'edgent-serve-log-')), 'stderr.log')
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
      '--log-level',
      o.logLevel ?? 'warn',
      ...(o.args ?? [])
    ],
    { stdio: ['ignore', 'ignore', openSync(errPath, 'w')] }
  )
  const stderr = () => readFileSync(errPath, 'utf8')
  let died: string | null = null
  let signalled = false
  child.once('exit', (code, signal) => {
    if (!signalled) died = `console exited by itself (code ${code}, signal ${signal}): ${stderr().slice(-2000)}`
  })
  const control = await waitFor(
    'console up',
    () => {
      if (died) throw new Error(died)
      return findConsole(dataDir)
    },
    60_000
  )
  return {
    child,
    dataDir,
    mqttPort,
    httpPort,
    control,
    stderr,
    died: () => died,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      signalled = true
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve())
        child.kill('SIGTERM')
        setTimeout(() => child.kill('SIGKILL'), 5000).unref()
      })
    }
  }
}
