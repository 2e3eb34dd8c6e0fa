/**
 * Edge workers (issue 34): `edgent worker` processes paired with a console, its own pool off, on the
 * embedded broker (aedes on loopback) with a real agent. Every edge run goes through the workers;
 * a SIGKILLed worker's runs are answered by another, each once; hostile worker input is refused by
 * name; a worker's credentials act as nothing else.
 */
import { readFileSync } from 'node:fs'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../src/main/console/console.js'
import { encodeTensorMessage, readTensorHead } from '../../../src/shared/contracts/frame.js'
import { topics, workerClientId, workerTopics, workerUsername } from '../../../src/shared/contracts/topics.js'
import { JobHeaderSchema, WORKER_DEAD_MS } from '../../../src/shared/contracts/worker-api.js'
import { deviceState, spawnAgent, spawnWorker, startConsole, stopAgent, unsplitLabels, waitFor, type AgentProc } from './harness.js'

const stopWorker = (w: AgentProc | null | undefined) =>
  new Promise<void>((resolve) => {
    if (!w || w.child.exitCode !== null || w.child.signalCode !== null) return resolve()
    w.child.once('exit', () => resolve())
    w.child.kill('SIGKILL')
  })

describe('edge workers behind the console', () => {
  let core: EdgentConsole & { logPath: string }
  let agent: AgentProc | null = null
  const workers = new Map<string, AgentProc>()
  let broker = ''
  const state = (id: string) => core.workers.list().find((w) => w.id === id)?.state

  beforeAll(async () => {
    // its own pool off: every edge run must go to a worker
    core = await startConsole({ localEdge: false })
    broker = `mqtt://127.0.0.1:${core.mqttPort}`
    for (const id of ['w1', 'w2']) workers.set(id, spawnWorker(broker, id, core.workers.pair(id).token))
    agent = spawnAgent(broker, 'pi-w', core.pair('pi-w').token)
    await waitFor('pi-w online', () => deviceState(core, 'pi-w') === 'online')
    await waitFor('both workers online', () => state('w1') === 'online' && state('w2') === 'online', 30_000)
  }, 60_000)
  afterAll(async () => {
    await stopAgent(agent)
    for (const w of workers.values()) await stopWorker(w)
    await core?.stop()
  })

  it('answers every frame through the workers, as the unsplit model does', async () => {
    const before = core.workers.counts.remote
    const { summary, rows } = await core.infer({ agent: 'pi-w', count: 40, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 5, deviceLayers: 4 } })
    expect(summary).toMatchObject({ completed: 40, lost: 0 })
    expect(rows.map((r) => r.predictedLabel)).toEqual(await unsplitLabels(5, 40))
    expect(core.workers.counts.remote - before).toBe(40)
    expect(core.workers.counts.local).toBe(0)
  }, 60_000)

  it('a SIGKILLed worker is noticed within 1–2 s and its runs answered by the other, none lost or doubled', async () => {
    const resentBefore = core.workers.counts.resent
    const run = core.infer({ agent: 'pi-w', count: 300, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 5, deviceLayers: 0 } })
    // the worker serving now (load-aware: the one answering first takes the sequential frames)
    const busy = await waitFor(
      'a worker answering',
      () => core.workers.list().find((w) => w.id !== 'console' && w.answered > 45 && w.state === 'online')?.id,
      30_000
    )
    const victim = workers.get(busy)!
    const killedAt = performance.now()
    victim.child.kill('SIGKILL')
    await waitFor(`${busy} declared dead`, () => state(busy) === 'dead', 10_000, 20)
    const noticedMs = performance.now() - killedAt
    const { summary, rows } = await run
    expect(summary).toMatchObject({ completed: 300, lost: 0 })
    expect(new Set(rows.map((r) => r.requestId)).size).toBe(300)
    expect(rows.map((r) => r.predictedLabel)).toEqual(await unsplitLabels(5, 300))
    // the heartbeat stops at once; the sweep runs every WORKER_DEAD_MS / 5 (~1.0–1.2 s here; a margin for a loaded machine)
    console.log(`worker ${busy} SIGKILLed: declared dead after ${noticedMs.toFixed(0)} ms`)
    expect(noticedMs).toBeLessThan(3000)
    expect(noticedMs).toBeGreaterThanOrEqual(WORKER_DEAD_MS - 300)
    expect(core.workers.counts.resent - resentBefore).toBeLessThanOrEqual(2)
    // restarted, it joins again and takes runs
    workers.set(busy, spawnWorker(broker, busy, core.workers.pair(busy, { force: true }).token))
    await waitFor(`${busy} back`, () => state(busy) === 'online', 30_000)
  }, 120_000)

  it('a SIGSTOPped worker is dead to the console until it beats again; its late answers are refused, every frame answered once', async () => {
    const run = core.infer({ agent: 'pi-w', count: 200, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 5, deviceLayers: 0 } })
    const start = new Map(core.workers.list().map((w) => [w.id, w.answered]))
    const busy = await waitFor(
      'a worker answering',
      () => core.workers.list().find((w) => w.id !== 'console' && w.answered > (start.get(w.id) ?? 0) + 5)?.id,
      30_000
    )
    const frozen = workers.get(busy)!
    frozen.child.kill('SIGSTOP')
    try {
      await waitFor(`${busy} declared dead`, () => state(busy) === 'dead', 10_000, 20)
    } finally {
      frozen.child.kill('SIGCONT')
    }
    const { summary, rows } = await run
    expect(summary).toMatchObject({ completed: 200, lost: 0 })
    expect(new Set(rows.map((r) => r.requestId)).size).toBe(200)
    expect(rows.map((r) => r.predictedLabel)).toEqual(await unsplitLabels(5, 200))
    // resumed, it beats again and is back
    await waitFor(`${busy} back`, () => state(busy) === 'online', 10_000)
  }, 120_000)

  it('a worker that joins is tried once, and a 20× slower one then takes almost nothing (load-aware)', async () => {
    workers.set('w-slow', spawnWorker(broker, 'w-slow', core.workers.pair('w-slow').token, ['--slowdown', '20']))
    await waitFor('w-slow online', () => state('w-slow') === 'online', 30_000)
    const { summary } = await core.infer({ agent: 'pi-w', count: 60, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 5, deviceLayers: 4 } })
    expect(summary).toMatchObject({ completed: 60, lost: 0 })
    const slow = core.workers.list().find((w) => w.id === 'w-slow')!
    expect(slow.answered).toBeGreaterThanOrEqual(1)
    expect(slow.answered).toBeLessThanOrEqual(3)
    await stopWorker(workers.get('w-slow')!)
  }, 60_000)

  it('refuses by name an answer to a job the worker was not given, and a malformed one; its credentials act as nothing else', async () => {
    const token = core.workers.pair('w-rogue').token
    const rogue = await mqtt.connectAsync(broker, {
      clientId: workerClientId('w-rogue'),
      username: workerUsername('w-rogue'),
      password: token,
      reconnectPeriod: 0
    })
    const refusedBefore = core.workers.counts.refused
    await rogue.publishAsync(workerTopics.health('w-rogue'), JSON.stringify({ seq: 1, queued: 0, running: 0, done: 0, loadavg: 0 }))
    await rogue.publishAsync(
      workerTopics.done('w-rogue'),
      Buffer.from(encodeTensorMessage({ jobId: 'never-given', ms: 1, queuedMs: 0 }, [1], new Float32Array(1)))
    )
    await rogue.publishAsync(workerTopics.done('w-rogue'), Buffer.alloc(32, 7)) // not a frame
    await waitFor('two refusals', () => core.workers.counts.refused - refusedBefore >= 2)
    const log = readFileSync(core.logPath, 'utf8')
    expect(log).toContain('answer to job \\"never-given\\", which worker w-rogue was not given')
    expect(log).toMatch(/"err":"frame: bad magic[^\n]*refused a worker answer/)
    // a flood of answers to jobs never given: each refused, the log a few lines
    for (let k = 0; k < 500; k++)
      rogue.publish(workerTopics.done('w-rogue'), Buffer.from(encodeTensorMessage({ jobId: `bogus-${k}`, ms: 1, queuedMs: 0 }, [1], new Float32Array(1))))
    await waitFor('500 more refusals', () => core.workers.counts.refused - refusedBefore >= 502, 30_000)
    const lines = readFileSync(core.logPath, 'utf8')
      .split('\n')
      .filter((l) => l.includes('w-rogue') && l.includes('refused a worker answer')).length
    expect(lines).toBeLessThanOrEqual(6)
    // another agent's topics: subscribing is refused (SUBACK 0x80), publishing drops the connection
    await expect(rogue.subscribeAsync(topics.result('pi-w'))).rejects.toThrow(/Subscribe error/)
    await expect(rogue.subscribeAsync(workerTopics.job('w1'))).rejects.toThrow(/Subscribe error/)
    expect(await rogue.subscribeAsync(workerTopics.job('w-rogue'))).toMatchObject([{ qos: 0 }])
    const closed = new Promise<void>((r) => rogue.once('close', () => r()))
    rogue.publish(topics.activation('pi-w'), Buffer.from('x'), { qos: 1 })
    await closed
    rogue.end(true)
    // nor act as the console: a result to an agent drops the connection too
    const again = await mqtt.connectAsync(broker, {
      clientId: workerClientId('w-rogue'),
      username: workerUsername('w-rogue'),
      password: token,
      reconnectPeriod: 0
    })
    const closedAgain = new Promise<void>((r) => again.once('close', () => r()))
    again.publish(topics.result('pi-w'), Buffer.from('{}'), { qos: 1 })
    await closedAgain
    again.end(true)
    // a worker's token is not an agent's, nor a wrong one a worker's, nor an unpaired id's
    const refusedLogin = async (o: mqtt.IClientOptions) => {
      const c = mqtt.connect(broker, { ...o, reconnectPeriod: 0 })
      const err = await new Promise<Error>((r) => c.once('error', r))
      c.end(true)
      return err.message
    }
    expect(await refusedLogin({ clientId: 'w-rogue', username: 'w-rogue', password: token })).toMatch(/Bad username or password|Not authorized/)
    expect(await refusedLogin({ clientId: workerClientId('w-rogue'), username: workerUsername('w-rogue'), password: `${token}x` })).toMatch(
      /Bad username or password|Not authorized/
    )
    expect(await refusedLogin({ clientId: workerClientId('nobody'), username: workerUsername('nobody'), password: token })).toMatch(
      /Bad username or password|Not authorized/
    )
    expect(await refusedLogin({ clientId: 'someone-else', username: workerUsername('w-rogue'), password: token })).toMatch(/Identifier rejected|Not authorized/)
    // agent ids that would take over a worker's (or the console's) connection cannot be paired
    expect(() => core.pair('edgent-worker-w1')).toThrow(/reserved/)
    // the co-inference still answers
    const { summary } = await core.infer({ agent: 'pi-w', count: 5, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 5, deviceLayers: 4 } })
    expect(summary).toMatchObject({ completed: 5, lost: 0 })
  }, 60_000)

  it('refuses an answer shaped unlike the segment’s output, and has the run answered by another worker', async () => {
    const liar = await mqtt.connectAsync(broker, {
      clientId: workerClientId('w-liar'),
      username: workerUsername('w-liar'),
      password: core.workers.pair('w-liar').token,
      reconnectPeriod: 0
    })
    let given = 0
    liar.on('message', (_t, payload) => {
      const head = readTensorHead(new Uint8Array(payload), { maxPayloadBytes: 1 << 24 }, JobHeaderSchema, 'job')
      given++
      liar.publish(workerTopics.done('w-liar'), Buffer.from(encodeTensorMessage({ jobId: head.header.jobId, ms: 0.01, queuedMs: 0 }, [1], new Float32Array(1))))
    })
    await liar.subscribeAsync(workerTopics.job('w-liar'), { qos: 1 })
    const model = core.model.id
    const hello = {
      schema: 1,
      workerId: 'w-liar',
      version: 'x',
      pool: 1,
      cpus: 1,
      models: [{ id: model, sha256: core.models.get(model).package.sha256 }],
      startedAt: new Date().toISOString()
    }
    await liar.publishAsync(workerTopics.hello('w-liar'), JSON.stringify(hello), { retain: true, qos: 1 })
    let seq = 0
    const beat = setInterval(() => liar.publish(workerTopics.health('w-liar'), JSON.stringify({ seq: ++seq, queued: 0, running: 0, done: 0, loadavg: 0 })), 200)
    try {
      await waitFor('w-liar online', () => core.workers.list().find((w) => w.id === 'w-liar')?.state === 'online')
      const { summary, rows } = await core.infer({ agent: 'pi-w', count: 10, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 5, deviceLayers: 4 } })
      expect(summary).toMatchObject({ completed: 10, lost: 0 })
      expect(rows.map((r) => r.predictedLabel)).toEqual(await unsplitLabels(5, 10))
      // tried once (it never answered before), refused, its run answered by another worker, then benched
      expect(given).toBe(1)
      expect(core.workers.list().find((w) => w.id === 'w-liar')!.refused).toBe(1)
      expect(readFileSync(core.logPath, 'utf8')).toMatch(/worker w-liar answered job \S+ with dims \[1\], not the segment's output \[1, 10\]/)
    } finally {
      clearInterval(beat)
      await liar.endAsync(true)
    }
  }, 60_000)
})
