/**
 * Every schema version the console ever wrote opens in today's store: a database left at version v
 * (with the rows a console of that version stored) migrates to the latest, keeps its rows, reads
 * through the typed queries, and passes integrity and foreign-key checks.
 */
import Database from 'better-sqlite3'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { MIGRATIONS, SCHEMA_VERSION } from '../../../src/main/store/migrations.js'
import { Store } from '../../../src/main/store/store.js'
import { PAPER_2018 } from '../../../src/shared/algorithms/latency.js'

const hello = { schema: 1, agentId: 'pi-1', arch: 'arm64', platform: 'linux', cpus: 4, memoryBytes: 1e9, versions: { node: '24' }, models: [] }

/** The rows a console stored right after migration `after` (the first that has their tables), in that version's columns. */
const SEEDS: Record<number, string[]> = {
  1: [
    `INSERT INTO devices (id, token_hash, created_at, hello_json, state) VALUES ('pi-1', 'h', '2026-01-01', '${JSON.stringify(hello)}', 'online')`,
    `INSERT INTO plans VALUES ('plan-1', 'pi-1', 'branchy-alexnet', 2, 3, 12, 100, 500, 42, 1, 'test', '2026-01-01')`,
    `INSERT INTO runs (id, device_id, kind, params_json, status, started_at) VALUES ('run-1', 'pi-1', 'infer', '{}', 'running', '2026-01-01')`,
    `INSERT INTO inferences (request_id, run_id, device_id, plan_id, model, exit, device_layers, predicted_label, latency_req_ms, predicted_ms, predicted_json, device_ms, edge_ms, e2e_ms, upload_bytes, created_at)
       VALUES ('r1', 'run-1', 'pi-1', 'plan-1', 'branchy-alexnet', 2, 3, 7, 100, 42, '{}', 10, 20, 45, 1000, '2026-01-01')`,
    `INSERT INTO bandwidth_samples (device_id, source, bytes, kbps, smoothed_kbps, at) VALUES ('pi-1', 'probe', 4096, 800, 750, '2026-01-01')`
  ],
  2: [
    `INSERT INTO campaigns (id, device_id, kind, params_json, status, started_at) VALUES ('c1', 'pi-1', 'layers', '{"reps":3,"grid":"layers-v1"}', 'done', '2026-01-01')`,
    `INSERT INTO measurements (campaign_id, side, regression_key, spec_json, features_json, run_ms, load_ms, model_bytes, reps, held_out, created_at)
       VALUES ('c1', 'edge', 'conv', '{"k":1}', '[1,2,3]', 1.5, 0, 0, 3, 0, '2026-01-01')`,
    `INSERT INTO profiles VALUES ('p1', 'pi-1', 'c1', '2026-01-01', '${JSON.stringify({ ...PAPER_2018, id: 'p1' }).replaceAll("'", "''")}', 1)`
  ]
}

/** A database as a console of schema version `v` left it. */
function databaseAt(v: number): string {
  const file = join(mkdtempSync(join(tmpdir(), `edgent-schema-${v}-`)), 'edgent.db')
  const db = new Database(file)
  for (let i = 0; i < v; i++) {
    db.exec(MIGRATIONS[i]!)
    db.pragma(`user_version = ${i + 1}`)
    for (const sql of SEEDS[i + 1] ?? []) db.exec(sql)
  }
  db.close()
  return file
}

describe('schema migrations', () => {
  it.each(Array.from({ length: SCHEMA_VERSION + 1 }, (_, v) => v))('a database at schema version %i opens, migrates to the latest and keeps its rows', (v) => {
    const file = databaseAt(v)
    const store = new Store(file)
    store.start()
    try {
      expect(store.check()).toEqual({ integrity: 'ok', foreignKeyViolations: 0 })
      const db = new Database(file, { readonly: true })
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION)
      db.close()
      if (v >= 1) {
        expect(store.devices.get('pi-1')).toMatchObject({ state: 'online', model_id: null, hello: { agentId: 'pi-1', arch: 'arm64' } })
        expect(store.runs.inferences('pi-1', 10)).toMatchObject([{ planId: 'plan-1', latencyMs: 100, e2eMs: 45 }])
        expect(store.bandwidth.latest('pi-1', 10)).toMatchObject([{ uplinkSampleKbps: 800, uplinkEstimateKbps: 750 }])
      }
      if (v >= 2) {
        expect(store.campaigns.get('c1')).toMatchObject({ kind: 'layers', status: 'done', params: { reps: 3, grid: 'layers-v1' }, summary: null })
        expect(store.campaigns.measurements('c1')).toMatchObject([{ side: 'edge', regressionKey: 'conv', features: [1, 2, 3], pass: 0 }])
        expect(store.profiles.current('pi-1')!.profile).toEqual({ ...PAPER_2018, id: 'p1', regressor: 'linear' })
        expect(store.campaigns.health('c1')).toEqual([])
      }
      // the migrated database takes today's rows
      store.devices.pair('pi-2', 'h2')
      store.campaigns.create('c2', 'pi-2', 'plans', { inferencesPerPlan: 5, uplinkKbps: 100_000, model: 'm' })
      expect(store.campaigns.get('c2')!.params).toEqual({ inferencesPerPlan: 5, uplinkKbps: 100_000, model: 'm' })
    } finally {
      store.stop()
    }
  })

  it('refuses a database newer than this console, naming both versions', () => {
    const file = databaseAt(SCHEMA_VERSION)
    const db = new Database(file)
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`)
    db.close()
    expect(() => new Store(file).start()).toThrow(`schema version ${SCHEMA_VERSION + 1} is newer than this console understands (${SCHEMA_VERSION})`)
  })
})
