/** The console's own settings: one JSON value per key. */
import type Database from 'better-sqlite3'

export class SettingsQueries {
  constructor(private readonly db: Database.Database) {}

  get<T>(key: string): T | null {
    const row = this.db.prepare('SELECT value_json FROM settings WHERE key = ?').get(key) as { value_json: string } | undefined
    return row ? (JSON.parse(row.value_json) as T) : null
  }

  /** Sets a key (null removes it). */
  set(key: string, value: unknown): void {
    if (value === null) {
      this.db.prepare('DELETE FROM settings WHERE key = ?').run(key)
      return
    }
    this.db
      .prepare(
        'INSERT INTO settings (key, value_json, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value_json = excluded.value_json, updated_at = excluded.updated_at'
      )
      .run(key, JSON.stringify(value), new Date().toISOString())
  }
}
