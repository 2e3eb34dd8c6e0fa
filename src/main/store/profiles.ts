/**
 * Fitted calibration profiles, stored as schema-checked documents (`CalibrationProfileSchema`): the
 * store parses a profile on the way out and serialises it on the way in, and changes one through
 * intent methods (the regressor chosen), never as text. "Which profile is current" is decided here
 * and nowhere else: at most one per device; a completed campaign's profile becomes current,
 * `makeCurrent` selects one of the device's own or none, and an imported profile becomes current
 * only for a device without one.
 */
import type Database from 'better-sqlite3'
import { UserError, errorMessage } from '../../shared/errors.js'
import { parseProfile, type CalibrationProfile, type Regressor } from '../../shared/algorithms/latency.js'

export interface StoredProfile {
  id: string
  agentId: string
  campaignId: string
  createdAt: string
  current: boolean
  /**
   * The document, parsed and schema-checked when first read (a stored document that no longer
   * passes the schema throws a UserError naming the profile, so a list of profiles still lists).
   */
  readonly profile: CalibrationProfile
}

interface Raw {
  id: string
  device_id: string
  campaign_id: string
  created_at: string
  json: string
  current: number
}

/** A stored profile's document: JSON, then the schema; either failure names the profile. */
function documentOf(id: string, json: string): CalibrationProfile {
  let parsed: unknown
  try {
    parsed = JSON.parse(json)
  } catch (err) {
    throw new UserError(`stored profile ${id} is not JSON (${errorMessage(err)})`)
  }
  return parseProfile(parsed, `stored profile ${id}`)
}

function row(r: Raw): StoredProfile {
  let doc: CalibrationProfile | undefined
  return {
    id: r.id,
    agentId: r.device_id,
    campaignId: r.campaign_id,
    createdAt: r.created_at,
    current: r.current === 1,
    get profile() {
      doc ??= documentOf(r.id, r.json)
      return doc
    }
  }
}

export class ProfileQueries {
  constructor(private readonly db: Database.Database) {}

  get(id: string): StoredProfile | undefined {
    const r = this.db.prepare('SELECT * FROM profiles WHERE id = ?').get(id) as Raw | undefined
    return r && row(r)
  }

  /** The device's current profile, if any. */
  current(agentId: string): StoredProfile | undefined {
    const r = this.db.prepare('SELECT * FROM profiles WHERE device_id = ? AND current = 1').get(agentId) as Raw | undefined
    return r && row(r)
  }

  byCampaign(campaignId: string): StoredProfile | undefined {
    const r = this.db.prepare('SELECT * FROM profiles WHERE campaign_id = ?').get(campaignId) as Raw | undefined
    return r && row(r)
  }

  inCampaigns(campaignIds: readonly string[]): StoredProfile[] {
    if (!campaignIds.length) return []
    const marks = campaignIds.map(() => '?').join(',')
    return (this.db.prepare(`SELECT * FROM profiles WHERE campaign_id IN (${marks})`).all(...campaignIds) as Raw[]).map(row)
  }

  /** A device's profiles with their campaign's kind, newest first. */
  forDevice(agentId: string): (StoredProfile & { campaignKind: string })[] {
    const rows = this.db
      .prepare('SELECT p.*, c.kind FROM profiles p JOIN campaigns c ON c.id = p.campaign_id WHERE p.device_id = ? ORDER BY p.created_at DESC')
      .all(agentId) as (Raw & { kind: string })[]
    return rows.map((r) => Object.assign(row(r), { campaignKind: r.kind }))
  }

  /** Makes a profile the device's current one (null: none), in one transaction. */
  makeCurrent(agentId: string, profileId: string | null): void {
    this.db.transaction(() => {
      this.db.prepare('UPDATE profiles SET current = 0 WHERE device_id = ?').run(agentId)
      if (profileId !== null) this.db.prepare('UPDATE profiles SET current = 1 WHERE id = ? AND device_id = ?').run(profileId, agentId)
    })()
  }

  /**
   * Sets which of a profile's regressors predicts, and who chose it (`'user'`, or the plans campaign
   * and its reason), read and written in one transaction. Returns the document as stored.
   */
  chooseRegressor(id: string, regressor: Regressor, chosenBy: string): CalibrationProfile {
    return this.db.transaction(() => {
      const r = this.db.prepare('SELECT json FROM profiles WHERE id = ?').get(id) as { json: string } | undefined
      if (!r) throw new UserError(`unknown profile "${id}"`)
      const doc: CalibrationProfile = { ...documentOf(id, r.json), regressor, regressorChosenBy: chosenBy }
      this.db.prepare('UPDATE profiles SET json = ? WHERE id = ?').run(JSON.stringify(parseProfile(doc, `profile ${id}`)), id)
      return doc
    })()
  }

  /**
   * Stores a profile (checked against the schema first: nothing invalid is kept); `current: 'yes'`
   * makes it the device's current one, `'if-none'` only when the device has none (an import must not
   * change what a console plans with).
   */
  insert(p: { id: string; agentId: string; campaignId: string; createdAt: string; profile: CalibrationProfile }, current: 'yes' | 'if-none'): void {
    const json = JSON.stringify(parseProfile(p.profile, `profile ${p.id}`))
    this.db.transaction(() => {
      const makeCurrent = current === 'yes' || !this.current(p.agentId)
      this.db
        .prepare('INSERT INTO profiles (id, device_id, campaign_id, created_at, json, current) VALUES (?, ?, ?, ?, ?, 0)')
        .run(p.id, p.agentId, p.campaignId, p.createdAt, json)
      if (makeCurrent) this.makeCurrent(p.agentId, p.id)
    })()
  }
}
