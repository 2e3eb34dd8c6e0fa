/**
 * The schema's history: migration i moves the database from `user_version` i to i + 1, inside a
 * transaction (store.ts). Never edit one that has shipped; add the next.
 */
export const MIGRATIONS: string[] = [
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
  `,
  // 5: one name per concept: the requirement is latency_ms everywhere; a bandwidth sample and the
  // smoothed estimate get their own names (uplink_kbps means the rate a plan assumed).
  `
  ALTER TABLE inferences RENAME COLUMN latency_req_ms TO latency_ms;
  ALTER TABLE bandwidth_samples RENAME COLUMN kbps TO sample_kbps;
  ALTER TABLE bandwidth_samples RENAME COLUMN smoothed_kbps TO estimate_kbps;
  `,
  // 6: the model a device is planned and served with (null: the console's default), and the console's
  // own settings (the default model).
  `
  ALTER TABLE devices ADD COLUMN model_id TEXT;
  CREATE TABLE settings (key TEXT PRIMARY KEY, value_json TEXT NOT NULL, updated_at TEXT NOT NULL);
  `,
  // 7: every repetition's time beside the median (calibration exports a researcher can re-analyse).
  `
  ALTER TABLE measurements ADD COLUMN reps_ms_json TEXT;
  `,
  // 8: both sides' health (temperature, throttling, frequency, load) with every chunk of a campaign.
  `
  CREATE TABLE campaign_health (
    id INTEGER PRIMARY KEY,
    campaign_id TEXT NOT NULL REFERENCES campaigns(id),
    side TEXT NOT NULL CHECK (side IN ('device', 'edge')),
    chunk INTEGER NOT NULL,
    at TEXT NOT NULL,
    health_json TEXT NOT NULL
  );
  CREATE INDEX campaign_health_campaign ON campaign_health(campaign_id);
  `,
  // 9: campaigns and runs carry their model, tags and a note (issue 35 item 10); the model filled in
  // where it was recorded (a campaign's params, a run's inferences).
  `
  ALTER TABLE campaigns ADD COLUMN model TEXT;
  ALTER TABLE campaigns ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]';
  ALTER TABLE campaigns ADD COLUMN note TEXT NOT NULL DEFAULT '';
  ALTER TABLE runs ADD COLUMN model TEXT;
  ALTER TABLE runs ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]';
  ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT '';
  UPDATE campaigns SET model = json_extract(params_json, '$.model') WHERE json_valid(params_json) AND json_type(params_json, '$.model') = 'text';
  UPDATE runs SET model = (SELECT model FROM inferences WHERE inferences.run_id = runs.id LIMIT 1);
  CREATE INDEX runs_device ON runs(device_id, started_at);
  `,
  // 10: a plan's confidence-exit policy (issue 31), when it has one.
  `
  ALTER TABLE plans ADD COLUMN policy_json TEXT;
  `,
  // 11: edge workers (issue 34): paired like devices, with tokens of their own.
  `
  CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
  );
  `
]

export const SCHEMA_VERSION = MIGRATIONS.length
