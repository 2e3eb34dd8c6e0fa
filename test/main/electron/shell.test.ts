/**
 * The Electron shell with the `electron` module faked (its binary cannot run here): the window's
 * webPreferences, navigation and new-window denial, permission denial and the CSP header.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest'

type Handler = (...args: unknown[]) => unknown
const made: { options: Record<string, unknown>; on: Map<string, Handler>; openHandler: Handler | null; loaded: string | null }[] = []
const session = { permission: null as Handler | null, check: null as Handler | null, headers: null as Handler | null }
const opened: string[] = []

vi.mock('electron', () => {
  class BrowserWindow {
    static getAllWindows = () => []
    webContents: Record<string, unknown>
    private rec: (typeof made)[number]
    constructor(options: Record<string, unknown>) {
      this.rec = { options, on: new Map(), openHandler: null, loaded: null }
      made.push(this.rec)
      this.webContents = {
        id: 7,
        on: (ev: string, h: Handler) => this.rec.on.set(ev, h),
        setWindowOpenHandler: (h: Handler) => (this.rec.openHandler = h)
      }
    }
    once() {}
    on() {}
    loadURL(url: string) {
      this.rec.loaded = url
      return Promise.resolve()
    }
  }
  return {
    app: { whenReady: () => new Promise(() => undefined), on: () => undefined, getPath: () => '/tmp', quit: () => undefined, exit: () => undefined },
    BrowserWindow,
    ipcMain: { handle: () => undefined, removeHandler: () => undefined },
    shell: { openExternal: (u: string) => (opened.push(u), Promise.resolve()) },
    session: {
      defaultSession: {
        setPermissionRequestHandler: (h: Handler) => (session.permission = h),
        setPermissionCheckHandler: (h: Handler) => (session.check = h),
        webRequest: { onHeadersReceived: (h: Handler) => (session.headers = h) }
      }
    }
  }
})

describe('the Electron shell (electron faked)', () => {
  let shellModule: typeof import('../../../src/main/index.js')
  beforeAll(async () => {
    process.env['EDGENT_ELECTRON_NO_BOOT'] = '1'
    shellModule = await import('../../../src/main/index.js')
  })

  it('opens the window with context isolation, the sandbox, no Node integration and the CJS preload', () => {
    shellModule.createWindow()
    const prefs = made[0]!.options['webPreferences'] as Record<string, unknown>
    expect(prefs).toMatchObject({
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      webviewTag: false
    })
    expect(String(prefs['preload'])).toMatch(/[\\/]preload[\\/]index\.cjs$/)
    expect(made[0]!.loaded).toMatch(/^file:\/\/.*[\\/]renderer[\\/]index\.html$/)
  })

  it("denies navigation and new windows (https links go to the user's browser)", () => {
    const w = made[0]!
    let prevented = false
    w.on.get('will-navigate')!({ preventDefault: () => (prevented = true) }, 'https://evil.example/')
    expect(prevented).toBe(true)
    expect(w.openHandler!({ url: 'https://example.org/docs' })).toEqual({ action: 'deny' })
    expect(w.openHandler!({ url: 'file:///etc/passwd' })).toEqual({ action: 'deny' })
    expect(opened).toEqual(['https://example.org/docs'])
  })

  it('denies every permission request and check, and sets the Content-Security-Policy header', () => {
    shellModule.lockDownSession()
    const answers: boolean[] = []
    for (const p of ['media', 'geolocation', 'notifications', 'clipboard-read']) session.permission!({}, p, (ok: boolean) => answers.push(ok))
    expect(answers).toEqual([false, false, false, false])
    expect(session.check!({}, 'media')).toBe(false)
    // The one exception: the page may write to the clipboard (the pairing command's Copy button).
    session.permission!({}, 'clipboard-sanitized-write', (ok: boolean) => answers.push(ok))
    expect(answers.at(-1)).toBe(true)
    expect(session.check!({}, 'clipboard-sanitized-write')).toBe(true)
    let headers: Record<string, string[]> = {}
    session.headers!({ responseHeaders: { 'x-a': ['1'] } }, (r: { responseHeaders: Record<string, string[]> }) => (headers = r.responseHeaders))
    expect(headers['x-a']).toEqual(['1'])
    expect(headers['Content-Security-Policy']![0]).toMatch(/default-src 'self'; script-src 'self'/)
  })
})
