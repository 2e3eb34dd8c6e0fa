/**
 * API calls longer than the idle timeout, and callers that go away (issue 35, item 6). `edgent infer`
 * longer than ~30 s ended "cannot reach the console (socket hang up)" — the API's idle timeout cut
 * the connection the answer was to come on — while the batch went on, and the next call found the
 * agent busy. Now the socket waits for the call, and a caller that goes away ends the batch after
 * its current inference (`stop-batch`), the rows done stored, the agent free at once.
 */
import { request, type ClientRequest } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ControlApi } from '../../../src/main/shell/http-server.js'
import { deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../console/harness.js'

function call(
  port: number,
  token: string,
  method: string,
  args: unknown
): { req: ClientRequest; answer: Promise<{ status: number; body: { ok: boolean; data?: unknown; error?: string } }> } {
  const body = JSON.stringify(args)
  let req!: ClientRequest
  const answer = new Promise<{ status: number; body: { ok: boolean; data?: unknown; error?: string } }>((resolve, reject) => {
    req = request(
      {
        host: '127.0.0.1',
        port,
        path: `/api/${method}`,
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-length': Buffer.byteLength(body) }
      },
      (res) => {
        let text = ''
        res.on('data', (d: Buffer) => (text += d.toString()))
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }))
      }
    )
    req.on('error', reject)
    req.end(body)
  })
  return { req, answer }
}

describe('long API calls', () => {
  let core: Awaited<ReturnType<typeof startConsole>>
  let api: ControlApi
  let agent: AgentProc | null = null
  const IDLE_MS = 1500

  beforeAll(async () => {
    core = await startConsole()
    api = new ControlApi(core, { host: '127.0.0.1', port: 0, dataDir: core.opts.dataDir, limits: { idleMs: IDLE_MS } })
    await api.start()
    agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'pi', core.pair('pi').token, ['--slowdown', '4'])
    await waitFor('pi online', () => deviceState(core, 'pi') === 'online', 30_000)
    await core.infer({ agent: 'pi', count: 5, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 5, deviceLayers: 24 } }) // warm
  }, 60_000)
  afterAll(async () => {
    await stopAgent(agent)
    await api?.stop()
    await core?.stop()
  })

  it('answers a call that takes longer than the idle timeout', async () => {
    const t0 = performance.now()
    const { answer } = call(api.port, api.token, 'infer', {
      agent: 'pi',
      count: 200,
      latencyMs: 1000,
      uplinkKbps: 100_000,
      plan: { exit: 5, deviceLayers: 24 }
    })
    const r = await answer
    const ms = performance.now() - t0
    console.info(`infer of 200 over the API: ${Math.round(ms)} ms against an idle timeout of ${IDLE_MS} ms`)
    expect(ms).toBeGreaterThan(IDLE_MS) // it did outlast the timeout
    expect(r.status).toBe(200)
    expect(r.body.data).toMatchObject({ summary: { completed: 200, lost: 0 } })
    expect((r.body.data as { summary: object }).summary).not.toHaveProperty('stopped')
  }, 120_000)

  it('ends the batch when its caller goes away, keeps the rows done, and leaves the agent free', async () => {
    const doneBefore = new Set(core.store.runs.withStatus('done'))
    const { req, answer } = call(api.port, api.token, 'infer', {
      agent: 'pi',
      count: 100_000,
      latencyMs: 1000,
      uplinkKbps: 100_000,
      plan: { exit: 5, deviceLayers: 24 }
    })
    answer.catch(() => undefined)
    await waitFor('pi busy', () => deviceState(core, 'pi') === 'busy', 20_000)
    await new Promise((r) => setTimeout(r, 500))
    const t0 = performance.now()
    req.destroy() // the CLI stopped (Ctrl-C), the page closed
    await waitFor('pi free again', () => deviceState(core, 'pi') === 'online', 10_000)
    console.info(`caller gone: agent free ${Math.round(performance.now() - t0)} ms later (was: busy with the rest of 100,000 inferences)`)
    // the rows done are stored as a finished run
    const stopped = await waitFor('the stopped run stored', () => core.store.runs.withStatus('done').find((id) => !doneBefore.has(id)), 10_000)
    const run = core.store.runs.run(stopped)!
    expect(run.inferences).toBeGreaterThan(0)
    expect(run.inferences).toBeLessThan(100_000)
    const next = await core.infer({ agent: 'pi', count: 5, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 5, deviceLayers: 24 } })
    expect(next.summary.completed).toBe(5)
  }, 60_000)
})
