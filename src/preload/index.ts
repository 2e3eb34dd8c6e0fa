/**
 * The preload bridge: named methods only, never `ipcRenderer` itself (STYLE.md, lesson 2).
 * The console API is bridged here once the console core lands; until then it exposes the shell kind.
 */
import { contextBridge } from 'electron'

const api = {
  shell: 'electron' as const
}

export type PreloadApi = typeof api

contextBridge.exposeInMainWorld('edgent', api)
