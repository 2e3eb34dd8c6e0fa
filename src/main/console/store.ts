/**
 * The console's SQLite store (better-sqlite3): one file in the data directory, WAL mode, foreign
 * keys on, schema versioned by `user_version` and migrated inside transactions.
 */
import Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { UserError } from '../../shared/errors.js'

/** Each migration moves the schema from version i to i + 1; never edit one that has shipped. */
const MIGRATIONS: string[] = [
  `
  CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    hello_json TEXT,
    state TEXT NOT NULL DEFAULT 'never-seen',
    state_at TEXT
  );
  CREATE TABLE plans (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    model TEXT NOT NULL,
    exit INTEGER NOT NULL,
    device_layers INTEGER NOT NULL,
    layers INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    uplink_kbps REAL NOT NULL,
    predicted_ms REAL NOT NULL,
    feasible INTEGER NOT NULL,
    reason TEXT,
    created_at TEXT NOT NULL
  );
  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    kind TEXT NOT NULL,
    params_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted', 'cancelled')),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    summary_json TEXT,
    error TEXT
  );
  CREATE TABLE inferences (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    run_id TEXT REFERENCES runs(id),
    device_id TEXT NOT NULL REFERENCES devices(id),
    plan_id TEXT NOT NULL REFERENCES plans(id),
    model TEXT NOT NULL,
    exit INTEGER NOT NULL,
    device_layers INTEGER NOT NULL,
    sample INTEGER,
    label INTEGER,
    predicted_label INTEGER NOT NULL,
    correct INTEGER,
    latency_req_ms REAL NOT NULL,
    predicted_ms REAL NOT NULL,
    predicted_json TEXT NOT NULL,
    device_ms REAL NOT NULL,
    transfer_ms REAL,
    edge_ms REAL NOT NULL,
    e2e_ms REAL,
    met INTEGER,
    uplink_kbps REAL,
    upload_bytes INTEGER NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE INDEX inferences_run ON inferences(run_id);
  CREATE TABLE bandwidth_samples (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    source TEXT NOT NULL CHECK (source IN ('activation', 'probe')),
    bytes INTEGER NOT NULL,
    kbps REAL NOT NULL,
    smoothed_kbps REAL NOT NULL,
    at TEXT NOT NULL
  );
  `,
  `
  CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    kind TEXT NOT NULL,
    params_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'interrupted', 'cancelled')),
    progress REAL NOT NULL DEFAULT 0,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    error TEXT
  );
  CREATE TABLE measurements (
    id INTEGER PRIMARY KEY,
    campaign_id TEXT NOT NULL REFERENCES campaigns(id),
    side TEXT NOT NULL CHECK (side IN ('device', 'edge')),
    regression_key TEXT NOT NULL,
    spec_json TEXT NOT NULL,
    features_json TEXT NOT NULL,
    run_ms REAL NOT NULL,
    load_ms REAL NOT NULL,
    model_bytes INTEGER NOT NULL,
    reps INTEGER NOT NULL,
    held_out INTEGER NOT NULL,
    created_at TEXT NOT NULL
  );
  CREATE INDEX measurements_campaign ON measurements(campaign_id);
  CREATE TABLE profiles (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    campaign_id TEXT NOT NULL REFERENCES campaigns(id),
    created_at TEXT NOT NULL,
    json TEXT NOT NULL,
    current INTEGER NOT NULL DEFAULT 0
  );
  `,
  `
  ALTER TABLE campaigns ADD COLUMN summary_json TEXT;
  ALTER TABLE runs ADD COLUMN campaign_id TEXT REFERENCES campaigns(id);
  CREATE INDEX runs_campaign ON runs(campaign_id);
  `,
  // 4: a layers campaign times its grid in several passes, one row per configuration and pass.
  `
  ALTER TABLE measurements ADD COLUMN pass INTEGER NOT NULL DEFAULT 0;
  `
]

export const SCHEMA_VERSION = MIGRATIONS.length

export interface DeviceRow {
  id: string
  token_hash: string
  created_at: string
  revoked_at: string | null
  hello_json: string | null
  state: string
  state_at: string | null
}

export class Store {
  private db: Database.Database | null = null

  constructor(readonly file: string) {}

  start(): void {
    if (this.db) return
    mkdirSync(dirname(this.file), { recursive: true })
    let db: Database.Database
    try {
      db = new Database(this.file)
      db.pragma('journal_mode = WAL')
      db.pragma('foreign_keys = ON')
      db.pragma('synchronous = NORMAL')
      db.pragma('busy_timeout = 5000')
    } catch (err) {
      throw new UserError(`database ${this.file}: cannot open (${(err as Error).message})`)
    }
    const version = db.pragma('user_version', { simple: true }) as number
    if (version > SCHEMA_VERSION) {
      db.close()
      throw new UserError(`database ${this.file}: schema version ${version} is newer than this console understands (${SCHEMA_VERSION}); upgrade the console`)
    }
    for (let v = version; v < SCHEMA_VERSION; v++) {
      db.transaction(() => {
        db.exec(MIGRATIONS[v]!)
        db.pragma(`user_version = ${v + 1}`)
      })()
    }
    this.db = db
  }

  stop(): void {
    this.db?.close()
    this.db = null
  }

  get handle(): Database.Database {
    if (!this.db) throw new Error('store is not started')
    return this.db
  }

  device(id: string): DeviceRow | undefined {
    return this.handle.prepare('SELECT * FROM devices WHERE id = ?').get(id) as DeviceRow | undefined
  }

  devices(): DeviceRow[] {
    return this.handle.prepare('SELECT * FROM devices ORDER BY id').all() as DeviceRow[]
  }

  /** Pairs (or re-pairs) a device with a new token hash. */
  pairDevice(id: string, tokenHash: string): void {
    this.handle
      .prepare(
        `INSERT INTO devices (id, token_hash, created_at) VALUES (@id, @hash, @now)
         ON CONFLICT(id) DO UPDATE SET token_hash = @hash, revoked_at = NULL`
      )
      .run({ id, hash: tokenHash, now: new Date().toISOString() })
  }

  revokeDevice(id: string): boolean {
    return this.handle.prepare('UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(new Date().toISOString(), id).changes > 0
  }

  setDeviceState(id: string, state: string, helloJson?: string): void {
    if (helloJson !== undefined) this.handle.prepare('UPDATE devices SET hello_json = ? WHERE id = ?').run(helloJson, id)
    this.handle.prepare('UPDATE devices SET state = ?, state_at = ? WHERE id = ?').run(state, new Date().toISOString(), id)
  }
}
