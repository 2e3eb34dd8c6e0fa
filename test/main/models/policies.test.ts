/**
 * Exit policies measured on a real multi-exit model (`edgent model policies`, issue 31 item 2): the
 * shipped camera model, copied (the command writes the manifest), its kept labelled frames split into
 * a half that chooses and a half that measures.
 */
import { cpSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../cli-run.js'
import { measurePolicies } from '../../../src/main/models/policies.js'
import { OrtExecutor } from '../../../src/main/runtime/executor.js'
import { loadManifest } from '../../../src/main/runtime/files.js'
import { packageRoot } from '../../../src/main/runtime/paths.js'

describe('model policies', () => {
  const ex = new OrtExecutor()
  const dir = join(mkdtempSync(join(tmpdir(), 'edgent-policies-')), 'camera')
  cpSync(join(packageRoot(), 'resources', 'models', 'branchy-resnet96'), dir, { recursive: true })
  beforeAll(() => ex.start())
  afterAll(() => ex.stop())

  it('fits a temperature per exit, keeps the Pareto policies, measures each on frames it was not chosen on, and stores them', async () => {
    const r = await measurePolicies({ model: dir, samples: 600 }, ex)
    expect(r.fitSamples).toBe(300)
    expect(r.heldOutSamples).toBe(300)
    expect(r.exits).toHaveLength(5)
    for (const e of r.exits) {
      expect(e.temperature).toBeGreaterThan(0.05)
      expect(e.temperature).toBeLessThan(20)
    }
    // the Pareto set, on the frames it was chosen on: compute and accuracy increase together
    expect(r.policies.length).toBeGreaterThan(3)
    for (let i = 1; i < r.policies.length; i++) {
      expect(r.policies[i]!.macs).toBeGreaterThanOrEqual(r.policies[i - 1]!.macs * 0.999)
      expect(r.policies[i]!.fitAccuracy).toBeGreaterThan(r.policies[i - 1]!.fitAccuracy)
    }
    // a confidence policy doing a fraction of the final exit's compute answers within a few points of it, held out
    const final = r.exits[4]!
    const cheap = r.policies.filter((p) => p.macs < final.macs / 3)
    expect(Math.max(...cheap.map((p) => p.accuracy))).toBeGreaterThan(final.accuracy - 0.03)
    for (const p of r.policies) expect(p.leave.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 9)
    // stored, and the manifest still validates
    const m = loadManifest(dir).manifest
    expect(m.confidence?.policies).toHaveLength(r.policies.length)
    expect(m.confidence?.temperatures).toEqual(r.exits.map((e) => e.temperature))
  }, 300_000)

  it('refuses a bad measure by name', async () => {
    const bad = await runCli('model', 'policies', '--model', dir, '--measure', 'vibes')
    expect(bad.code).toBe(2)
    expect(bad.err.trim()).toBe('edgent: --measure must be max-softmax or entropy, got "vibes"')
  })
})
