/** Where exits branch off the final path, which side evaluates each, and early results checked against their plan (issue 31). */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { parseManifest } from '../../../src/shared/contracts/manifest.js'
import { earlyResultProblem, exitBranches, exitSide, finalExit } from '../../../src/shared/algorithms/exit-paths.js'

const camera = parseManifest(
  JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'resources', 'models', 'branchy-resnet96', 'manifest.json'), 'utf8')),
  'camera'
)

describe('exit paths', () => {
  it("finds each exit's branch point on the camera model's final path", () => {
    expect(finalExit(camera)).toBe(5)
    const b = exitBranches(camera)
    // exits after block 1, 2, 3 and 4's ReLU (layers 5, 7, 9, 11 of the final path), each with a 4-layer head
    expect(b.map((x) => x.branchAt)).toEqual([5, 7, 9, 11, 19])
    expect(b.map((x) => x.headLayers)).toEqual([4, 4, 4, 4, 0])
  })

  it('puts an exit on the device when its branch point is at or before the cut, the final exit where its last layer runs', () => {
    const [e1, , , e4, e5] = exitBranches(camera)
    expect(exitSide(e1!, 5, 19)).toBe('device')
    expect(exitSide(e1!, 4, 19)).toBe('edge')
    expect(exitSide(e1!, 0, 19)).toBe('edge')
    expect(exitSide(e4!, 8, 19)).toBe('edge')
    expect(exitSide(e5!, 18, 19)).toBe('edge')
    expect(exitSide(e5!, 19, 19)).toBe('device')
  })

  it('refuses, by name, an early result for an exit off the plan, on the wrong side, or with a confidence outside [0, 1]', () => {
    const policy = { index: 0, measure: 'max-softmax' as const, thresholds: [0.9, 0.8, null, 0.7, 0], temperatures: [1, 1, 1, 1, 1] }
    const plan = { deviceLayers: 8, policy }
    expect(earlyResultProblem(camera, plan, { exit: 1, confidence: 0.97, side: 'device' })).toBeNull()
    expect(earlyResultProblem(camera, plan, { exit: 4, confidence: 0.6, side: 'edge' })).toBeNull()
    expect(earlyResultProblem(camera, plan, { exit: 3, confidence: 0.9, side: 'device' })).toBe(
      "exit 3 is not on the plan's path (its policy lets frames leave at exits 1, 2, 4, 5)"
    )
    expect(earlyResultProblem(camera, plan, { exit: 9, confidence: 0.9, side: 'device' })).toBe(
      "exit 9 is not on the plan's path (its policy lets frames leave at exits 1, 2, 4, 5)"
    )
    expect(earlyResultProblem(camera, plan, { exit: 4, confidence: 0.9, side: 'device' })).toBe(
      'exit 4 is evaluated on the edge under a cut after 8 layers, not on the device'
    )
    expect(earlyResultProblem(camera, { deviceLayers: 8 }, { exit: 5, confidence: 0.9, side: 'edge' })).toBeNull()
    expect(earlyResultProblem(camera, { deviceLayers: 8 }, { exit: 1, confidence: 0.9, side: 'device' })).toMatch(/exit 1 is not on the plan's path/)
    for (const c of [1.2, -0.1, Number.NaN])
      expect(earlyResultProblem(camera, plan, { exit: 1, confidence: c, side: 'device' })).toBe(`confidence ${c} is not in [0, 1]`)
  })
})
