/**
 * Confidence exits run by onnxruntime (issue 31): runWithPolicy over the camera model's real
 * segments — a static policy is exactly its exit, a frame leaves at the first confident exit, an
 * audited frame runs to the final exit recording every head.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { OrtExecutor } from '../../../src/main/runtime/executor.js'
import { loadManifest, readShippedSamples } from '../../../src/main/runtime/files.js'
import { preprocess } from '../../../src/shared/algorithms/preprocess.js'
import { exitConfidence, exitSchedule, runWithPolicy, type RunSegment } from '../../../src/shared/algorithms/exit-paths.js'
import type { PlanPolicy } from '../../../src/shared/contracts/messages.js'
import { measurePieces } from '../../../src/main/runtime/layer-timer.js'

const dir = join(__dirname, '..', '..', '..', 'resources', 'models', 'branchy-resnet96')
const loaded = loadManifest(dir)
const m = loaded.manifest
const samples = readShippedSamples(loaded)
const input = (k: number) => preprocess(m, samples.images.subarray(k * samples.imageElements, (k + 1) * samples.imageElements))
const T = [0.9, 1, 1.1, 1.25, 1.4]
const policy = (thresholds: (number | null)[]): PlanPolicy => ({ index: 0, measure: 'max-softmax', thresholds, temperatures: T })

describe('policies run on onnxruntime', () => {
  const ex = new OrtExecutor()
  const run: RunSegment = async (seg, x, dims) => {
    const r = await ex.runSegment(m.id, seg, x, dims)
    return { output: r.output, dims: r.dims, ms: r.ms }
  }
  const whole = async (exit: number, x: Float32Array) =>
    (await ex.runSegment(m.id, { exit, from: 0, to: m.exits.find((e) => e.exit === exit)!.layers.length }, x)).output
  beforeAll(async () => {
    await ex.start()
    await ex.openModel(dir)
  })
  afterAll(() => ex.stop())

  it('answers a static policy (threshold 0 at exit i, never before) exactly as exit i, whatever the cut', async () => {
    const n = m.exits[4]!.layers.length
    for (const [i, cut] of [
      [1, 0],
      [1, 7],
      [3, 9],
      [3, 4],
      [4, 19]
    ] as const) {
      const thresholds = m.exits.map((_, j) => (j < i ? null : j === i ? 0 : null))
      thresholds[4] = 0
      const p = policy(thresholds)
      const s = exitSchedule(m, cut)
      for (const k of [0, 1, 2]) {
        const x = input(k)
        const device = await runWithPolicy({ m, policy: p, steps: s.device, from: 0, to: cut, input: x, dims: [...m.input.shape], audit: false, run })
        const r =
          device.left ??
          (await runWithPolicy({ m, policy: p, steps: s.edge, from: cut, to: n, input: device.output, dims: device.dims, audit: false, run })).left!
        expect(r.exit).toBe(m.exits[i]!.exit)
        const want = await whole(m.exits[i]!.exit, x)
        expect(Math.max(...Array.from(r.scores, (v, j) => Math.abs(v - want[j]!)))).toBeLessThan(1e-5)
      }
    }
  })

  it('lets a frame leave at the first exit whose calibrated confidence reaches its threshold', async () => {
    const p = policy([0.95, 0.9, null, 0.8, 0])
    const s = exitSchedule(m, 19)
    let early = 0
    for (let k = 0; k < 40; k++) {
      const x = input(k)
      const r = (await runWithPolicy({ m, policy: p, steps: s.device, from: 0, to: 19, input: x, dims: [...m.input.shape], audit: false, run })).left!
      // the first exit (in path order) whose confidence reaches its threshold, computed independently
      let want = 5
      for (const [j, e] of m.exits.entries()) {
        const t = p.thresholds[j]
        if (t === null) continue
        if (exitConfidence(m, p, j, await whole(e.exit, x)) >= t!) {
          want = e.exit
          break
        }
      }
      expect(r.exit).toBe(want)
      if (r.exit !== 5) early++
      expect(r.confidence).toBeGreaterThanOrEqual(0)
      expect(r.confidence).toBeLessThanOrEqual(1)
    }
    expect(early).toBeGreaterThan(10) // the shipped frames are mostly easy: most leave early
  })

  it('runs an audited frame to the final exit, recording what each head would have done', async () => {
    const p = policy([0.5, 0.5, null, 0.5, 0])
    const s = exitSchedule(m, 9)
    const x = input(0)
    const device = await runWithPolicy({ m, policy: p, steps: s.device, from: 0, to: 9, input: x, dims: [...m.input.shape], audit: true, run })
    expect(device.left).toBeNull()
    // audits evaluate every head on the way, thresholds or not
    expect(device.heads.map((h) => h.exit)).toEqual([1, 2, 3])
    const edge = await runWithPolicy({ m, policy: p, steps: s.edge, from: 9, to: 19, input: device.output, dims: device.dims, audit: true, run })
    expect(edge.left?.exit).toBe(5)
    expect(edge.heads.map((h) => h.exit)).toEqual([4, 5])
  })

  it('times a policy’s pieces paced as frames start at run time: the idle after every round, given that round’s compute', async () => {
    const rounds: number[] = []
    const paced = await measurePieces(ex, m, input(0), 3, {
      idle: async (roundMs) => {
        rounds.push(roundMs)
      }
    })
    const plain = await measurePieces(ex, m, input(0), 1)
    expect(Object.keys(paced!).sort()).toEqual(Object.keys(plain!).sort())
    // the warm-up round and each of the 3 timed ones, each the sum of its sessions' times (all positive)
    expect(rounds).toHaveLength(4)
    for (const ms of rounds) expect(ms).toBeGreaterThan(0)
  })
})
