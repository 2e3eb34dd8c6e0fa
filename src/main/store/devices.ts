/** Paired devices: token hashes, last known state and hello (stored as JSON, returned parsed and schema-checked). */
import type Database from 'better-sqlite3'
import { HelloSchema, MAX_JSON_DEPTH, jsonDepth, type Hello } from '../../shared/contracts/messages.js'
import { storedDocument } from './documents.js'

export interface DeviceRow {
  id: string
  token_hash: string
  created_at: string
  revoked_at: string | null
  /** Its last hello as the schema reads it (null: none, or a stored one that no longer passes). */
  hello: Hello | null
  state: string
  state_at: string | null
  /** The model the device is assigned (null: the console's default). */
  model_id: string | null
}

type Raw = Omit<DeviceRow, 'hello'> & { hello_json: string | null }

const row = ({ hello_json, ...r }: Raw): DeviceRow => ({ ...r, hello: storedDocument(HelloSchema, hello_json, 'stored hello') })

/** An imported hello as stored: checked against the schema and bounded in depth, else none. */
function importedHello(hello: unknown): string | null {
  if (hello === null || hello === undefined) return null
  try {
    const text = JSON.stringify(HelloSchema.parse(hello))
    return jsonDepth(text) <= MAX_JSON_DEPTH ? text : null
  } catch {
    return null // not a hello, or nested too deep even to write (a RangeError)
  }
}

export class DeviceQueries {
  constructor(private readonly db: Database.Database) {}

  get(id: string): DeviceRow | undefined {
    const r = this.db.prepare('SELECT * FROM devices WHERE id = ?').get(id) as Raw | undefined
    return r && row(r)
  }

  /** Whether an id holds a token that works (paired, not revoked): pairing it again replaces that token. */
  hasLiveToken(id: string): boolean {
    const row = this.get(id)
    return !!row && !row.revoked_at && row.token_hash !== ''
  }

  list(): DeviceRow[] {
    return (this.db.prepare('SELECT * FROM devices ORDER BY id').all() as Raw[]).map(row)
  }

  /** Pairs (or re-pairs) a device with a new token hash. */
  pair(id: string, tokenHash: string): void {
    this.db
      .prepare(
        `INSERT INTO devices (id, token_hash, created_at) VALUES (@id, @hash, @now)
         ON CONFLICT(id) DO UPDATE SET token_hash = @hash, revoked_at = NULL`
      )
      .run({ id, hash: tokenHash, now: new Date().toISOString() })
  }

  /** Replaces a token hash of an older scheme by a new one, unless the device was re-paired meanwhile. */
  rehash(id: string, oldHash: string, newHash: string): void {
    this.db.prepare('UPDATE devices SET token_hash = ? WHERE id = ? AND token_hash = ?').run(newHash, id, oldHash)
  }

  /** Revokes a device's token; false when it was not paired (or already revoked). */
  revoke(id: string): boolean {
    return this.db.prepare('UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(new Date().toISOString(), id).changes > 0
  }

  /** Records a device's state, and its hello when given (checked against the schema first). */
  setState(id: string, state: string, hello?: Hello): void {
    if (hello !== undefined) this.db.prepare('UPDATE devices SET hello_json = ? WHERE id = ?').run(JSON.stringify(HelloSchema.parse(hello)), id)
    this.db.prepare('UPDATE devices SET state = ?, state_at = ? WHERE id = ?').run(state, new Date().toISOString(), id)
  }

  /** Assigns a model to a device (null: back to the console's default). */
  setModel(id: string, modelId: string | null): void {
    this.db.prepare('UPDATE devices SET model_id = ? WHERE id = ?').run(modelId, id)
  }

  markOffline(): void {
    this.db.prepare(`UPDATE devices SET state = 'offline' WHERE state IN ('online', 'busy')`).run()
  }

  /** A device known from imported calibration data only: no token (revoked), so it cannot connect. */
  insertImported(id: string, hello: unknown, now: string): void {
    this.db
      .prepare(`INSERT INTO devices (id, token_hash, created_at, revoked_at, hello_json, state) VALUES (?, '', ?, ?, ?, 'imported')`)
      .run(id, now, now, importedHello(hello))
  }
}
