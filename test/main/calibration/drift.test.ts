import { describe, expect, it } from 'vitest'
import { planErrors, speedDrift } from '../../../src/main/calibration/plans.js'
import type { LinkStage, PlanCheckPoint } from '../../../src/shared/contracts/console-api.js'

const point = (exit: number, deviceLayers: number, layers: number, pred: [number, number], meas: [number, number]): PlanCheckPoint => ({
  exit,
  deviceLayers,
  layers,
  runIds: [],
  completed: 15,
  predicted: { deviceMs: pred[0], edgeMs: pred[1], e2eMs: pred[0] + pred[1] + 2 },
  measured: { deviceMs: meas[0], edgeMs: meas[1], e2eMs: meas[0] + meas[1] + 2 }
})
const probe = (exit: number, deviceLayers: number, layers: number, deviceMs: number, edgeMs: number): LinkStage['probes'][number] => ({
  exit,
  deviceLayers,
  layers,
  n: 60,
  bytes: 1000,
  residualMs: 2,
  deviceMs,
  edgeMs,
  predictedDeviceMs: deviceMs,
  predictedEdgeMs: edgeMs
})

describe('speed drift between a profile’s link stage and a plans campaign', () => {
  it('is the probes’ measured ratio per side; taking it out of a uniform slowdown leaves the prediction’s own error', () => {
    // The profile predicted every plan exactly as the link stage measured; the machine then ran the device 20 % and the edge 30 % slower.
    const plans = [
      [1, 0, 4, 0, 1],
      [1, 2, 4, 2, 0.5],
      [1, 4, 4, 4, 0],
      [2, 3, 6, 3, 2]
    ] as const
    const points = plans.map(([e, d, n, dev, edge]) => point(e, d, n, [dev, edge], [dev * 1.2, edge * 1.3]))
    const probes = plans.slice(0, 3).map(([e, d, n, dev, edge]) => probe(e, d, n, dev, edge))
    const drift = speedDrift(points, probes)!
    expect(drift.probes).toBe(3)
    expect(drift.device).toBeCloseTo(1.2, 12)
    expect(drift.edge).toBeCloseTo(1.3, 12)
    expect(planErrors(points).device.median).toBeCloseTo(0.2 / 1.2, 9) // as measured: the drift looks like error
    expect(drift.errors.device.median).toBeCloseTo(0, 9)
    expect(drift.errors.edge.median).toBeCloseTo(0, 9)
    // No probe among the measured plans: no drift to report.
    expect(speedDrift(points, [probe(9, 1, 3, 1, 1)])).toBeUndefined()
  })
})
