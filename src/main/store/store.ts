/**
 * The console's SQLite store (better-sqlite3), and the only module that holds SQL: one file in the
 * data directory, WAL mode, foreign keys on, schema versioned by `user_version` and migrated inside
 * transactions (migrations.ts). Typed queries per table family; nobody else gets the handle.
 */
import Database from 'better-sqlite3'
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs'
import { makeDirs } from '../runtime/data-dir.js'
import { dirname } from 'node:path'
import { UserError, errorMessage } from '../../shared/errors.js'
import { BandwidthQueries } from './bandwidth.js'
import { CalibrationQueries } from './calibration.js'
import { CampaignQueries } from './campaigns.js'
import { DeviceQueries } from './devices.js'
import { WorkerQueries } from './workers.js'
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js'
import { PlanQueries } from './plans.js'
import { ProfileQueries } from './profiles.js'
import { RunQueries } from './runs.js'
import { SettingsQueries } from './settings.js'
import { abiMismatch, sqliteBindingFile } from '../runtime/native.js'

export { SCHEMA_VERSION } from './migrations.js'
export type { DeviceRow } from './devices.js'

interface Families {
  devices: DeviceQueries
  workers: WorkerQueries
  plans: PlanQueries
  runs: RunQueries
  bandwidth: BandwidthQueries
  campaigns: CampaignQueries
  profiles: ProfileQueries
  calibration: CalibrationQueries
  settings: SettingsQueries
}

/** Why a database did not open, and what to do about it, in one line. */
export function openFailure(file: string, err: unknown): string {
  const abi = abiMismatch(err)
  if (abi) return abi
  const code = String((err as { code?: unknown }).code ?? '')
  const why = errorMessage(err)
  if (code.startsWith('SQLITE_NOTADB') || code.startsWith('SQLITE_CORRUPT'))
    return `database ${file} is corrupt or not an SQLite database (${why}): move it aside to start with an empty one, or put back a copy`
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
    return `database ${file} is locked by another process (${why}): stop the other edgent command or console using it, then start again`
  if (code === 'EACCES' || code === 'EPERM' || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN'))
    return `database ${file} cannot be opened for writing (${why}): fix its owner and mode, or choose another --data-dir`
  return `database ${file}: cannot open (${why})`
}

export class Store {
  private db: Database.Database | null = null
  private q: Families | null = null

  constructor(readonly file: string) {}

  start(): void {
    if (this.db) return
    makeDirs(dirname(this.file))
    // The data directory holds token hashes and measurements: only the console's user may list it,
    // even when it existed before with a wider mode (mkdir leaves an existing folder as it is).
    try {
      chmodSync(dirname(this.file), 0o700)
    } catch {
      // not the owner: the access checks below say what is wrong with the folder, if anything
    }
    let opening: Database.Database | null = null
    try {
      // Only the console's user reads the database (device tokens' hashes, measurements): 0600, and SQLite
      // gives its -wal and -shm files the database file's mode.
      closeSync(openSync(this.file, 'a', 0o600))
      for (const f of [this.file, `${this.file}-wal`, `${this.file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600)
      const nativeBinding = sqliteBindingFile()
      const db = new Database(this.file, nativeBinding ? { nativeBinding } : {})
      opening = db
      db.pragma('journal_mode = WAL')
      db.pragma('foreign_keys = ON')
      db.pragma('synchronous = NORMAL')
      db.pragma('busy_timeout = 5000')
      const version = db.pragma('user_version', { simple: true }) as number
      if (version > SCHEMA_VERSION) {
        throw new UserError(`database ${this.file}: schema version ${version} is newer than this console understands (${SCHEMA_VERSION}); upgrade the console`)
      }
      for (let v = version; v < SCHEMA_VERSION; v++) {
        db.transaction(() => {
          db.exec(MIGRATIONS[v]!)
          db.pragma(`user_version = ${v + 1}`)
        })()
      }
    } catch (err) {
      opening?.close()
      throw err instanceof UserError ? err : new UserError(openFailure(this.file, err))
    }
    const db = opening
    this.db = db
    const profiles = new ProfileQueries(db)
    const devices = new DeviceQueries(db)
    const campaigns = new CampaignQueries(db, profiles)
    this.q = {
      devices,
      workers: new WorkerQueries(db),
      plans: new PlanQueries(db),
      runs: new RunQueries(db),
      bandwidth: new BandwidthQueries(db),
      campaigns,
      profiles,
      calibration: new CalibrationQueries(db, devices, profiles, campaigns),
      settings: new SettingsQueries(db)
    }
  }

  stop(): void {
    this.db?.close()
    this.db = null
    this.q = null
  }

  private open(): Families {
    if (!this.q) throw new Error('store is not started')
    return this.q
  }

  get devices(): DeviceQueries {
    return this.open().devices
  }
  /** Paired edge workers (issue 34). */
  get workers(): WorkerQueries {
    return this.open().workers
  }
  get plans(): PlanQueries {
    return this.open().plans
  }
  /** Co-inference runs and their inferences. */
  get runs(): RunQueries {
    return this.open().runs
  }
  get bandwidth(): BandwidthQueries {
    return this.open().bandwidth
  }
  /** Campaigns and their measurements. */
  get campaigns(): CampaignQueries {
    return this.open().campaigns
  }
  get profiles(): ProfileQueries {
    return this.open().profiles
  }
  /** Calibration data export and import. */
  get calibration(): CalibrationQueries {
    return this.open().calibration
  }
  /** The console's own settings (the default model). */
  get settings(): SettingsQueries {
    return this.open().settings
  }

  /** After a crash: what the previous console left running is marked interrupted, its devices offline. */
  recoverFromCrash(): { runs: number; campaigns: number } {
    const db = this.db!
    const now = new Date().toISOString()
    return db.transaction(() => {
      const runs = this.runs.markInterrupted(now)
      // Until an agent announces itself to this console, its last known state is not its state.
      this.devices.markOffline()
      const campaigns = this.campaigns.markInterrupted(now)
      return { runs, campaigns }
    })()
  }

  /** `PRAGMA integrity_check` and `foreign_key_check`: 'ok' and no violations for a sound file. */
  check(): { integrity: string; foreignKeyViolations: number } {
    this.open()
    const db = this.db!
    return { integrity: db.pragma('integrity_check', { simple: true }) as string, foreignKeyViolations: (db.pragma('foreign_key_check') as unknown[]).length }
  }
}

/** Opens a store for one short piece of work (a CLI command without a running console) and closes it. */
export function withStore<T>(file: string, work: (store: Store) => T): T {
  const store = new Store(file)
  store.start()
  try {
    return work(store)
  } finally {
    store.stop()
  }
}
