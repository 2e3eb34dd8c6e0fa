/**
 * Campaigns (Edgent's offline stage as a product feature). Kind `layers`: the synthetic single-layer
 * grid timed on the edge (this console's executor) and on a device (the agent's `time-layers`
 * command); kind `model`: every layer of the served model on each side (`profile-layers`). Chunk by chunk so that progress shows, a cancel takes effect between chunks, and an agent
 * dropping out leaves the measurements so far stored and the campaign marked failed. When complete,
 * the measurements are fitted into a calibration profile (n, R², MAPE, held-out check) that becomes
 * the device's current profile.
 */
import type { CampaignStatus } from '../../shared/console-api.js'
import { randomUUID } from 'node:crypto'
import type { Store } from '../console/store.js'
import type { OrtExecutor } from '../runtime/executor.js'
import { specKey, type SyntheticSpec } from '../../shared/onnx-builder.js'
import { UserError } from '../../shared/errors.js'
import { fitProfile, type FitReport, type MeasurementRow } from './fit.js'
import { layerFeatures, regressionKeyOf } from '../../shared/latency.js'
import type { Manifest } from '../../shared/manifest.js'
import { measureLayers, type LayerTable } from '../console/edge-profile.js'
import { layerGrid, timeSynthetic, type LayerMeasurement } from './layers.js'

export const CHUNK = 12

export type { CampaignStatus } from '../../shared/console-api.js'

export interface CampaignDeps {
  store: Store
  executor: OrtExecutor
  /** The served model, for the `model` kind. */
  manifest: Manifest
  /** One shipped sample's raw pixels, the input the `model` kind times. */
  samplePixels: Uint8Array
  /** Times every layer of the model on the device (the agent's `profile-layers` command). */
  profileDevice(deviceId: string, reps: number): Promise<LayerTable>
  /** Times specs on the device (the agent's `time-layers` command). */
  timeOnDevice(deviceId: string, specs: SyntheticSpec[], reps: number): Promise<LayerMeasurement[]>
  onProgress(status: CampaignStatus): void
}

export class Campaigns {
  private readonly cancelled = new Set<string>()
  private readonly fits = new Map<string, FitReport[]>()

  constructor(private readonly deps: CampaignDeps) {}

  /** Starts a campaign; resolves with its id at once, the work goes on in the background. */
  start(deviceId: string, kind: string, reps: number): string {
    if (kind !== 'layers' && kind !== 'model') throw new UserError(`campaign kind "${kind}" is not available yet (available: layers, model)`)
    if (!Number.isInteger(reps) || reps < 1 || reps > 200) throw new UserError(`reps must be 1..200, got ${reps}`)
    const id = randomUUID()
    this.deps.store.handle
      .prepare(`INSERT INTO campaigns (id, device_id, kind, params_json, status, started_at) VALUES (?, ?, ?, ?, 'running', ?)`)
      .run(id, deviceId, kind, JSON.stringify(kind === 'layers' ? { reps, grid: 'layers-v1' } : { reps, model: this.deps.manifest.id }), new Date().toISOString())
    void this.run(id, deviceId, reps, kind === 'layers' ? this.layersWork(deviceId, reps) : this.modelWork(deviceId, reps))
    return id
  }

  cancel(id: string): void {
    if (!this.status(id)) throw new UserError(`unknown campaign "${id}"`)
    this.cancelled.add(id)
  }

  /** The synthetic grid, chunk by chunk, on the edge then on the device. */
  private layersWork(deviceId: string, reps: number): Work {
    const grid = layerGrid()
    const chunks: Chunk[] = []
    for (const side of ['edge', 'device'] as const) {
      for (let i = 0; i < grid.length; i += CHUNK) {
        const specs = grid.slice(i, i + CHUNK)
        chunks.push({
          side,
          keys: specs.map(specKey),
          measure: () => (side === 'edge' ? timeSynthetic(this.deps.executor, specs, reps) : this.deps.timeOnDevice(deviceId, specs, reps))
        })
      }
    }
    return { chunks, keys: grid.map(specKey), groups: grid.map((g) => g.type) }
  }

  /** Every layer of the served model (single-layer slices), on the edge then on the device. */
  private modelWork(deviceId: string, reps: number): Work {
    const m = this.deps.manifest
    const layers = m.layers
    const toRows = (t: LayerTable): LayerMeasurement[] =>
      layers.map((l) => ({
        key: JSON.stringify({ model: m.id, layer: l.id }),
        spec: { model: m.id, layer: l.id } as unknown as SyntheticSpec,
        regressionKey: regressionKeyOf(l),
        features: layerFeatures(l),
        runMs: t.layerMs[l.id] ?? NaN,
        loadMs: 0,
        modelBytes: 0,
        reps
      }))
    const keys = layers.map((l) => JSON.stringify({ model: m.id, layer: l.id }))
    return {
      keys,
      groups: layers.map((l) => regressionKeyOf(l)),
      chunks: [
        { side: 'edge', keys, measure: async () => toRows(await measureLayers(this.deps.executor, m, this.deps.samplePixels, reps)) },
        { side: 'device', keys, measure: async () => toRows(await this.deps.profileDevice(deviceId, reps)) }
      ]
    }
  }

  private async run(id: string, deviceId: string, reps: number, work: Work): Promise<void> {
    const db = this.deps.store.handle
    const total = work.chunks.reduce((a, c) => a + c.keys.length, 0)
    let done = 0
    const insert = db.prepare(
      `INSERT INTO measurements (campaign_id, side, regression_key, spec_json, features_json, run_ms, load_ms, model_bytes, reps, held_out, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)`
    )
    const heldOut = heldOutKeys(work.keys, work.groups)
    const store = (side: 'device' | 'edge', ms: LayerMeasurement[]) =>
      db.transaction(() => {
        const now = new Date().toISOString()
        for (const m of ms) insert.run(id, side, m.regressionKey, JSON.stringify(m.spec), JSON.stringify(m.features), m.runMs, m.loadMs, m.modelBytes, m.reps, heldOut.get(m.key) ? 1 : 0, now)
        done += ms.length
        db.prepare('UPDATE campaigns SET progress = ? WHERE id = ?').run(done / total, id)
      })()
    try {
      for (const chunk of work.chunks) {
        if (this.cancelled.has(id)) throw new CancelledError()
        const ms = await chunk.measure()
        if (ms.length !== chunk.keys.length || ms.some((m, j) => m.key !== chunk.keys[j] || !Number.isFinite(m.runMs))) throw new Error(`${chunk.side} answered with measurements for other configurations`)
        store(chunk.side, ms)
        this.deps.onProgress(this.status(id)!)
      }
      const rows = (db.prepare('SELECT side, regression_key, features_json, run_ms, load_ms, model_bytes, held_out FROM measurements WHERE campaign_id = ?').all(id) as {
        side: 'device' | 'edge'
        regression_key: string
        features_json: string
        run_ms: number
        load_ms: number
        model_bytes: number
        held_out: number
      }[]).map<MeasurementRow>((r) => ({ side: r.side, regressionKey: r.regression_key as MeasurementRow['regressionKey'], features: JSON.parse(r.features_json) as number[], runMs: r.run_ms, loadMs: r.load_ms, modelBytes: r.model_bytes, heldOut: r.held_out === 1 }))
      const profileId = `${deviceId}-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}`
      const { profile, report } = fitProfile(profileId, `layers campaign on ${deviceId}`, rows, { campaign: id, device: deviceId, reps })
      this.fits.set(id, report)
      db.transaction(() => {
        db.prepare('UPDATE profiles SET current = 0 WHERE device_id = ?').run(deviceId)
        db.prepare('INSERT INTO profiles (id, device_id, campaign_id, created_at, json, current) VALUES (?, ?, ?, ?, ?, 1)').run(profileId, deviceId, id, profile.createdAt!, JSON.stringify(profile))
        db.prepare(`UPDATE campaigns SET status = 'done', progress = 1, finished_at = ? WHERE id = ?`).run(new Date().toISOString(), id)
      })()
    } catch (err) {
      const cancelled = err instanceof CancelledError
      db.prepare(`UPDATE campaigns SET status = ?, finished_at = ?, error = ? WHERE id = ?`).run(cancelled ? 'cancelled' : 'failed', new Date().toISOString(), cancelled ? null : (err as Error).message, id)
    } finally {
      this.cancelled.delete(id)
      this.deps.onProgress(this.status(id)!)
    }
  }

  status(id: string): CampaignStatus | undefined {
    const db = this.deps.store.handle
    const c = db.prepare('SELECT * FROM campaigns WHERE id = ?').get(id) as
      | { id: string; device_id: string; kind: string; status: CampaignStatus['status']; progress: number; started_at: string; finished_at: string | null; error: string | null }
      | undefined
    if (!c) return undefined
    const p = db.prepare('SELECT id, json FROM profiles WHERE campaign_id = ?').get(id) as { id: string; json: string } | undefined
    const n = (db.prepare('SELECT COUNT(*) AS n FROM measurements WHERE campaign_id = ?').get(id) as { n: number }).n
    let fits = this.fits.get(id) ?? null
    if (!fits && p) fits = reportFromProfile(p.json)
    return { id: c.id, deviceId: c.device_id, kind: c.kind, status: c.status, progress: c.progress, startedAt: c.started_at, finishedAt: c.finished_at, error: c.error, profileId: p?.id ?? null, fits, measurements: n }
  }

  list(): CampaignStatus[] {
    return (this.deps.store.handle.prepare('SELECT id FROM campaigns ORDER BY started_at DESC').all() as { id: string }[]).map((r) => this.status(r.id)!)
  }
}

class CancelledError extends Error {}

interface Chunk {
  side: 'edge' | 'device'
  /** The configurations this chunk must return, in order. */
  keys: string[]
  measure(): Promise<LayerMeasurement[]>
}

interface Work {
  chunks: Chunk[]
  /** Every configuration, in the order that decides which are held out. */
  keys: string[]
  /** The regression key (layer type) of each configuration: every fourth of each type is held out. */
  groups: string[]
}

/**
 * Held-out configurations: the 4th, 8th, … of each group, in the work's order. Per group, so that a
 * type with few configurations (two LRN layers in the served model) keeps its first ones for the fit.
 */
export function heldOutKeys(keys: readonly string[], groups: readonly string[]): Map<string, boolean> {
  const seen = new Map<string, number>()
  return new Map(
    keys.map((k, i) => {
      const n = seen.get(groups[i]!) ?? 0
      seen.set(groups[i]!, n + 1)
      return [k, n % 4 === 3]
    })
  )
}

function reportFromProfile(json: string): FitReport[] {
  const p = JSON.parse(json) as Record<'device' | 'edge', Record<string, { n?: number; r2?: number | null; mape?: number | null; heldOut?: { n: number; mape: number | null; r2: number | null } }>>
  const out: FitReport[] = []
  for (const side of ['device', 'edge'] as const) {
    for (const [key, r] of Object.entries(p[side] ?? {})) {
      out.push({ side, key: key as FitReport['key'], n: r.n ?? 0, r2: r.r2 ?? null, mape: r.mape ?? null, heldOutN: r.heldOut?.n ?? 0, heldOutMape: r.heldOut?.mape ?? null, heldOutR2: r.heldOut?.r2 ?? null })
    }
  }
  return out
}
