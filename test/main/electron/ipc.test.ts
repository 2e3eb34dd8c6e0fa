/**
 * The IPC guard: every console API handler refuses a foreign sender (another webContents, another
 * page, no frame) and invalid arguments, and passes a valid call from the console window through.
 */
import { describe, expect, it } from 'vitest'
import { IPC_UPLOAD_CHANNEL, METHOD_NAMES, ipcChannel, type MethodName } from '../../../src/shared/contracts/console-api.js'
import { ConsoleService } from '../../../src/main/console/api/service.js'
import type { EdgentConsole } from '../../../src/main/console/console.js'
import { registerIpcHandlers, trustedSender, type IpcEventLike } from '../../../src/main/ipc.js'

const RENDERER = 'file:///opt/edgent/out/renderer/index.html'
const WINDOW_ID = 3

function fakeIpc() {
  const handlers = new Map<string, (event: IpcEventLike, ...args: unknown[]) => unknown>()
  return {
    handlers,
    handle: (c: string, h: (event: IpcEventLike, ...args: unknown[]) => unknown) => void handlers.set(c, h),
    removeHandler: (c: string) => void handlers.delete(c)
  }
}

/** A core that fails the test if anything reaches it. */
const untouchable = new Proxy(
  {},
  {
    get: (_t, p) => {
      throw new Error(`core.${String(p)} reached past the guard`)
    }
  }
) as unknown as EdgentConsole

const good: IpcEventLike = { sender: { id: WINDOW_ID }, senderFrame: { url: RENDERER } }
const foreign: [string, IpcEventLike][] = [
  ['another webContents', { sender: { id: 99 }, senderFrame: { url: RENDERER } }],
  ['a web page', { sender: { id: WINDOW_ID }, senderFrame: { url: 'https://evil.example/index.html' } }],
  ['another local file', { sender: { id: WINDOW_ID }, senderFrame: { url: 'file:///tmp/evil.html' } }],
  ['no frame', { sender: { id: WINDOW_ID }, senderFrame: null }]
]
/** One invalid argument object per method (all schemas are strict objects). */
const INVALID: Record<MethodName, unknown> = {
  status: { extra: 1 },
  devices: 'all',
  pair: { id: 42 },
  unpair: {},
  workers: { all: true },
  workerPair: { id: 'w1', force: 'yes' },
  workerUnpair: { id: '' },
  campaigns: { page: 2 },
  campaignStart: { agent: 'pi-a', kind: 'layers', reps: 0 },
  campaignStatus: { id: '' },
  campaignCancel: { id: null },
  calibration: { campaign: 7 },
  modelInfo: [],
  layerLatencies: { agent: 'pi-a', exit: 0 },
  costTable: { agent: '' },
  tail: { agent: '', percentile: 95 },
  load: 'x',
  infer: { agent: 'pi-a', count: -1, latencyMs: 100 },
  inferences: { agent: 'pi-a', limit: 1e9 },
  runs: { tag: 'two words' },
  annotate: { target: 'run', id: 'r1' },
  runCompare: { a: 'r1' },
  bandwidth: { agent: 'pi-a', afterId: 1 },
  exportCalibration: { format: 'xml' },
  profiles: { agent: 'pi-a', all: true },
  useProfile: { agent: 'pi-a' },
  models: { all: true },
  modelCuts: { model: '../etc' },
  modelUse: { model: 'x', agent: 7 },
  transfers: { agent: 'pi-a' },
  modelImport: { upload: '../../etc/passwd', fileName: 'x.onnx' },
  modelExitsAdd: { model: 'camera', images: '../x', labels: 'y' },
  modelJobs: { extra: 1 },
  modelJobCancel: { job: 7 },
  exitPolicies: { agent: 'pi-1', auditShare: 2 },
  settings: { reset: true },
  settingsUpdate: { settings: { mqttPort: 70000 } }
}

describe('IPC handlers', () => {
  const ipc = fakeIpc()
  const service = new ConsoleService(untouchable, { shell: 'electron', brokerAddress: () => '127.0.0.1:1883' })
  const unregister = registerIpcHandlers(ipc, service, { windowId: () => WINDOW_ID, rendererUrl: RENDERER })

  it('registers exactly one handler per API method, and the upload channel', () => {
    expect([...ipc.handlers.keys()].sort()).toEqual([...METHOD_NAMES.map(ipcChannel), IPC_UPLOAD_CHANNEL].sort())
  })

  it('upload: refuses foreign senders and anything but {fileName, data}', async () => {
    const h = ipc.handlers.get(IPC_UPLOAD_CHANNEL)!
    for (const [what, ev] of foreign) {
      await expect(h(ev, { fileName: 'a.onnx', data: new ArrayBuffer(4) }), what).rejects.toThrow('upload: refused a file from a foreign sender')
    }
    for (const bad of [null, {}, { fileName: 'a.onnx' }, { fileName: 7, data: new ArrayBuffer(4) }, { fileName: 'a.onnx', data: 'AAAA' }]) {
      await expect(h(good, bad)).rejects.toThrow('upload: expected {fileName: string, data: ArrayBuffer}')
    }
  })

  for (const method of METHOD_NAMES) {
    it(`${method}: refuses foreign senders and invalid arguments`, async () => {
      const h = ipc.handlers.get(ipcChannel(method))!
      for (const [what, ev] of foreign) {
        await expect(h(ev, {}), what).rejects.toThrow(`${method}: refused a call from a foreign sender`)
      }
      await expect(h(good, INVALID[method])).rejects.toThrow(new RegExp(`^${method}: `))
    })
  }

  it('passes a valid call from the console window to the service', async () => {
    const calls: [string, unknown][] = []
    const ipc2 = fakeIpc()
    registerIpcHandlers(
      ipc2,
      {
        call: async (m: MethodName, a: unknown) => (calls.push([m, a]), { ok: true }) as never,
        upload: async (name: string, data: AsyncIterable<Uint8Array> | Uint8Array) => (
          calls.push(['upload', [name, (data as Uint8Array).length]]), { upload: 'u', fileName: name, bytes: 3 }
        )
      },
      { windowId: () => WINDOW_ID, rendererUrl: RENDERER }
    )
    await expect(ipc2.handlers.get(ipcChannel('devices'))!(good, {})).resolves.toEqual({ ok: true })
    await expect(ipc2.handlers.get(IPC_UPLOAD_CHANNEL)!(good, { fileName: 'm.onnx', data: new Uint8Array([1, 2, 3]).buffer })).resolves.toMatchObject({
      fileName: 'm.onnx'
    })
    expect(calls).toEqual([
      ['devices', {}],
      ['upload', ['m.onnx', 3]]
    ])
  })

  it('refuses everything before the window exists, and accepts the dev server origin in development', () => {
    expect(trustedSender(good, { windowId: () => null, rendererUrl: RENDERER })).toBe(false)
    const dev = { windowId: () => WINDOW_ID, rendererUrl: 'http://localhost:5173/' }
    expect(trustedSender({ sender: { id: WINDOW_ID }, senderFrame: { url: 'http://localhost:5173/#/planner' } }, dev)).toBe(true)
    expect(trustedSender({ sender: { id: WINDOW_ID }, senderFrame: { url: 'http://localhost:5174/' } }, dev)).toBe(false)
  })

  it('removes its handlers', () => {
    unregister()
    expect(ipc.handlers.size).toBe(0)
  })
})
