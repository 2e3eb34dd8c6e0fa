/**
 * Model distribution end to end (real console on loopback aedes, real agent processes with empty
 * caches): a console serving an imported DAG model (two exits, a residual block; samples kept beside
 * it) sends it to two agents at once, in 4 KiB chunks. One agent's connection is dropped mid-transfer
 * and resumes where it was; one chunk to the other is corrupted on the way and refused. Both end up
 * holding exactly the library's files; then 200 co-inferences at a middle cut equal the unsplit
 * model's outputs, checked per request id.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { importModel } from '../../../../src/main/models/library.js'
import { OrtExecutor } from '../../../../src/main/runtime/executor.js'
import { loadManifest, readModelSamples } from '../../../../src/main/runtime/files.js'
import { exitPath } from '../../../../src/shared/contracts/manifest.js'
import { decodeChunk, packageBytes, type Chunk } from '../../../../src/shared/contracts/model-transfer.js'
import { encodeJson } from '../../../../src/shared/contracts/messages.js'
import { topics } from '../../../../src/shared/contracts/topics.js'
import { preprocess } from '../../../../src/shared/algorithms/preprocess.js'
import { multiExit } from '../../../fixtures/dag.js'
import { shippedSubset } from '../../../fixtures/samples.js'
import { spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../harness.js'

const tmp = (p: string) => mkdtempSync(join(tmpdir(), p))

describe('model distribution', () => {
  let core: Awaited<ReturnType<typeof startConsole>>
  const agents: AgentProc[] = []
  const dataDir = tmp('edgent-dist-')
  const caches = { 'pi-x': tmp('edgent-cache-x-'), 'pi-y': tmp('edgent-cache-y-') }
  /** Data bytes sent in chunks, per agent. */
  const sentBytes = new Map<string, number>()
  const results = new Map<string, number[]>()
  const sampleOf = new Map<string, number>()
  let dropped = false
  let corrupted = false
  /** Agents whose chunks are held back (ms each), to make a transfer last. */
  const slow = new Map<string, number>()

  beforeAll(async () => {
    const ex = new OrtExecutor()
    await ex.start()
    const f = multiExit()
    const file = join(tmp('edgent-dist-src-'), 'multi-exit.onnx')
    writeFileSync(file, f.bytes)
    await importModel({ file, dataDir, ...shippedSubset(tmp('edgent-dist-set-'), 60) }, ex)
    await ex.stop()
    core = await startConsole({ dataDir, transferChunkBytes: 4096 })
    // Faults on the way to the agents, injected where the console hands messages to MQTT.
    const publish = core.link.publish.bind(core.link)
    core.link.publish = (topic, payload, opts) => {
      const agent = topic.split('/')[3]!
      if (topic.endsWith('/chunk') && slow.has(agent)) {
        const ms = slow.get(agent)!
        slow.delete(agent) // the next call is the delayed one
        setTimeout(() => {
          core.link.publish(topic, payload, opts)
          slow.set(agent, ms)
        }, ms)
        return
      }
      if (topic.endsWith('/chunk')) {
        const c = decodeChunk(payload)
        if (c.header.file) {
          sentBytes.set(agent, (sentBytes.get(agent) ?? 0) + c.data.length)
          if (agent === 'pi-y' && !corrupted && c.header.offset >= 8192) {
            corrupted = true
            const bad = payload.slice()
            bad[bad.length - 1]! ^= 0xff // one flipped bit pattern in the data
            return publish(topic, bad, opts)
          }
          if (agent === 'pi-x' && !dropped && c.header.offset >= 12_288) {
            dropped = true
            publish(topic, payload, opts)
            core.broker!.disconnect('pi-x') // the connection drops mid-transfer
            return
          }
        }
      }
      if (topic.endsWith('/result')) {
        const r = JSON.parse(Buffer.from(payload).toString()) as { requestId: string; scores: number[] }
        results.set(r.requestId, r.scores)
      }
      return publish(topic, payload, opts)
    }
    core.on('frame', (f: { header: { requestId: string; sample?: number } }) => sampleOf.set(f.header.requestId, f.header.sample!))
    await core.assignModel(null, 'multi-exit')
    for (const id of ['pi-x', 'pi-y'] as const) {
      const { token } = core.pair(id)
      agents.push(spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, id, token, ['--cache-dir', caches[id]]))
    }
  }, 60_000)

  afterAll(async () => {
    for (const a of agents) await stopAgent(a)
    await core?.stop()
  })

  it('two agents with empty caches fetch it at once: a dropped connection resumes, a corrupted chunk is refused', async () => {
    const m = core.models.get('multi-exit')
    const total = packageBytes(m.package)
    expect(m.package.files.map((f) => f.name).sort()).toEqual(['manifest.json', 'model.onnx', 'samples-images-idx3-ubyte', 'samples-labels-idx1-ubyte'])
    expect(total).toBeGreaterThan(10 * 4096) // many chunks
    for (const id of ['pi-x', 'pi-y']) {
      await waitFor(`${id} holds multi-exit`, () => core.distribution.holds(id, m), 90_000)
    }
    expect(dropped && corrupted).toBe(true)
    // Resumed, not restarted: pi-x was sent the model once, plus at most the chunks lost with the connection.
    expect(sentBytes.get('pi-x')!).toBeLessThan(total + 3 * 4096)
    expect(agents[1]!.stderr()).toMatch(/model chunk refused: asking for it again/)
    expect(agents[1]!.stderr()).toMatch(/chunk SHA-256 [0-9a-f]{12}… is not the/)
    // Each cache holds exactly the library's files, checked, and nothing partial.
    for (const id of ['pi-x', 'pi-y'] as const) {
      const folder = join(caches[id], `multi-exit-${m.package.sha256.slice(0, 12)}`)
      for (const f of m.package.files) {
        expect(
          createHash('sha256')
            .update(readFileSync(join(folder, f.name)))
            .digest('hex'),
          `${id} ${f.name}`
        ).toBe(f.sha256)
      }
      expect(readdirSync(join(caches[id], '.partial'))).toEqual([])
    }
    expect(core.devices().find((d) => d.id === 'pi-x')).toMatchObject({
      model: 'multi-exit',
      modelAssigned: false,
      transfer: { state: 'done', model: 'multi-exit' }
    })
  }, 120_000)

  it('200 co-inferences at a middle cut of the imported DAG equal the unsplit model', async () => {
    const m = core.models.get('multi-exit')
    const exit = m.manifest.exits.at(-1)!.exit
    const N = exitPath(m.manifest, exit).length
    const cut = Math.floor(N / 2)
    expect(cut).toBeGreaterThan(0)
    const { summary, rows } = await core.infer({ agent: 'pi-x', count: 200, latencyMs: 10_000, uplinkKbps: 100_000, plan: { exit, deviceLayers: cut } })
    expect(summary).toMatchObject({ completed: 200, lost: 0, plan: { exit, deviceLayers: cut } })
    expect(core.devices().find((d) => d.id === 'pi-x')!.plan).toMatchObject({ model: 'multi-exit', modelSha256: m.package.sha256 })
    // The unsplit model on the same samples, computed here.
    const ex = new OrtExecutor()
    await ex.start()
    await ex.openModel(m.dir)
    const set = readModelSamples(loadManifest(m.dir))
    let worst = 0
    for (const r of rows) {
      const k = sampleOf.get(r.requestId)!
      const x = preprocess(m.manifest, set.images.subarray(k * set.imageElements, (k + 1) * set.imageElements))
      const whole = (await ex.runSegment(m.id, { exit, from: 0, to: N }, x)).output
      const got = results.get(r.requestId)!
      expect(got).toHaveLength(whole.length)
      for (let i = 0; i < whole.length; i++) worst = Math.max(worst, Math.abs(got[i]! - whole[i]!))
    }
    await ex.stop()
    expect(new Set(rows.map((r) => r.requestId)).size).toBe(200)
    expect(worst).toBeLessThanOrEqual(1e-4)
    expect(existsSync(join(caches['pi-x'], '.partial'))).toBe(true)
  }, 120_000)

  it('answers a fetch only for the model an agent is planned with, and only with its package files', async () => {
    const { token } = core.pair('pi-z')
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${core.mqttPort}`, { clientId: 'pi-z', username: 'pi-z', password: token, protocolVersion: 4 })
    try {
      const got: Chunk[] = []
      c.on('message', (_t, p) => got.push(decodeChunk(p)))
      await c.subscribeAsync(topics.chunk('pi-z'), { qos: 1 })
      const m = core.models.get('multi-exit')
      const other = core.models.get('branchy-alexnet')
      const ask = (transfer: string, body: Record<string, unknown>) =>
        c.publishAsync(topics.fetch('pi-z'), JSON.stringify({ schema: 1, transfer, model: m.id, sha256: m.package.sha256, ...body }), { qos: 1 })
      await ask('a', { model: other.id, sha256: other.package.sha256, file: 'model.onnx' })
      await ask('b', { file: 'edgent.db' })
      await ask('c', { file: 'model.onnx', offset: 10 ** 9 })
      await ask('d', { file: '../edgent.db' }) // not even a file name: dropped, logged
      await c.publishAsync(topics.fetch('pi-z'), 'not json', { qos: 1 })
      await ask('e', { file: 'manifest.json', length: 100 })
      await waitFor('four answers', () => got.length >= 4, 10_000)
      const by = Object.fromEntries(got.map((g) => [g.header.transfer, g]))
      expect(by['a']!.header.error).toMatch(/agent pi-z is planned with multi-exit .*, not branchy-alexnet/)
      expect(by['b']!.header.error).toMatch(/model multi-exit has no file "edgent.db" \(files: model.onnx, manifest.json, /)
      expect(by['c']!.header.error).toMatch(/offset 1000000000 is past the end of multi-exit\/model.onnx/)
      expect(by['d']).toBeUndefined()
      expect(by['e']!.data).toHaveLength(100)
      expect(Buffer.from(by['e']!.data).toString()).toBe(readFileSync(join(m.dir, 'manifest.json'), 'utf8').slice(0, 100))
      expect(readFileSync(core.logPath, 'utf8')).toMatch(/refused model fetch/)
    } finally {
      await c.endAsync()
    }
  }, 30_000)

  it('an agent restarted mid-transfer resumes from the bytes on disk, and never runs a plan for a model it does not hold yet', async () => {
    const m = core.models.get('multi-exit')
    const total = packageBytes(m.package)
    const cache = mkdtempSync(join(tmpdir(), 'edgent-cache-w-'))
    const { token } = core.pair('pi-w')
    slow.set('pi-w', 150)
    const url = `mqtt://127.0.0.1:${core.mqttPort}`
    let w = spawnAgent(url, 'pi-w', token, ['--cache-dir', cache])
    agents.push(w)
    await waitFor('pi-w fetching', () => (sentBytes.get('pi-w') ?? 0) >= 4096, 30_000)
    // A plan for the model it is still fetching: kept, not followed.
    const N = exitPath(m.manifest, 2).length
    await core.link.publishAsync(
      topics.plan('pi-w'),
      encodeJson({
        schema: 1,
        planId: 'p-early',
        model: m.id,
        modelSha256: m.package.sha256,
        exit: 2,
        deviceLayers: 1,
        layers: N,
        latencyMs: 1000,
        uplinkKbps: 1000,
        predictedMs: 1,
        feasible: true
      }),
      { qos: 1, retain: true }
    )
    await expect(core.request('pi-w', 'run-batch', { runId: 'early', count: 1 }, 10_000)).rejects.toThrow(
      /plan p-early needs model multi-exit, which is still being fetched \(\d+ of \d+ bytes\)/
    )
    await waitFor('a third of the model sent', () => (sentBytes.get('pi-w') ?? 0) >= total / 3, 60_000)
    w.child.kill('SIGKILL')
    await new Promise((r) => w.child.once('exit', r))
    const before = sentBytes.get('pi-w')!
    slow.delete('pi-w')
    w = spawnAgent(url, 'pi-w', token, ['--cache-dir', cache])
    agents.push(w)
    await waitFor('pi-w holds multi-exit', () => core.distribution.holds('pi-w', m), 60_000)
    // (its log line may reach this process after the console learnt it holds the model: a loaded CI run read it too early)
    const line = await waitFor(
      'the agent logged the fetch',
      () =>
        w
          .stderr()
          .split('\n')
          .find((l) => l.includes('model fetched and loaded')),
      30_000
    )
    const stats = JSON.parse(line) as { resumedBytes: number; fetchedBytes: number }
    expect(stats.resumedBytes).toBeGreaterThan(0)
    expect(stats.resumedBytes + stats.fetchedBytes).toBe(total)
    expect(sentBytes.get('pi-w')! - before).toBeLessThan(total) // not sent again from the start
    // Once held, the plan received before is followed.
    await waitFor('plan followed', () => core.devices().find((d) => d.id === 'pi-w')?.reportedPlanId === 'p-early', 20_000)
  }, 120_000)
})
