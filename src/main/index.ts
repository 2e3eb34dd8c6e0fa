/**
 * The Electron shell: the only main-process module that imports `electron`. In order: the console
 * stack (core, loopback API, local emulated device), the window (locked down), the IPC bridge (one
 * guarded handler per console API method) and the event forwarding to the window.
 */
import { app, BrowserWindow, ipcMain, session, shell, type WebContents } from 'electron'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { pino } from 'pino'
import { IPC_EVENT_CHANNEL } from '../shared/contracts/console-api.js'
import { errorMessage } from '../shared/errors.js'
import { CSP } from './shell/http-server.js'
import { ConsoleService } from './console/api/service.js'
import { lanAddress, startStack, type Stack } from './shell/stack.js'
import { installProcessGuard } from './shell/process-guard.js'
import { desktopStackOptions, startupErrorPage, startupProblem } from './shell/desktop.js'
import { registerIpcHandlers } from './ipc.js'
import { packageRoot } from './runtime/paths.js'
import { findElectronSqliteBinding, selectSqliteBinding } from './runtime/native.js'
import { defaultDataDir, legacyDesktopDataDir } from './runtime/data-dir.js'

/** out/main when built (the preload and the renderer are its siblings). */
const here = dirname(fileURLToPath(import.meta.url))

export const WEB_PREFERENCES = {
  preload: join(here, '../preload/index.cjs'),
  contextIsolation: true,
  sandbox: true,
  nodeIntegration: false,
  webSecurity: true,
  allowRunningInsecureContent: false,
  webviewTag: false,
  spellcheck: false
} as const

/** The page the window shows: the dev server in development, else the built renderer. */
export function rendererUrl(): string {
  return process.env['ELECTRON_RENDERER_URL'] ?? pathToFileURL(join(here, '../renderer/index.html')).href
}

let win: BrowserWindow | null = null

export function createWindow(): BrowserWindow {
  const w = new BrowserWindow({ width: 1360, height: 900, show: false, title: 'Edgent Console', webPreferences: WEB_PREFERENCES })
  w.once('ready-to-show', () => w.show())
  // Navigation and new windows are denied; https links open in the user's browser.
  w.webContents.on('will-navigate', (event) => event.preventDefault())
  w.webContents.setWindowOpenHandler(({ url }) => {
    if (url.startsWith('https://')) void shell.openExternal(url)
    return { action: 'deny' }
  })
  void w.loadURL(rendererUrl())
  w.on('closed', () => {
    if (win === w) win = null
  })
  win = w
  return w
}

/** Permissions the console's own page may have: writing to the clipboard (the pairing command's Copy button). */
export const ALLOWED_PERMISSIONS: readonly string[] = ['clipboard-sanitized-write']

/** Session-wide rules: every permission request denied but ALLOWED_PERMISSIONS; the CSP header on every response. */
export function lockDownSession(): void {
  session.defaultSession.setPermissionRequestHandler((_wc, permission, callback) => callback(ALLOWED_PERMISSIONS.includes(permission)))
  session.defaultSession.setPermissionCheckHandler((_wc, permission) => ALLOWED_PERMISSIONS.includes(permission))
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CSP] } })
  })
}

let stack: Stack | null = null

/** The window when the console could not start: what went wrong and the fix. */
export function showStartupError(err: unknown): BrowserWindow {
  const w = new BrowserWindow({ width: 820, height: 520, show: false, title: 'Edgent Console — could not start', webPreferences: WEB_PREFERENCES })
  w.once('ready-to-show', () => w.show())
  w.webContents.on('will-navigate', (event) => event.preventDefault())
  w.webContents.setWindowOpenHandler(() => ({ action: 'deny' }))
  const page = startupErrorPage(startupProblem(err), 'the terminal that started the console (or journalctl)')
  void w.loadURL(`data:text/html;charset=utf-8,${encodeURIComponent(page)}`)
  return w
}

/** Starts the console stack and its window; a failed start shows its reason in a window instead. */
export async function boot(env: NodeJS.ProcessEnv = process.env): Promise<Stack | null> {
  lockDownSession()
  const log = pino({ level: env['EDGENT_LOG_LEVEL'] ?? 'info' })
  installProcessGuard(log)
  // better-sqlite3 built for Electron's ABI by `npm run rebuild:electron` (or packaged beside the app).
  const resources = (process as { resourcesPath?: string }).resourcesPath
  selectSqliteBinding(findElectronSqliteBinding([packageRoot(), ...(resources ? [resources] : [])]) ?? undefined)
  const legacy = legacyDesktopDataDir(env)
  if (legacy && legacy !== defaultDataDir(env))
    log.warn(
      { legacy, dataDir: defaultDataDir(env) },
      'an older desktop data directory exists: the desktop and the CLI now share one; move its files there to keep them'
    )
  try {
    stack = await startStack(desktopStackOptions(env, log))
  } catch (err) {
    log.error({ err: errorMessage(err) }, 'the console could not start')
    showStartupError(err)
    return null
  }
  const core = stack.core
  const running = stack
  const service = new ConsoleService(core, {
    shell: 'electron',
    brokerAddress: () => `${lanAddress(running.running().advertiseHost)}:${core.mqttPort}`,
    settings: { dataDir: running.dataDir, running: () => running.running() }
  })
  registerIpcHandlers(ipcMain, service, { windowId: () => win?.webContents.id ?? null, rendererUrl: rendererUrl() })
  service.onEvent((event) => {
    const wc: WebContents | undefined = win?.webContents
    if (wc && !wc.isDestroyed()) wc.send(IPC_EVENT_CHANNEL, event)
  })
  createWindow()
  return stack
}

/** Stops the stack (the app's will-quit). */
export async function shutdown(): Promise<void> {
  const s = stack
  stack = null
  await s?.stop()
}

if (!process.env['EDGENT_ELECTRON_NO_BOOT']) {
  void app
    .whenReady()
    .then(
      () => boot(),
      () => null
    )
    .catch((err: unknown) => {
      process.stderr.write(`edgent: ${errorMessage(err)}\n`)
      app.exit(1)
    })
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0 && stack) createWindow()
  })
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit()
  })
  app.on('will-quit', (event) => {
    if (!stack) return
    event.preventDefault()
    void shutdown().finally(() => app.quit())
  })
}
