/**
 * The latency sources and planning of one console, without a broker or an agent: a real store (a
 * SQLite file), the shipped model opened in a real ORT pool, and a device whose `profile-layers`
 * answer is the edge's own table three times slower (what an agent would measure on a slower CPU).
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import type { AgentRequest, LayerTable } from '../../../src/shared/contracts/agent-api.js'
import type { Hello } from '../../../src/shared/contracts/messages.js'
import { LatencySources } from '../../../src/main/console/features/latency-sources.js'
import { Models } from '../../../src/main/console/features/models.js'
import { Planning } from '../../../src/main/console/features/planning.js'
import { OrtExecutor } from '../../../src/main/runtime/executor.js'
import { defaultModelDir } from '../../../src/main/runtime/paths.js'
import { Store } from '../../../src/main/store/store.js'

export interface SourcesFixture {
  store: Store
  executor: OrtExecutor
  models: Models
  sources: LatencySources
  planning: Planning
  /** Retained publishes the planning made: topic and JSON payload. */
  published: { topic: string; payload: Record<string, unknown> }[]
  /** The agent commands asked of the fake device. */
  requests: string[]
  hellos: Map<string, Hello>
  stop(): Promise<void>
}

export async function sourcesFixture(): Promise<SourcesFixture> {
  const dataDir = mkdtempSync(join(tmpdir(), 'edgent-sources-'))
  const log = pino({ level: 'silent' })
  const store = new Store(join(dataDir, 'edgent.db'))
  store.start()
  const executor = new OrtExecutor({ workers: 1 })
  await executor.start()
  const models = new Models({ modelDir: defaultModelDir(), dataDir, executor, store, log })
  await models.start()
  const requests: string[] = []
  const hellos = new Map<string, Hello>()
  const published: SourcesFixture['published'] = []
  let sources: LatencySources | null = null
  const request = (async (agentId: string, command: string) => {
    requests.push(`${agentId} ${command}`)
    if (command !== 'profile-layers') throw new Error(`the fake device does not answer ${command}`)
    const edge = sources!.edgeTable()
    const x3 = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, 3 * v]))
    return { model: edge.model, layerMs: x3(edge.layerMs), exitFusedMs: x3(edge.exitFusedMs), reps: edge.reps } satisfies LayerTable
  }) as unknown as AgentRequest
  sources = new LatencySources({
    store,
    executor,
    models,
    log,
    request,
    ensureOnAgent: async () => undefined,
    profileReps: 2,
    maxUploadBytes: 2 * 1024 * 1024,
    hello: (id) => hellos.get(id) ?? null
  })
  const planning = new Planning({
    store,
    sources,
    emit: () => undefined,
    log,
    publishRetained: async (topic, payload) => void published.push({ topic, payload: JSON.parse(Buffer.from(payload).toString()) as Record<string, unknown> }),
    maxUploadBytes: 2 * 1024 * 1024,
    hello: (id) => hellos.get(id) ?? null
  })
  await sources.start()
  planning.start()
  return {
    store,
    executor,
    models,
    sources,
    planning,
    published,
    requests,
    hellos,
    async stop() {
      planning.stop()
      sources!.stop()
      models.stop()
      await executor.stop()
      store.stop()
    }
  }
}
