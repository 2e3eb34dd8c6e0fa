/**
 * Admin work off the broker's thread (issue 30, item 5): while the console imports a 10,000-node
 * chain model through its API (graph analysis and the shape probe in the admin worker, linear-time
 * passes), the API keeps answering and a connected agent stays online; a 131-byte model declaring a
 * 16384×16384 input is refused by its size before anything is allocated. Before: the import blocked
 * the event loop for 26–38 s (agents timed out their keepalive) and the big input cost 3.5 GB of RSS.
 *
 * The target is 250 ms for the slowest API answer (measured, and stated in the note); the
 * assertion allows 1 s so that a loaded 2-core machine cannot fail it, which still fails the old code
 * by more than an order of magnitude.
 */
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GraphBuilder } from '../../../src/shared/onnx/onnx-builder.js'
import { ControlApi } from '../../../src/main/shell/http-server.js'
import { MAX_INPUT_ELEMENTS } from '../../../src/main/models/draft.js'
import { deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from './harness.js'

function post(
  port: number,
  path: string,
  token: string,
  body: Uint8Array | string
): Promise<{ status: number; body: { ok: boolean; data?: unknown; error?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = ''
        res.on('data', (d: Buffer) => (text += d.toString()))
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }))
      }
    )
    req.on('error', reject)
    req.end(body)
  })
}

function chain(n: number): Uint8Array {
  const b = new GraphBuilder('chain')
  let x = 'input'
  for (let i = 0; i < n; i++) x = b.relu(x)
  const out = b.flatten(x)
  return b.build('input', [1, 1, 4, 4], [{ name: out, dims: [1, 16] }])
}

describe('admin work off the broker thread', () => {
  let core: Awaited<ReturnType<typeof startConsole>>
  let api: ControlApi
  let agent: AgentProc | null = null
  const call = (method: string, args: unknown) => post(api.port, `/api/${method}`, api.token, JSON.stringify(args))

  beforeAll(async () => {
    core = await startConsole()
    api = new ControlApi(core, { host: '127.0.0.1', port: 0, dataDir: core.opts.dataDir })
    await api.start()
    agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'pi', core.pair('pi').token)
    await waitFor('pi online', () => deviceState(core, 'pi') === 'online', 30_000)
  })
  afterAll(async () => {
    await stopAgent(agent)
    await api?.stop()
    await core?.stop()
  })

  it('imports a 10,000-node model while the API answers and the agent stays online', async () => {
    const bytes = chain(10_000)
    const up = await post(api.port, '/upload?name=chain10k.onnx', api.token, bytes)
    expect(up.status).toBe(200)
    const upload = (up.body.data as { upload: string }).upload
    let slowest = 0
    let answers = 0
    const states = new Set<string>()
    let importing = true
    const poll = (async () => {
      while (importing) {
        const t0 = performance.now()
        const r = await call('devices', {})
        slowest = Math.max(slowest, performance.now() - t0)
        answers++
        expect(r.status).toBe(200)
        states.add(deviceState(core, 'pi') ?? 'unknown')
        await new Promise((res) => setTimeout(res, 25))
      }
    })()
    const t0 = performance.now()
    const r = await call('modelImport', { upload, fileName: 'chain10k.onnx', accuracy: [0.5] }).finally(() => (importing = false))
    const took = performance.now() - t0
    await poll
    expect(r.body.error).toBeUndefined()
    expect(r.body.data).toMatchObject({ id: 'chain10k', layers: 10_001 })
    console.info(`10k-node import ${took.toFixed(0)} ms; ${answers} API answers meanwhile, slowest ${slowest.toFixed(0)} ms; agent states ${[...states]}`)
    expect(answers).toBeGreaterThan(3)
    expect(slowest).toBeLessThan(1000)
    expect(states.has('offline')).toBe(false)
  })

  it('refuses a model declaring a 16384×16384 input by its size, before allocating it', async () => {
    const b = new GraphBuilder('huge')
    const out = b.relu('input')
    const bytes = b.build('input', [1, 1, 16384, 16384], [{ name: out, dims: [1, 1, 16384, 16384] }])
    expect(bytes.length).toBeLessThan(200)
    const up = await post(api.port, '/upload?name=huge.onnx', api.token, bytes)
    const before = process.memoryUsage().rss
    const r = await call('modelImport', { upload: (up.body.data as { upload: string }).upload, fileName: 'huge.onnx', accuracy: [0.5] })
    expect(r.status).toBe(400)
    expect(r.body.error).toBe(
      `import: the input 1x1x16384x16384 has 268,435,456 elements, over the cap of ${MAX_INPUT_ELEMENTS.toLocaleString('en')} (64 MiB of float32)`
    )
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 2 ** 20)
    expect(deviceState(core, 'pi')).not.toBe('offline')
  })
})
