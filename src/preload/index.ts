/**
 * The preload bridge (sandboxed): the console API as named methods, each one `ipcRenderer.invoke`
 * on its own channel, and `onEvent` returning its unsubscribe function. Never `ipcRenderer` itself
 * (STYLE.md, lesson 2). The renderer's type is `typeof api` = `ConsoleApi`.
 */
import { contextBridge, ipcRenderer, type IpcRendererEvent } from 'electron'
import {
  IPC_EVENT_CHANNEL,
  IPC_UPLOAD_CHANNEL,
  ipcChannel,
  type ArgsOf,
  type ConsoleApi,
  type ConsoleEvent,
  type MethodName,
  type ResultOf,
  type UploadView
} from '../shared/contracts/console-api.js'

const call =
  <M extends MethodName>(m: M) =>
  (args: ArgsOf<M>): Promise<ResultOf<M>> =>
    ipcRenderer.invoke(ipcChannel(m), args) as Promise<ResultOf<M>>

const api = {
  shell: 'electron' as const,
  status: call('status'),
  devices: call('devices'),
  pair: call('pair'),
  unpair: call('unpair'),
  workers: call('workers'),
  workerPair: call('workerPair'),
  workerUnpair: call('workerUnpair'),
  campaigns: call('campaigns'),
  campaignStart: call('campaignStart'),
  campaignStatus: call('campaignStatus'),
  campaignCancel: call('campaignCancel'),
  calibration: call('calibration'),
  modelInfo: call('modelInfo'),
  layerLatencies: call('layerLatencies'),
  costTable: call('costTable'),
  tail: call('tail'),
  load: call('load'),
  infer: call('infer'),
  inferences: call('inferences'),
  runs: call('runs'),
  annotate: call('annotate'),
  runCompare: call('runCompare'),
  bandwidth: call('bandwidth'),
  exportCalibration: call('exportCalibration'),
  profiles: call('profiles'),
  useProfile: call('useProfile'),
  models: call('models'),
  modelCuts: call('modelCuts'),
  modelUse: call('modelUse'),
  transfers: call('transfers'),
  modelImport: call('modelImport'),
  modelExitsAdd: call('modelExitsAdd'),
  modelJobs: call('modelJobs'),
  modelJobCancel: call('modelJobCancel'),
  exitPolicies: call('exitPolicies'),
  settings: call('settings'),
  settingsUpdate: call('settingsUpdate'),
  // IPC carries bytes: a File is read here (the page has checked its size against maxUploadBytes first).
  upload: async (data: ArrayBuffer | Blob, fileName: string) =>
    (await ipcRenderer.invoke(IPC_UPLOAD_CHANNEL, { fileName, data: data instanceof Blob ? await data.arrayBuffer() : data })) as UploadView,
  onEvent(listener: (event: ConsoleEvent) => void): () => void {
    const h = (_e: IpcRendererEvent, event: ConsoleEvent) => listener(event)
    ipcRenderer.on(IPC_EVENT_CHANNEL, h)
    return () => {
      ipcRenderer.removeListener(IPC_EVENT_CHANNEL, h)
    }
  }
} satisfies ConsoleApi

export type PreloadApi = typeof api

contextBridge.exposeInMainWorld('edgent', api)
