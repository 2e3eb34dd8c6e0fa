/**
 * Fitted calibration profiles. "Which profile is current" is decided here and nowhere else: at most
 * one per device; a completed campaign's profile becomes current, `useProfile` selects one of the
 * device's own or none, and an imported profile becomes current only for a device without one.
 */
import type Database from 'better-sqlite3'

export interface ProfileRow {
  id: string
  deviceId: string
  campaignId: string
  createdAt: string
  json: string
  current: boolean
}

interface Raw {
  id: string
  device_id: string
  campaign_id: string
  created_at: string
  json: string
  current: number
}

const row = (r: Raw): ProfileRow => ({
  id: r.id,
  deviceId: r.device_id,
  campaignId: r.campaign_id,
  createdAt: r.created_at,
  json: r.json,
  current: r.current === 1
})

export class ProfileQueries {
  constructor(private readonly db: Database.Database) {}

  get(id: string): ProfileRow | undefined {
    const r = this.db.prepare('SELECT * FROM profiles WHERE id = ?').get(id) as Raw | undefined
    return r && row(r)
  }

  /** The device's current profile, if any. */
  current(deviceId: string): ProfileRow | undefined {
    const r = this.db.prepare('SELECT * FROM profiles WHERE device_id = ? AND current = 1').get(deviceId) as Raw | undefined
    return r && row(r)
  }

  byCampaign(campaignId: string): ProfileRow | undefined {
    const r = this.db.prepare('SELECT * FROM profiles WHERE campaign_id = ?').get(campaignId) as Raw | undefined
    return r && row(r)
  }

  inCampaigns(campaignIds: readonly string[]): ProfileRow[] {
    if (!campaignIds.length) return []
    const marks = campaignIds.map(() => '?').join(',')
    return (this.db.prepare(`SELECT * FROM profiles WHERE campaign_id IN (${marks})`).all(...campaignIds) as Raw[]).map(row)
  }

  /** A device's profiles with their campaign's kind, newest first. */
  forDevice(deviceId: string): (ProfileRow & { campaignKind: string })[] {
    const rows = this.db
      .prepare('SELECT p.*, c.kind FROM profiles p JOIN campaigns c ON c.id = p.campaign_id WHERE p.device_id = ? ORDER BY p.created_at DESC')
      .all(deviceId) as (Raw & { kind: string })[]
    return rows.map((r) => ({ ...row(r), campaignKind: r.kind }))
  }

  /** Makes a profile the device's current one (null: none), in one transaction. */
  makeCurrent(deviceId: string, profileId: string | null): void {
    this.db.transaction(() => {
      this.db.prepare('UPDATE profiles SET current = 0 WHERE device_id = ?').run(deviceId)
      if (profileId !== null) this.db.prepare('UPDATE profiles SET current = 1 WHERE id = ? AND device_id = ?').run(profileId, deviceId)
    })()
  }

  /** Replaces a stored profile's JSON (its regressor chosen by a plans campaign or by the user). */
  updateJson(id: string, json: string): void {
    this.db.prepare('UPDATE profiles SET json = ? WHERE id = ?').run(json, id)
  }

  /**
   * Stores a profile; `current: 'yes'` makes it the device's current one, `'if-none'` only when the
   * device has none (an import must not change what a console plans with).
   */
  insert(p: { id: string; deviceId: string; campaignId: string; createdAt: string; json: string }, current: 'yes' | 'if-none'): void {
    this.db.transaction(() => {
      const makeCurrent = current === 'yes' || !this.current(p.deviceId)
      this.db
        .prepare('INSERT INTO profiles (id, device_id, campaign_id, created_at, json, current) VALUES (?, ?, ?, ?, ?, 0)')
        .run(p.id, p.deviceId, p.campaignId, p.createdAt, p.json)
      if (makeCurrent) this.makeCurrent(p.deviceId, p.id)
    })()
  }
}
