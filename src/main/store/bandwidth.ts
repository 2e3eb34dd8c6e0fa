/** Uplink samples (activation transfers and probes) with the estimate after each. */
import type Database from 'better-sqlite3'
import type { BandwidthPoint } from '../../shared/contracts/console-api.js'
import type { ExportDocument, ExportFormat } from './calibration.js'
import { exportTable } from './table-export.js'

export class BandwidthQueries {
  constructor(private readonly db: Database.Database) {}

  add(
    agentId: string,
    source: BandwidthPoint['source'],
    bytes: number,
    uplinkSampleKbps: number,
    uplinkEstimateKbps: number,
    at = new Date().toISOString()
  ): void {
    this.db
      .prepare('INSERT INTO bandwidth_samples (device_id, source, bytes, sample_kbps, estimate_kbps, at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(agentId, source, bytes, uplinkSampleKbps, uplinkEstimateKbps, at)
  }

  /** A device's latest `limit` samples, oldest first. */
  latest(agentId: string, limit: number): (BandwidthPoint & { bytes: number })[] {
    const rows = this.db
      .prepare('SELECT at, source, bytes, sample_kbps, estimate_kbps FROM bandwidth_samples WHERE device_id = ? ORDER BY id DESC LIMIT ?')
      .all(agentId, limit) as {
      at: string
      source: BandwidthPoint['source']
      bytes: number
      sample_kbps: number
      estimate_kbps: number
    }[]
    return rows.reverse().map((r) => ({ at: r.at, source: r.source, bytes: r.bytes, uplinkSampleKbps: r.sample_kbps, uplinkEstimateKbps: r.estimate_kbps }))
  }

  /** Every uplink sample (of one device, or all) as a file. */
  export(format: ExportFormat, agentId?: string): ExportDocument {
    return exportTable(this.db, 'bandwidth', format, agentId)
  }
}
