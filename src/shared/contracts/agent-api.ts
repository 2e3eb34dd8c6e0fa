/**
 * The console ↔ agent command contract: every command the console sends an agent over MQTT, as one
 * map of command name → argument schema and reply schema (zigbee2mqtt's bridge requests). The
 * console's `request()` is typed from it and validates every reply before use; the agent dispatches
 * through a handler table typed from it. Commands travel as `…/request/<command>` with the envelope
 * `{transaction, …args}` and come back as `…/response/<command>` with `{transaction, status, data |
 * error}` (messages.ts). Unknown fields are ignored on both sides (DESIGN.md, "MQTT protocol").
 */
import { z } from 'zod'
import { StagesSchema } from './stages.js'
import { UserError, describeIssues } from '../errors.js'
import { MAX_UPLINK_KBPS } from './frame.js'
import { REGRESSION_KEYS } from '../algorithms/latency.js'
import { SyntheticSpecSchema } from '../onnx/onnx-builder.js'

const finiteMs = z.number().nonnegative()

/** One co-inference as the agent saw it (its clock): the console joins it with its own half. */
export const InferenceRecordSchema = z.object({
  requestId: z.string().min(1).max(128),
  /** Index in the shipped samples; null for an image given through the library API. */
  sample: z.number().int().nonnegative().nullable(),
  label: z.number().int().nonnegative().nullable(),
  deviceMs: finiteMs,
  /** Time from handing the frame to MQTT until its PUBACK, ms. */
  ackMs: finiteMs,
  e2eMs: finiteMs,
  /** -1 when the inference was lost (no result within the agent's timeout). */
  predictedLabel: z.number().int().min(-1),
  uploadBytes: z.number().int().nonnegative(),
  lost: z.boolean().optional(),
  /** Under a confidence-exit policy: the exit that answered, and on which side. */
  exit: z.number().int().positive().optional(),
  side: z.enum(['device', 'edge']).optional(),
  /** Where the time went, stage by stage (stages.ts), when both sides timed theirs. */
  stages: StagesSchema.optional()
})
export type InferenceRecord = z.infer<typeof InferenceRecordSchema>

/** Per-layer times of one model on one side (single-layer slices and fused exits), ms. */
export const LayerTableSchema = z.object({
  model: z.string().min(1),
  /** Median ms of each layer's single-layer slice. */
  layerMs: z.record(z.string(), finiteMs),
  /** Median ms of each exit as one fused session. */
  exitFusedMs: z.record(z.string(), finiteMs),
  reps: z.number().int().positive(),
  /**
   * Median ms of each session a confidence-exit policy runs on this side when every layer and head is
   * here (the trunk between branch points, each exit's head), timed in sequence as the agent runs
   * them: keyed `exit/from-to` (pieceKey). Absent for one-exit models and older agents.
   */
  piecesMs: z.record(z.string(), finiteMs).optional(),
  /** Every repetition's ms of each layer's slice (the medians above come from these). */
  layerRepsMs: z.record(z.string(), z.array(finiteMs).max(10_000)).optional()
})
export type LayerTable = z.infer<typeof LayerTableSchema>

/** One synthetic single-layer model timed on one side (a `layers` campaign's unit of work). */
export const LayerMeasurementSchema = z.object({
  key: z.string().min(1),
  spec: SyntheticSpecSchema,
  regressionKey: z.enum(REGRESSION_KEYS),
  /** The layer's fit variables (FIT_FEATURES order). */
  features: z.array(z.number()),
  /** Median run time, ms. */
  runMs: finiteMs,
  /** Every repetition's run time, ms (runMs is their median). */
  repsMs: z.array(finiteMs).max(1000).optional(),
  /** Session creation from the model bytes, ms. */
  loadMs: finiteMs,
  modelBytes: z.number().int().nonnegative(),
  reps: z.number().int().positive()
})
export type LayerMeasurement = z.infer<typeof LayerMeasurementSchema>

/** Largest uplink probe, bytes (one MQTT packet under the broker's cap). */
export const MAX_PROBE_BYTES = 1 << 20

/**
 * The command set. `args` are what follows `transaction` in the request envelope (defaults filled
 * in by the agent); `reply` is the response envelope's `data`.
 */
/**
 * How a synthetic layer's runs are timed. `warm`: back to back, as the paper's per-layer benchmarks
 * (every cache holds the layer's weights and tensors). `cold`: each run after the caches were
 * flushed and the thread idled, as a segment runs in co-inference, once per inference with the
 * messaging and the other side's work in between.
 */
export const TIMING_REGIMES = ['warm', 'cold'] as const
export type TimingRegime = (typeof TIMING_REGIMES)[number]

/** A `run-batch` reply's row, JSON, at most (measured: ~0.65 KB with every stage timed, ~0.18 KB without). */
export const BATCH_ROW_BYTES = 1024

/**
 * Rows the console asks for per `run-batch` at an uplink of `kbps`: a reply that crosses it in about
 * two seconds (20–500 rows). An MQTT broker drops a client that completes no packet within 1.5×
 * its keepalive (the agent's: 15 s), and the client would send the same reply again at every
 * reconnect: one reply of 2,000 rows (~1.3 MB) takes ~42 s at 250 kbps.
 */
export function batchPageRows(kbps: number): number {
  const bytes = (Math.max(0, kbps) * 1000 * 2) / 8
  return Math.max(20, Math.min(500, Math.floor(bytes / BATCH_ROW_BYTES)))
}

export const AGENT_COMMANDS = {
  /** Runs `count` co-inferences of the shipped samples under the current plan. */
  'run-batch': {
    args: z.object({ runId: z.string().min(1).max(64), count: z.number().int().min(1).max(100_000), offset: z.number().int().nonnegative().default(0) }),
    reply: z.object({ runId: z.string(), planId: z.string(), rows: z.array(InferenceRecordSchema) })
  },
  /** A packet-train probe of the uplink (a lead message, then `bytes`). */
  probe: {
    args: z.object({ bytes: z.number().int().min(64).max(MAX_PROBE_BYTES).default(16384) }),
    reply: z.object({ bytes: z.number().int().positive(), ackMs: finiteMs, rttMs: finiteMs, uplinkSampleKbps: z.number().positive().max(MAX_UPLINK_KBPS) })
  },
  /** Times every layer of one of the agent's models (default: the one its plan names, else its own) — single-layer slices and fused exits. */
  'profile-layers': {
    args: z.object({ reps: z.number().int().min(1).max(1000).default(10), model: z.string().min(1).max(64).optional() }),
    reply: LayerTableSchema
  },
  /**
   * Makes the agent hold a model: from its cache when there, else fetched from the console
   * (src/shared/contracts/model-transfer.ts), checked and written atomically into its cache; then opened.
   */
  'load-model': {
    args: z.object({ model: z.string().min(1).max(64), sha256: z.string().regex(/^[0-9a-f]{64}$/) }),
    reply: z.object({
      model: z.string(),
      sha256: z.string(),
      /** 'cache': it was there; 'fetched': transferred now. */
      source: z.enum(['cache', 'fetched', 'local']),
      fetchedBytes: z.number().int().nonnegative(),
      /** Bytes found on disk from an interrupted transfer and not fetched again. */
      resumedBytes: z.number().int().nonnegative(),
      /** Chunks refused (checksum, offset or size wrong) and fetched again. */
      refusedChunks: z.number().int().nonnegative(),
      ms: finiteMs
    })
  },
  /** Times synthetic single-layer models (a `layers` campaign's chunk). */
  'time-layers': {
    args: z.object({
      specs: z.array(SyntheticSpecSchema).min(1).max(64),
      reps: z.number().int().min(1).max(200).default(5),
      /** `warm`: runs back to back; `cold`: each run after the caches are flushed and a short idle (TIMING_REGIMES). */
      regime: z.enum(TIMING_REGIMES).default('warm')
    }),
    reply: z.array(LayerMeasurementSchema)
  },
  /** Sets an emulated uplink's rate; refused by an agent without one. */
  'set-uplink': {
    args: z.object({ kbps: z.number().min(1).max(1e7) }),
    reply: z.object({ previousKbps: z.number().positive(), kbps: z.number().positive() })
  },
  /** Ends a running batch after its current inference (its caller went away): `run-batch` answers with the rows done. */
  'stop-batch': {
    args: z.object({ runId: z.string().min(1).max(64) }),
    reply: z.object({ runId: z.string(), stopped: z.boolean() })
  }
} as const satisfies Record<string, { args: z.ZodType; reply: z.ZodType }>

export type AgentCommand = keyof typeof AGENT_COMMANDS
export const AGENT_COMMAND_NAMES: readonly AgentCommand[] = Object.freeze(Object.keys(AGENT_COMMANDS) as AgentCommand[])
/** What the console sends (defaults may be left out). */
export type CommandArgsIn<C extends AgentCommand> = z.input<(typeof AGENT_COMMANDS)[C]['args']>
/** What the agent's handler receives (defaults filled in). */
export type CommandArgs<C extends AgentCommand> = z.output<(typeof AGENT_COMMANDS)[C]['args']>
export type CommandReply<C extends AgentCommand> = z.output<(typeof AGENT_COMMANDS)[C]['reply']>

/** The console's side: one command to one agent, resolving with the validated reply. */
export type AgentRequest = <C extends AgentCommand>(agentId: string, command: C, args: CommandArgsIn<C>, timeoutMs: number) => Promise<CommandReply<C>>

/** The agent's side: one handler per command. */
export type AgentHandlers = { [C in AgentCommand]: (args: CommandArgs<C>) => CommandReply<C> | Promise<CommandReply<C>> }

export function isAgentCommand(name: unknown): name is AgentCommand {
  return typeof name === 'string' && Object.hasOwn(AGENT_COMMANDS, name)
}

/** Validates a request's arguments; the UserError names the command and the field. */
export function parseCommandArgs<C extends AgentCommand>(command: C, raw: unknown): CommandArgs<C> {
  const r = AGENT_COMMANDS[command].args.safeParse(raw)
  if (!r.success) throw new UserError(describeIssues(`"${command}" arguments`, r.error.issues))
  return r.data as CommandArgs<C>
}

/** Validates a reply before the console uses it; the UserError names the agent, the command and the field. */
export function parseCommandReply<C extends AgentCommand>(command: C, raw: unknown, agentId: string): CommandReply<C> {
  const r = AGENT_COMMANDS[command].reply.safeParse(raw)
  if (!r.success) throw new UserError(describeIssues(`agent ${agentId}: malformed reply to "${command}"`, r.error.issues))
  return r.data as CommandReply<C>
}

/** Runs one command through a handler table: unknown commands and bad arguments are UserErrors. */
export async function dispatchCommand(handlers: AgentHandlers, command: string, raw: unknown): Promise<unknown> {
  if (!isAgentCommand(command)) throw new UserError(`unknown command "${command}" (commands: ${AGENT_COMMAND_NAMES.join(', ')})`)
  const args = parseCommandArgs(command, raw)
  const handler = handlers[command] as (a: typeof args) => unknown
  return await handler(args)
}
