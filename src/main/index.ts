/**
 * The Electron shell: the only main-process module that imports `electron`. In order: the console
 * stack (core, loopback API, local emulated device), the window (locked down), the IPC bridge (one
 * guarded handler per console API method) and the event forwarding to the window.
 */
import { app, BrowserWindow, ipcMain, session, shell, type WebContents } from 'electron'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { pino } from 'pino'
import { IPC_EVENT_CHANNEL } from '../shared/console-api.js'
import { errorMessage } from '../shared/errors.js'
import { CSP } from './shell/http-server.js'
import { ConsoleService } from './console/service.js'
import { DEFAULT_MQTTS_PORT, lanAddress, startStack, type Stack } from './shell/stack.js'
import { installProcessGuard } from './shell/process-guard.js'
import { registerIpcHandlers } from './ipc.js'
import { defaultModelDir } from './runtime/paths.js'

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

/** Session-wide rules: every permission request denied; the CSP header on every response. */
export function lockDownSession(): void {
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false))
  session.defaultSession.setPermissionCheckHandler(() => false)
  session.defaultSession.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: { ...details.responseHeaders, 'Content-Security-Policy': [CSP] } })
  })
}

let stack: Stack | null = null

async function boot(): Promise<void> {
  lockDownSession()
  const log = pino({ level: process.env['EDGENT_LOG_LEVEL'] ?? 'info' })
  stack = await startStack({
    mqttPort: Number(process.env['EDGENT_MQTT_PORT'] ?? 1883),
    // Pis connect over TLS; the plain listener is the console's own and the local device's (loopback).
    mqttHost: process.env['EDGENT_NO_MQTTS'] === '1' ? '0.0.0.0' : '127.0.0.1',
    mqttTlsPort: process.env['EDGENT_NO_MQTTS'] === '1' ? null : Number(process.env['EDGENT_MQTTS_PORT'] ?? DEFAULT_MQTTS_PORT),
    mqttTlsHost: '0.0.0.0',
    httpPort: Number(process.env['EDGENT_HTTP_PORT'] ?? 8080),
    dataDir: process.env['EDGENT_DATA_DIR'] ?? join(app.getPath('userData'), 'data'),
    localAgent: process.env['EDGENT_NO_LOCAL_AGENT'] !== '1',
    model: process.env['EDGENT_MODEL_DIR'] ?? defaultModelDir(),
    localUplinkKbps: 1000,
    localCpuQuota: 0.15,
    localCpu: 'slowdown',
    log
  })
  installProcessGuard(log)
  const core = stack.core
  const service = new ConsoleService(core, { shell: 'electron', brokerAddress: () => `${lanAddress()}:${core.mqttPort}` })
  registerIpcHandlers(ipcMain, service, { windowId: () => win?.webContents.id ?? null, rendererUrl: rendererUrl() })
  service.onEvent((event) => {
    const wc: WebContents | undefined = win?.webContents
    if (wc && !wc.isDestroyed()) wc.send(IPC_EVENT_CHANNEL, event)
  })
  createWindow()
}

if (!process.env['EDGENT_ELECTRON_NO_BOOT']) {
  void app
    .whenReady()
    .then(
      () => boot(),
      () => undefined
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
    const s = stack
    stack = null
    void s.stop().finally(() => app.quit())
  })
}
