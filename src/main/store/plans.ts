/** Plans pushed to devices (one row per push; inferences name theirs). */
import type Database from 'better-sqlite3'
import type { PlanPolicy } from '../../shared/contracts/messages.js'

export interface PlanRecord {
  planId: string
  agentId: string
  model: string
  exit: number
  deviceLayers: number
  layers: number
  latencyMs: number
  /** The uplink rate the plan assumed, kbit/s. */
  uplinkKbps: number
  predictedMs: number
  feasible: boolean
  reason: string
  at: string
  /** A confidence-exit plan's policy (stored as JSON). */
  policy?: PlanPolicy
}

export class PlanQueries {
  constructor(private readonly db: Database.Database) {}

  insert(p: PlanRecord): void {
    this.db
      .prepare(
        'INSERT INTO plans (id, device_id, model, exit, device_layers, layers, latency_ms, uplink_kbps, predicted_ms, feasible, reason, created_at, policy_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)'
      )
      .run(
        p.planId,
        p.agentId,
        p.model,
        p.exit,
        p.deviceLayers,
        p.layers,
        p.latencyMs,
        p.uplinkKbps,
        p.predictedMs,
        p.feasible ? 1 : 0,
        p.reason,
        p.at,
        p.policy ? JSON.stringify(p.policy) : null
      )
  }
}
