/**
 * Confidence exits end to end (issue 31): a console serving a model with measured policies, a real
 * agent process, aedes on loopback, onnxruntime on both sides. Frames leave at the first confident
 * exit on the device (a small report, nothing uploaded) or past the cut on the edge — each frame
 * where an independent run of every exit says it should — and forged early results are refused by name.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../../src/main/console/console.js'
import { OrtExecutor } from '../../../../src/main/runtime/executor.js'
import { defaultModelDir } from '../../../../src/main/runtime/paths.js'
import { loadManifest, readShippedSamples } from '../../../../src/main/runtime/files.js'
import { exitBranches, exitConfidence } from '../../../../src/shared/algorithms/exit-paths.js'
import { argmax, preprocess } from '../../../../src/shared/algorithms/preprocess.js'
import { encodeFrame } from '../../../../src/shared/contracts/frame.js'
import { topics } from '../../../../src/shared/contracts/topics.js'
import type { PlanPolicy } from '../../../../src/shared/contracts/messages.js'
import { deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../harness.js'

const THRESHOLDS = [0.9, null, 0.8, null, 0]
const T = [1.2, 1, 1.1, 1, 1]

/** The shipped 28×28 model with a confidence block (thresholds chosen here; the measurement itself is tested in policies.test.ts). */
function modelWithPolicy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'edgent-policy-model-'))
  cpSync(defaultModelDir(), dir, { recursive: true })
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'))
  m.confidence = {
    measure: 'max-softmax',
    temperatures: T,
    source: 'test',
    fitSamples: 100,
    heldOutSamples: 100,
    exitAccuracy: m.exits.map((e: { accuracy: number }) => e.accuracy),
    policies: [{ thresholds: THRESHOLDS, leave: [0.5, 0, 0.2, 0, 0.3], accuracy: 0.9, fitAccuracy: 0.9, macs: 1 }]
  }
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(m))
  return dir
}

describe('confidence exits across a real agent and console', () => {
  const dir = modelWithPolicy()
  const loaded = loadManifest(dir)
  const m = loaded.manifest
  const branches = exitBranches(m)
  // a cut after exit 1's branch point, before exit 3's: exit 1 is the device's, exits 3 and 5 the edge's
  const cut = branches[0]!.branchAt
  let core: EdgentConsole & { logPath: string }
  let agent: AgentProc | null = null
  let token = ''

  beforeAll(async () => {
    expect(branches[2]!.branchAt).toBeGreaterThan(cut)
    core = await startConsole({ modelDir: dir, policies: true })
    token = core.pair('pi-p').token
    agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'pi-p', token)
    await waitFor('pi-p online', () => deviceState(core, 'pi-p') === 'online')
  })
  afterAll(async () => {
    await stopAgent(agent)
    await core?.stop()
  })

  it('answers every frame at the first exit confident enough, on the side that holds it', async () => {
    const n = 60
    const { summary, rows } = await core.infer({
      agent: 'pi-p',
      count: n,
      latencyMs: 1000,
      uplinkKbps: 100_000,
      plan: { exit: 5, deviceLayers: cut, policy: 0 }
    })
    expect(summary).toMatchObject({ completed: n, lost: 0 })
    // independently: every exit on every frame, the first whose calibrated confidence reaches its threshold
    const policy: PlanPolicy = { index: 0, measure: 'max-softmax', thresholds: THRESHOLDS, temperatures: T }
    const samples = readShippedSamples(loaded)
    const ex = new OrtExecutor()
    await ex.start()
    await ex.openModel(dir)
    const want: { exit: number; label: number }[] = []
    for (let k = 0; k < n; k++) {
      const x = preprocess(m, samples.images.subarray(k * samples.imageElements, (k + 1) * samples.imageElements))
      for (const [j, e] of m.exits.entries()) {
        const t = THRESHOLDS[j]
        if (t === null) continue
        const scores = (await ex.runSegment(m.id, { exit: e.exit, from: 0, to: e.layers.length }, x)).output
        if (exitConfidence(m, policy, j, scores) >= t!) {
          want.push({ exit: e.exit, label: argmax(scores) })
          break
        }
      }
    }
    await ex.stop()
    expect(rows.map((r) => ({ exit: r.exit, label: r.predictedLabel }))).toEqual(want)
    for (const r of rows) {
      expect(r.side).toBe(r.exit === 1 ? 'device' : 'edge')
      if (r.side === 'device') {
        expect(r.uploadBytes).toBe(0)
        expect(r.edgeMs).toBe(0)
      } else expect(r.uploadBytes).toBeGreaterThan(0)
      expect(r.confidence).toBeGreaterThanOrEqual(THRESHOLDS[r.exit - 1] ?? 0)
    }
    // both sides answered some (the thresholds were chosen so)
    expect(new Set(rows.map((r) => r.side))).toEqual(new Set(['device', 'edge']))
    // the stored inferences name the exit that answered
    const stored = core.store.runs.inferences('pi-p', n)
    expect(stored.filter((s) => s.exit === 1).length).toBe(rows.filter((r) => r.exit === 1).length)
  })

  it('refuses an early result for an exit off the policy, on the wrong side, or with a confidence outside [0, 1], by name', async () => {
    await stopAgent(agent)
    agent = null
    const planId = core.planning.planIds('pi-p').at(-1)!
    const rogue = await mqtt.connectAsync(`mqtt://127.0.0.1:${core.mqttPort}`, { clientId: 'pi-p', username: 'pi-p', password: token, reconnectPeriod: 0 })
    const refusals: string[] = []
    rogue.on('message', (_t, p) => refusals.push(JSON.parse(p.toString()).refused ?? 'a result'))
    await rogue.subscribeAsync(topics.result('pi-p'), { qos: 1 })
    const report = (requestId: string, left: { exit: number; confidence: number }) =>
      encodeFrame(
        { requestId, planId, model: m.id, exit: 5, deviceLayers: cut, deviceMs: 1, sentAt: Date.now(), left },
        [1, 10],
        new Float32Array(10).fill(0.1)
      )
    for (const [id, left] of [
      ['off-path', { exit: 2, confidence: 0.99 }],
      ['wrong-side', { exit: 3, confidence: 0.99 }],
      ['too-sure', { exit: 1, confidence: 1.5 }],
      ['negative', { exit: 1, confidence: -0.2 }]
    ] as const)
      await rogue.publishAsync(topics.activation('pi-p'), Buffer.from(report(id, left)), { qos: 1 })
    await waitFor('four refusals', () => refusals.length >= 4, 10_000)
    rogue.end(true)
    expect(refusals).toEqual([
      "early result refused: exit 2 is not on the plan's path (its policy lets frames leave at exits 1, 3, 5)",
      `early result refused: exit 3 is evaluated on the edge under a cut after ${cut} layers, not on the device`,
      'early result refused: confidence 1.5 is not in [0, 1]',
      'early result refused: confidence -0.2 is not in [0, 1]'
    ])
  })
})
