/**
 * The control file, `<data dir>/console.json` (mode 0600): how the CLI finds the console running on a
 * data directory — its pid, ports and the control API's bearer token. Written by the headless
 * server when it listens, removed when it stops.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface ConsoleFile {
  pid: number
  httpPort: number
  mqttPort: number
  /** MQTT over TLS, when the embedded broker has it. */
  mqttTlsPort?: number
  token: string
  startedAt: string
}

const fileOf = (dataDir: string) => join(dataDir, 'console.json')

export function writeControlFile(dataDir: string, f: ConsoleFile): void {
  writeFileSync(fileOf(dataDir), JSON.stringify(f, null, 2), { mode: 0o600 })
}

export function removeControlFile(dataDir: string): void {
  rmSync(fileOf(dataDir), { force: true })
}

/** The running console of a data directory, if any (its console.json and a live pid). */
export function findConsole(dataDir: string): ConsoleFile | null {
  let f: ConsoleFile
  try {
    f = JSON.parse(readFileSync(fileOf(dataDir), 'utf8')) as ConsoleFile
  } catch {
    return null
  }
  try {
    process.kill(f.pid, 0)
  } catch {
    return null
  }
  return f
}
