/** Paired edge workers (issue 34): token hashes, as devices' (devices.ts), in a table of their own. */
import type Database from 'better-sqlite3'

export interface WorkerRow {
  id: string
  token_hash: string
  created_at: string
  revoked_at: string | null
}

export class WorkerQueries {
  constructor(private readonly db: Database.Database) {}

  get(id: string): WorkerRow | undefined {
    return this.db.prepare('SELECT * FROM workers WHERE id = ?').get(id) as WorkerRow | undefined
  }

  list(): WorkerRow[] {
    return this.db.prepare('SELECT * FROM workers ORDER BY id').all() as WorkerRow[]
  }

  /** Pairs (or re-pairs) a worker with a new token hash. */
  pair(id: string, tokenHash: string): void {
    this.db
      .prepare(
        `INSERT INTO workers (id, token_hash, created_at) VALUES (@id, @hash, @now)
         ON CONFLICT(id) DO UPDATE SET token_hash = @hash, revoked_at = NULL`
      )
      .run({ id, hash: tokenHash, now: new Date().toISOString() })
  }

  /** Revokes a worker's token; false when it was not paired (or already revoked). */
  revoke(id: string): boolean {
    return this.db.prepare('UPDATE workers SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(new Date().toISOString(), id).changes > 0
  }
}
