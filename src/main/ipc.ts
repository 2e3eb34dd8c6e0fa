/**
 * The console API over Electron IPC: one `ipcMain.handle` per method (channels from
 * src/shared/contracts/console-api.ts), each behind one guard that checks the sender — the console's own
 * window, showing the console's own page — before the service validates the arguments.
 * No `electron` import here: the Electron entry passes `ipcMain` in, so tests pass a fake.
 */
import { IPC_UPLOAD_CHANNEL, METHOD_NAMES, ipcChannel, type MethodName, type UploadView } from '../shared/contracts/console-api.js'
import { UserError } from '../shared/errors.js'
import type { ConsoleService } from './console/api/service.js'

export interface IpcEventLike {
  sender: { id: number }
  senderFrame: { url: string } | null
}

export interface IpcMainLike {
  handle(channel: string, listener: (event: IpcEventLike, ...args: unknown[]) => unknown): void
  removeHandler(channel: string): void
}

export interface SenderPolicy {
  /** The webContents id of the console window (null until it exists). */
  windowId: () => number | null
  /** The page the window loads: file:// URL of out/renderer/index.html, or the dev server's origin. */
  rendererUrl: string
}

/** True when the event comes from the console window's top page at the console's own URL. */
export function trustedSender(event: IpcEventLike, policy: SenderPolicy): boolean {
  const id = policy.windowId()
  if (id === null || event.sender.id !== id) return false
  const url = event.senderFrame?.url
  if (!url) return false
  let got: URL
  let want: URL
  try {
    got = new URL(url)
    want = new URL(policy.rendererUrl)
  } catch {
    return false
  }
  if (want.protocol === 'file:') return got.protocol === 'file:' && got.pathname === want.pathname
  return got.origin === want.origin
}

export class IpcRefusal extends Error {}

/** Registers one guarded handler per API method, and the upload channel; returns a function that removes them all. */
export function registerIpcHandlers(ipcMain: IpcMainLike, service: Pick<ConsoleService, 'call' | 'upload'>, policy: SenderPolicy): () => void {
  for (const method of METHOD_NAMES) {
    ipcMain.handle(ipcChannel(method), async (event, args) => {
      if (!trustedSender(event, policy)) {
        throw new IpcRefusal(`${method}: refused a call from a foreign sender (${event.senderFrame?.url ?? 'no frame'})`)
      }
      return service.call(method as MethodName, args)
    })
  }
  ipcMain.handle(IPC_UPLOAD_CHANNEL, async (event, raw): Promise<UploadView> => {
    if (!trustedSender(event, policy)) throw new IpcRefusal(`upload: refused a file from a foreign sender (${event.senderFrame?.url ?? 'no frame'})`)
    const a = raw as { fileName?: unknown; data?: unknown } | null
    if (!a || typeof a.fileName !== 'string' || !(a.data instanceof ArrayBuffer || ArrayBuffer.isView(a.data))) {
      throw new UserError('upload: expected {fileName: string, data: ArrayBuffer}')
    }
    const d = a.data
    return service.upload(a.fileName, d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength))
  })
  return () => {
    for (const method of METHOD_NAMES) ipcMain.removeHandler(ipcChannel(method))
    ipcMain.removeHandler(IPC_UPLOAD_CHANNEL)
  }
}
