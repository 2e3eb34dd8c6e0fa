/**
 * The Electron shell: the only main-process module that imports `electron`. It opens the window
 * with a locked-down renderer; the console core and its API bridge arrive with the console issue.
 */
import { app, BrowserWindow, session, shell } from 'electron'
import { join } from 'node:path'

export const WEB_PREFERENCES = {
  preload: join(__dirname, '../preload/index.cjs'),
  contextIsolation: true,
  sandbox: true,
  nodeIntegration: false,
  webSecurity: true
} as const

function createWindow(): void {
  const win = new BrowserWindow({ width: 1280, height: 840, show: false, title: 'Edgent Console', webPreferences: WEB_PREFERENCES })
  win.once('ready-to-show', () => win.show())
  // Navigation and new windows are denied; external links open in the user's browser.
  win.webContents.on('will-navigate', (event) => event.preventDefault())
  win.webContents.setWindowOpenHandler(({ url }) => {
    if (url.startsWith('https://')) void shell.openExternal(url)
    return { action: 'deny' }
  })
  const devUrl = process.env['ELECTRON_RENDERER_URL']
  if (devUrl) void win.loadURL(devUrl)
  else void win.loadFile(join(__dirname, '../renderer/index.html'))
}

void app.whenReady().then(() => {
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false))
  createWindow()
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow()
  })
})

app.on('window-all-closed', () => {
  if (process.platform !== 'darwin') app.quit()
})
