/**
 * Payloads of the MQTT protocol (JSON, `schema` for minor versions, unknown fields ignored) and the
 * request/response envelopes (zigbee2mqtt style: {transaction, status, data | error}).
 */
import { z } from 'zod'
import { ConsoleStagesSchema } from './stages.js'
import { CODECS } from '../algorithms/codecs.js'
import { UserError, describeIssues } from '../errors.js'
import { safeText } from '../text.js'

export const SCHEMA = 1

export const StateSchema = z.object({
  schema: z.number().int().default(SCHEMA),
  state: z.enum(['online', 'offline', 'busy']),
  at: z.string().optional(),
  planId: z.string().optional()
})
export type AgentState = z.infer<typeof StateSchema>

/** A string a page shows: bounded, its control and bidirectional characters replaced (text.ts). */
const shown = (max: number) => z.string().max(max).transform(safeText)

export const HelloSchema = z.object({
  schema: z.number().int().default(SCHEMA),
  agentId: z.string(),
  arch: shown(40),
  platform: shown(40),
  cpus: z.number().int().nonnegative(),
  memoryBytes: z.number().nonnegative(),
  versions: z.record(z.string().max(40), shown(100)),
  models: z.array(z.object({ id: z.string(), sha256: z.string().optional(), onnxBytes: z.number().optional() })),
  /** How the device is slowed or shaped, when it is an emulated one. */
  emulation: z.record(z.string(), z.unknown()).optional(),
  /** The activation codecs it can send (codecs.ts); absent: an agent from before codecs (f32 only). */
  codecs: z.array(z.string().max(16)).max(32).optional(),
  /** Its encoding cost per codec, ns a value, measured at start (codec-cost.ts): the planner prices codecs with it. */
  codecEncodeNs: z.record(z.string().max(16), z.number().nonnegative().max(1e6)).optional(),
  /** It runs confidence-exit policies (a plan's `policy`); absent: an agent from before them, planned statically. */
  policies: z.boolean().optional(),
  startedAt: z.string().optional(),
  /** The hardware and OS (src/main/runtime/machine.ts), recorded with every campaign. */
  machine: z
    .object({
      cpuModel: shown(200),
      cores: z.number().int().nonnegative(),
      cpuMaxMHz: z.number().nonnegative().nullable(),
      cpuCurMHz: z.number().nonnegative().nullable(),
      os: shown(300),
      arch: shown(40),
      memoryBytes: z.number().nonnegative(),
      node: shown(40),
      onnxruntime: z.string().max(40)
    })
    .optional()
})
export type Hello = z.infer<typeof HelloSchema>

/** A device's periodic health report (the agent's `health` topic; src/main/runtime/health.ts). */
export const HealthSchema = z.object({
  at: z.string().max(40),
  temperatureC: z.number().min(-60).max(200).nullable(),
  cpuCurMHz: z.number().nonnegative().max(100_000).nullable(),
  cpuMaxMHz: z.number().nonnegative().max(100_000).nullable(),
  governor: z.string().max(40).nullable(),
  throttled: z.object({ bits: z.number().int().nonnegative(), flags: z.array(z.string().max(60)).max(16) }).nullable(),
  load: z.array(z.number().nonnegative()).length(3),
  freeMemoryBytes: z.number().nonnegative(),
  availableMemoryBytes: z.number().nonnegative().nullable()
})
export type Health = z.infer<typeof HealthSchema>

/**
 * A plan's confidence-exit policy (issue 31; `edgent model policies`): every frame passes the exits on
 * its path and leaves at the first whose calibrated confidence reaches its threshold (null: never
 * there; the final exit always answers). Thresholds and temperatures are per exit, in the manifest's
 * exit order. Absent: a static plan, which runs `exit` only.
 */
export const PlanPolicySchema = z.object({
  /** Which of the manifest's Pareto policies (its index), for people and the store; the thresholds below are what runs. */
  index: z.number().int().nonnegative().max(255),
  measure: z.enum(['max-softmax', 'entropy']),
  thresholds: z.array(z.number().min(0).max(1).nullable()).min(2).max(64),
  temperatures: z.array(z.number().positive().max(1000)).min(2).max(64),
  /** The share of frames run to the final exit whatever their confidence (label-free audits), 0..1; absent: none. */
  auditShare: z.number().min(0).max(1).optional()
})
export type PlanPolicy = z.infer<typeof PlanPolicySchema>

export const PlanSchema = z.object({
  schema: z.number().int().default(SCHEMA),
  planId: z.string().min(1).max(64),
  model: z.string(),
  /** The model's ONNX file's SHA-256: an agent runs a plan only with exactly this model. */
  modelSha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  exit: z.number().int().positive(),
  deviceLayers: z.number().int().nonnegative(),
  layers: z.number().int().positive(),
  latencyMs: z.number().positive(),
  uplinkKbps: z.number().positive(),
  predictedMs: z.number().nonnegative(),
  feasible: z.boolean(),
  /** The largest activation frame the console accepts, bytes: an agent sends nothing larger (absent: an older console). */
  maxFrameBytes: z.number().int().positive().optional(),
  /**
   * A requirement at a percentile (tail-aware planning): `latencyMs` is to hold for this share of
   * inferences, `predictedPercentileMs` is the plan's predicted latency at it; `predictedMs` stays the
   * typical (median) prediction. Absent: the requirement is on the typical inference.
   */
  percentile: z.number().min(50).max(99.9).optional(),
  predictedPercentileMs: z.number().nonnegative().optional(),
  /** How the activation crosses the link (codecs.ts); absent: f32 (agents before codecs send nothing else). */
  codec: z.enum(CODECS).optional(),
  /** Confidence exits (PlanPolicySchema): `exit` is then the final exit, the path every frame may run to. */
  policy: PlanPolicySchema.optional(),
  reason: z.string().optional(),
  at: z.string().optional()
})
export type PlanMessage = z.infer<typeof PlanSchema>

export const RequestSchema = z.object({ transaction: z.string().min(1).max(64) }).loose()
export type RequestEnvelope = z.infer<typeof RequestSchema>

export const ResponseSchema = z.union([
  z.object({ transaction: z.string(), status: z.literal('ok'), data: z.unknown() }),
  z.object({ transaction: z.string(), status: z.literal('error'), error: z.string() })
])
export type ResponseEnvelope = z.infer<typeof ResponseSchema>

export const ResultSchema = z.object({
  schema: z.number().int().default(SCHEMA),
  requestId: z.string(),
  planId: z.string(),
  exit: z.number().int().positive(),
  label: z.number().int().nonnegative(),
  scores: z.array(z.number()),
  edgeMs: z.number().nonnegative(),
  /** Console-side time from the activation's arrival to the result's publication, ms. */
  edgeTotalMs: z.number().nonnegative().optional(),
  /** Where the console's share went (stages.ts); consoles before it send none. */
  stages: ConsoleStagesSchema.optional(),
  error: z.string().optional()
})
export type ResultMessage = z.infer<typeof ResultSchema>

/**
 * An activation the console refused (over the agent's rates, an unknown plan, a malformed frame): said
 * as a refusal on the result topic — never as a result of a plan that did not run — so that the agent
 * stops waiting for it and counts it lost.
 */
export const RefusalSchema = z.object({
  schema: z.number().int().default(SCHEMA),
  requestId: z.string(),
  refused: z.string().max(2000)
})
export type RefusalMessage = z.infer<typeof RefusalSchema>

/** What the result topic carries: a result, or a refusal. */
export const ResultOrRefusalSchema = z.union([RefusalSchema, ResultSchema])
export type ResultOrRefusal = z.infer<typeof ResultOrRefusalSchema>

/**
 * How deep a message's JSON may nest. Every document of the protocol is a few levels deep; one nested
 * 20,000 levels (a 40 KB hello) overflowed the stack of every JSON.stringify that met it — the
 * `devices` call, for every caller, until a restart.
 */
export const MAX_JSON_DEPTH = 32

/** The deepest nesting of objects and arrays in a JSON text, found without recursion (strings skipped). */
export function jsonDepth(text: string): number {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 92)
        i++ // a backslash escapes the next character
      else if (c === 34) inString = false
      continue
    }
    if (c === 34) inString = true
    else if (c === 123 || c === 91) max = Math.max(max, ++depth)
    else if (c === 125 || c === 93) depth--
  }
  return max
}

/** JSON text parsed, or a UserError naming `source`: not JSON, or nested deeper than MAX_JSON_DEPTH. */
export function parseBoundedJson(text: string, source: string): unknown {
  const depth = jsonDepth(text)
  if (depth > MAX_JSON_DEPTH) throw new UserError(`${source}: nested ${depth} levels deep, more than the ${MAX_JSON_DEPTH} a message may have`)
  try {
    return JSON.parse(text)
  } catch {
    throw new UserError(`${source}: payload is not JSON`)
  }
}

/** Parses a JSON payload against a schema (bounded in depth); a UserError names the topic and the first problem. */
export function parsePayload<T>(schema: z.ZodType<T>, payload: Uint8Array | string, topic: string): T {
  const json = parseBoundedJson(typeof payload === 'string' ? payload : new TextDecoder().decode(payload), topic)
  const r = schema.safeParse(json)
  if (!r.success) throw new UserError(describeIssues(topic, r.error.issues))
  return r.data
}

export function encodeJson(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value))
}

/** What a device's hello says about its compute speed: its emulated CPU and its processor (not its clock now, nor its link). */
export interface ComputeIdentity {
  /** Compared for equality: a different key is a different speed. */
  key: string
  /** For people: "slowdown ×30 · 4-core Cortex-A72". */
  text: string
}

export function computeIdentity(h: Hello | null | undefined): ComputeIdentity | null {
  if (!h) return null
  const cpu = (h.emulation?.['cpu'] ?? null) as Record<string, unknown> | null
  const m = h.machine
  const key = JSON.stringify({ cpu, cpuModel: m?.cpuModel ?? null, cores: m?.cores ?? h.cpus, cpuMaxMHz: m?.cpuMaxMHz ?? null })
  const emulated =
    cpu && typeof cpu['factor'] === 'number'
      ? `slowdown ×${+cpu['factor'].toFixed(2)}`
      : cpu && typeof cpu['quota'] === 'number'
        ? `CPU quota ${cpu['quota']}`
        : cpu
          ? 'an emulated CPU'
          : 'no emulation'
  return { key, text: `${emulated} · ${m ? `${m.cores}-core ${m.cpuModel}` : `${h.cpus} cores`}` }
}
