/**
 * The desktop shell's start, with `electron` faked (its binary cannot run here) and everything else
 * real: the console stack on the data directory the CLI uses, the local device spawned through a
 * stand-in "Electron binary" that only runs JavaScript as Node with ELECTRON_RUN_AS_NODE=1, the CLI
 * finding the desktop console, the lock refusing a second one, and each start-up failure shown in
 * the window.
 */
import { execFile } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { deviceState, freePort, waitFor } from '../console/harness.js'
import { edgentBin } from '../serve-process.js'

const run = promisify(execFile)
type Handler = (...args: unknown[]) => unknown
const windows: { title: string; loaded: string | null }[] = []

vi.mock('electron', () => {
  class BrowserWindow {
    static getAllWindows = () => []
    webContents = { id: 3, on: () => undefined, setWindowOpenHandler: () => undefined, isDestroyed: () => false, send: () => undefined }
    private rec: (typeof windows)[number]
    constructor(o: { title: string }) {
      this.rec = { title: o.title, loaded: null }
      windows.push(this.rec)
    }
    once() {}
    on() {}
    loadURL(url: string) {
      this.rec.loaded = url
      return Promise.resolve()
    }
  }
  return {
    app: { whenReady: () => new Promise(() => undefined), on: () => undefined, quit: () => undefined, exit: () => undefined },
    BrowserWindow,
    ipcMain: { handle: (_c: string, _h: Handler) => undefined, removeHandler: () => undefined },
    shell: { openExternal: () => Promise.resolve() },
    session: {
      defaultSession: {
        setPermissionRequestHandler: () => undefined,
        setPermissionCheckHandler: () => undefined,
        webRequest: { onHeadersReceived: () => undefined }
      }
    }
  }
})

/** The HTML a window shows when it loaded a data: URL. */
const pageOf = (w: (typeof windows)[number] | undefined) => decodeURIComponent((w?.loaded ?? '').replace(/^data:text\/html;charset=utf-8,/, ''))

describe('the desktop shell (electron faked)', () => {
  let shell: typeof import('../../../src/main/index.js')
  const home = mkdtempSync(join(tmpdir(), 'edgent-desktop-'))
  const xdg = join(home, 'share')
  const dataDir = join(xdg, 'edgent-console')
  let env: NodeJS.ProcessEnv
  let taken: Server

  beforeAll(async () => {
    process.env['EDGENT_ELECTRON_NO_BOOT'] = '1'
    shell = await import('../../../src/main/index.js')
    env = {
      XDG_DATA_HOME: xdg,
      XDG_CONFIG_HOME: join(home, 'config'),
      EDGENT_MQTT_PORT: String(await freePort()),
      EDGENT_MQTTS_PORT: String(await freePort()),
      EDGENT_HTTP_PORT: String(await freePort()),
      EDGENT_LOG_LEVEL: 'warn'
    }
    taken = createServer()
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()))
  })
  afterAll(async () => {
    await shell.shutdown()
    taken.close()
  })

  it('starts the console on the shared data directory, its local device run by Electron as Node, and the CLI finds it', async () => {
    // A stand-in for Electron's binary: as Node only with ELECTRON_RUN_AS_NODE=1, else it "opens an app" and fails.
    const fakeElectron = join(home, 'electron')
    writeFileSync(
      fakeElectron,
      `#!/bin/sh\necho "ELECTRON_RUN_AS_NODE=$ELECTRON_RUN_AS_NODE $*" >> "${fakeElectron}.log"\n[ "$ELECTRON_RUN_AS_NODE" = 1 ] || { echo "fake electron: would open an app window" >&2; exit 9; }\nexec "${process.execPath}" "$@"\n`
    )
    chmodSync(fakeElectron, 0o755)
    const realExecPath = process.execPath
    Object.defineProperty(process.versions, 'electron', { value: '45.0.0', configurable: true })
    process.execPath = fakeElectron
    let stack: Awaited<ReturnType<typeof shell.boot>>
    try {
      stack = await shell.boot(env)
    } finally {
      process.execPath = realExecPath
      delete (process.versions as Record<string, string | undefined>)['electron']
    }
    expect(stack, pageOf(windows.at(-1))).not.toBeNull()
    expect(stack!.dataDir).toBe(dataDir)
    expect(windows.at(-1)!.loaded).toMatch(/renderer[\\/]index\.html$/)
    await waitFor('local-pi online', () => deviceState(stack!.core, 'local-pi') === 'online', 30_000)
    // The device was started through the "Electron binary", as Node, on the built agent.
    expect(readFileSync(`${fakeElectron}.log`, 'utf8')).toMatch(/^ELECTRON_RUN_AS_NODE=1 \S*out\/main\/agent\.js --exit-with-parent/)
    // The CLI, with no --data-dir, talks to the desktop console.
    const { stdout } = await run(process.execPath, [edgentBin, 'devices', '--json'], { env: { ...process.env, ...env, EDGENT_DATA_DIR: '' } })
    expect((JSON.parse(stdout) as { id: string; state: string }[]).find((d) => d.id === 'local-pi')?.state).toBe('online')
    const lock = JSON.parse(readFileSync(join(dataDir, 'console.lock'), 'utf8')) as { pid: number; shell: string }
    expect(lock).toMatchObject({ pid: process.pid, shell: 'desktop' })
  }, 60_000)

  const failedBoot = async (over: NodeJS.ProcessEnv) => {
    const before = windows.length
    expect(await shell.boot({ ...env, ...over })).toBeNull()
    expect(windows.length).toBe(before + 1)
    const w = windows.at(-1)!
    expect(w.title).toContain('could not start')
    return pageOf(w)
  }

  it('refuses a second console on the same data directory, naming the one that holds it', async () => {
    const page = await failedBoot({ EDGENT_MQTT_PORT: String(await freePort()), EDGENT_HTTP_PORT: String(await freePort()) })
    expect(page).toContain(`a console is already running on ${dataDir}`)
    expect(page).toContain(`the desktop console, pid ${process.pid}`)
    expect(page).toContain('To fix:')
  })

  it('shows a taken port, an unwritable data directory, a corrupt and a locked database in the window with the fix', async () => {
    const port = (taken.address() as { port: number }).port
    const other = () => join(mkdtempSync(join(tmpdir(), 'edgent-desktop-other-')), 'data')
    const fresh = async () => ({ EDGENT_MQTTS_PORT: String(await freePort()), EDGENT_HTTP_PORT: String(await freePort()), EDGENT_NO_LOCAL_AGENT: '1' })

    let page = await failedBoot({ ...(await fresh()), EDGENT_DATA_DIR: other(), EDGENT_MQTT_PORT: String(port) })
    expect(page).toContain(`MQTT port ${port}`)
    expect(page).toMatch(/To fix:.*--mqtt-port/)

    const file = join(home, 'a-file')
    writeFileSync(file, 'x')
    page = await failedBoot({ ...(await fresh()), EDGENT_DATA_DIR: join(file, 'data') })
    expect(page).toContain(`data directory ${join(file, 'data')} is not writable`)
    expect(page).toContain('To fix:')

    const corrupt = other()
    mkdirSync(corrupt, { recursive: true })
    writeFileSync(join(corrupt, 'edgent.db'), Buffer.alloc(8192, 7))
    page = await failedBoot({ ...(await fresh()), EDGENT_DATA_DIR: corrupt, EDGENT_MQTT_PORT: String(await freePort()) })
    expect(page).toContain(`database ${join(corrupt, 'edgent.db')} is corrupt or not an SQLite database`)
    expect(page).toMatch(/To fix:.*move it aside/)
    expect(readFileSync(join(corrupt, 'edgent.db'))).toEqual(Buffer.alloc(8192, 7)) // nothing written over it

    const locked = other()
    mkdirSync(locked, { recursive: true })
    const holder = new Database(join(locked, 'edgent.db'))
    holder.exec('CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1)')
    try {
      page = await failedBoot({ ...(await fresh()), EDGENT_DATA_DIR: locked, EDGENT_MQTT_PORT: String(await freePort()) })
    } finally {
      holder.exec('ROLLBACK')
      holder.close()
    }
    expect(page).toContain(`database ${join(locked, 'edgent.db')} is locked by another process`)
    expect(page).toContain('To fix:')
  }, 60_000)
})

describe('a native addon built for another runtime, in the desktop', () => {
  it('is named in one sentence with the Electron fix, on the start-up page', async () => {
    const { abiMismatch } = await import('../../../src/main/runtime/native.js')
    const { startupErrorPage, startupProblem } = await import('../../../src/main/shell/desktop.js')
    const { UserError } = await import('../../../src/shared/errors.js')
    // Node's own wording for an addon of another ABI.
    const err = new Error(
      "The module '/x/better_sqlite3.node'\nwas compiled against a different Node.js version using\nNODE_MODULE_VERSION 137. This version of Node.js requires\nNODE_MODULE_VERSION 140. Please try re-compiling or re-installing\nthe module (for instance, using `npm rebuild` or `npm install`)."
    )
    const message = abiMismatch(err, true)!
    expect(message).toBe(
      "better-sqlite3's native addon was built for another runtime (ABI 137; this Electron needs 140): run `npm run rebuild:electron` in the edgent-console folder (needs the network once), then start the console again"
    )
    const page = startupErrorPage(startupProblem(new UserError(message)), 'the log')
    expect(page).toContain('To fix:</b> run `npm run rebuild:electron`')
    expect(abiMismatch(new Error('SQLITE_CORRUPT'), true)).toBeNull()
  })
})
