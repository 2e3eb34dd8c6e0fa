/**
 * What researchers expect beside the console (issue 35, item 10): the HTTP API described by an
 * OpenAPI document generated from the very schemas the console validates calls with, and metrics
 * for Prometheus on the loopback port (co-inference, plans, the edge's load, each device).
 */
import { z } from 'zod'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { API_SCHEMAS } from '../../../src/main/console/api/api-schemas.js'
import { ControlApi } from '../../../src/main/shell/http-server.js'
import { METHOD_NAMES } from '../../../src/shared/contracts/console-api.js'
import { deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../console/harness.js'

describe('OpenAPI and Prometheus', () => {
  let core: Awaited<ReturnType<typeof startConsole>>
  let api: ControlApi
  let agent: AgentProc | null = null
  const base = () => `http://127.0.0.1:${api.port}`

  beforeAll(async () => {
    core = await startConsole()
    api = new ControlApi(core, { host: '127.0.0.1', port: 0, dataDir: core.opts.dataDir })
    await api.start()
    agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'pi', core.pair('pi').token)
    await waitFor('pi online', () => deviceState(core, 'pi') === 'online', 30_000)
  }, 60_000)
  afterAll(async () => {
    await stopAgent(agent)
    await api?.stop()
    await core?.stop()
  })

  it('describes every method with the schema it is validated with', async () => {
    const res = await fetch(`${base()}/openapi.json`)
    expect(res.status).toBe(200)
    const doc = (await res.json()) as { openapi: string; paths: Record<string, { post: { requestBody: { content: Record<string, { schema: unknown }> } } }> }
    expect(doc.openapi).toBe('3.1.0')
    expect(Object.keys(doc.paths).sort()).toEqual(METHOD_NAMES.map((m) => `/api/${m}`).sort())
    for (const m of METHOD_NAMES) {
      const { $schema: _s, ...expected } = z.toJSONSchema(API_SCHEMAS[m] as z.ZodType, { unrepresentable: 'any', io: 'input' }) as Record<string, unknown>
      expect(doc.paths[`/api/${m}`]!.post.requestBody.content['application/json']!.schema, m).toEqual(expected)
    }
    const infer = doc.paths['/api/infer']!.post.requestBody.content['application/json']!.schema as {
      required: string[]
      properties: Record<string, { exclusiveMinimum?: number }>
    }
    expect(infer.required).toEqual(expect.arrayContaining(['agent', 'count', 'latencyMs']))
    // what the document says is refused, the console refuses
    expect(infer.properties['count']!.exclusiveMinimum).toBe(0)
    const refused = await fetch(`${base()}/api/infer`, {
      method: 'POST',
      headers: { authorization: `Bearer ${api.token}` },
      body: JSON.stringify({ agent: 'pi', count: 0, latencyMs: 100 })
    })
    expect(refused.status).toBe(400)
  })

  it('serves Prometheus metrics with the token: co-inference, plans, the edge, each device', async () => {
    expect((await fetch(`${base()}/metrics`)).status).toBe(401)
    await core.infer({ agent: 'pi', count: 20, latencyMs: 1000, uplinkKbps: 100_000 })
    const res = await fetch(`${base()}/metrics`, { headers: { authorization: `Bearer ${api.token}` } })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await res.text()
    expect(text).toContain('edgent_inferences_total{agent="pi"} 20')
    expect(text).toMatch(/^edgent_plans_total\{agent="pi"\} [1-9]\d*$/m)
    expect(text).toMatch(/^edgent_batch_e2e_p95_ms\{agent="pi"\} \d+(\.\d+)?$/m)
    expect(text).toContain('edgent_device_online{agent="pi"} 1')
    expect(text).toMatch(/^edgent_edge_workers [1-9]$/m)
    expect(text).toContain('edgent_device_calibration_stale{agent="pi"} 0')
    // every sample line is "name{labels} value" after its HELP and TYPE
    for (const line of text.split('\n').filter((l) => l && !l.startsWith('#'))) expect(line).toMatch(/^edgent_[a-z0-9_]+(\{[^}]*\})? -?[\d.e+-]+$/)
  }, 60_000)
})
