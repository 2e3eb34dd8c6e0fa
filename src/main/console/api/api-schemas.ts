/**
 * Argument schemas of the console API (`src/shared/contracts/console-api.ts`), one per method. Every transport
 * (IPC, WebSocket, loopback HTTP) checks its arguments here before the service sees them.
 */
import { z } from 'zod'
import { CODECS } from '../../../shared/algorithms/codecs.js'
import { UserError, describeIssues } from '../../../shared/errors.js'
import { CAMPAIGN_KINDS, METHOD_NAMES, type ArgsOf, type MethodName } from '../../../shared/contracts/console-api.js'
import { SettingsSchema } from '../../../shared/contracts/settings.js'
import { TIMING_REGIMES } from '../../../shared/contracts/agent-api.js'
import { PERCENTILE_RANGE } from '../../../shared/algorithms/tail.js'
import { REGRESSORS } from '../../../shared/algorithms/latency.js'
import { NoteSchema, TagSchema, TagsSchema } from '../../../shared/contracts/annotations.js'

const none = z.object({}).strict()
const agent = z.string().min(1).max(64)

const modelId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,127}$/, 'expected a library model id')

/** What an upload answered (src/main/console/api/uploads.ts). */
const uploadId = z.string().regex(/^[a-f0-9]{24}$/, 'expected an upload id')

export const API_SCHEMAS = {
  status: none,
  settings: none,
  settingsUpdate: z.object({ settings: SettingsSchema }).strict(),
  devices: none,
  pair: z.object({ id: z.string().min(1).max(64), force: z.boolean().optional() }).strict(),
  unpair: z.object({ id: z.string().min(1).max(64) }).strict(),
  workers: none,
  workerPair: z.object({ id: z.string().min(1).max(64), force: z.boolean().optional() }).strict(),
  workerUnpair: z.object({ id: z.string().min(1).max(64) }).strict(),
  campaigns: none,
  campaignStart: z
    .object({
      agent,
      kind: z.enum(CAMPAIGN_KINDS, {
        error: (i) => `unknown campaign kind ${JSON.stringify(String(i.input).slice(0, 32))} (kinds: ${CAMPAIGN_KINDS.join(', ')})`
      }),
      reps: z.number().int().positive().max(200).default(5),
      bandwidthsKbps: z.array(z.number().positive().max(1e7)).min(1).max(50).optional(),
      latenciesMs: z.array(z.number().positive().max(3.6e6)).min(1).max(50).optional(),
      uplinkKbps: z.number().min(1).max(1e7).optional(),
      timing: z.enum(TIMING_REGIMES).optional(),
      tags: TagsSchema.optional(),
      note: NoteSchema.optional()
    })
    .strict(),
  campaignStatus: z.object({ id: z.string().min(1).max(128) }).strict(),
  campaignCancel: z.object({ id: z.string().min(1).max(128) }).strict(),
  calibration: z.object({ campaign: z.string().min(1).max(128) }).strict(),
  modelInfo: z.object({ agent: agent.optional() }).strict(),
  layerLatencies: z.object({ agent, exit: z.number().int().positive().optional() }).strict(),
  costTable: z.object({ agent }).strict(),
  infer: z
    .object({
      agent,
      count: z.number().int().positive().max(100_000),
      latencyMs: z.number().positive().max(3_600_000),
      /** Plan for this uplink rate (fixed) instead of the live estimate. */
      uplinkKbps: z.number().positive().max(1e8).optional(),
      plan: z
        .object({
          exit: z.number().int().positive(),
          deviceLayers: z.number().int().nonnegative(),
          codec: z.enum(CODECS).optional(),
          /** A confidence-exit policy of the model (its index; `exit` is then the final exit). */
          policy: z.number().int().nonnegative().max(255).optional()
        })
        .strict()
        .optional(),
      /** The requirement holds at this percentile of inferences (tail-aware planning). */
      percentile: z.number().min(PERCENTILE_RANGE[0]).max(PERCENTILE_RANGE[1]).optional(),
      tags: TagsSchema.optional(),
      note: NoteSchema.optional(),
      continues: z.string().min(1).max(128).optional()
    })
    .strict(),
  runs: z
    .object({
      agent: agent.optional(),
      source: z.enum(['user', 'campaign', 'all']).default('user'),
      tag: TagSchema.optional(),
      limit: z.number().int().positive().max(1000).default(200)
    })
    .strict(),
  annotate: z
    .object({ target: z.enum(['run', 'campaign']), id: z.string().min(1).max(128), tags: TagsSchema.optional(), note: NoteSchema.optional() })
    .strict()
    .refine((a) => a.tags !== undefined || a.note !== undefined, 'give tags, a note or both'),
  runCompare: z.object({ a: z.string().min(1).max(128), b: z.string().min(1).max(128) }).strict(),
  tail: z.object({ agent, percentile: z.number().min(PERCENTILE_RANGE[0]).max(PERCENTILE_RANGE[1]) }).strict(),
  load: z.object({}).strict(),
  inferences: z
    .object({
      agent,
      limit: z.number().int().positive().max(100_000).default(10_000),
      afterId: z.number().int().nonnegative().optional(),
      source: z.enum(['user', 'campaign', 'all']).default('all')
    })
    .strict(),
  bandwidth: z.object({ agent, limit: z.number().int().positive().max(100_000).default(2_000) }).strict(),
  profiles: z.object({ agent }).strict(),
  useProfile: z.object({ agent, profile: z.string().min(1).max(200).nullable(), regressor: z.enum(REGRESSORS).optional() }).strict(),
  models: none,
  modelCuts: z.object({ model: modelId }).strict(),
  modelUse: z.object({ model: modelId.nullable(), agent: agent.optional() }).strict(),
  transfers: none,
  modelImport: z
    .object({
      upload: uploadId,
      fileName: z.string().min(1).max(200),
      id: modelId.optional(),
      inputShape: z
        .array(
          z
            .number()
            .int()
            .positive()
            .max(1 << 16)
        )
        .min(2)
        .max(8)
        .optional(),
      preprocess: z
        .object({
          scale: z.number().positive().optional(),
          mean: z.array(z.number()).min(1).max(64).optional(),
          std: z.array(z.number().positive()).min(1).max(64).optional()
        })
        .strict()
        .optional(),
      accuracy: z.array(z.number().min(0).max(1)).min(1).max(64).optional(),
      images: uploadId.optional(),
      labels: uploadId.optional(),
      /** A labelled image folder on the console's machine (as --image-dir). */
      imageDir: z.string().min(1).max(4096).optional()
    })
    .strict(),
  modelExitsAdd: z
    .object({
      model: modelId,
      images: uploadId,
      labels: uploadId,
      testImages: uploadId.optional(),
      testLabels: uploadId.optional(),
      at: z.array(z.string().min(1).max(256)).min(1).max(8).optional(),
      count: z.number().int().min(1).max(8).optional(),
      id: modelId.optional(),
      epochs: z.number().int().min(1).max(1000).optional(),
      seed: z
        .number()
        .int()
        .min(0)
        .max(2 ** 31)
        .optional(),
      codecs: z.boolean().optional()
    })
    .strict(),
  modelJobs: none,
  modelJobCancel: z.object({ job: z.string().min(1).max(64) }).strict(),
  exitPolicies: z
    .object({
      agent,
      enabled: z.boolean().optional(),
      auditShare: z.number().min(0).max(1).optional(),
      bound: z.number().gt(0).lt(1).optional(),
      tune: z.boolean().optional()
    })
    .strict(),
  exportCalibration: z
    .object({
      format: z.enum(['json', 'csv']).default('json'),
      campaign: z.string().min(1).max(128).optional(),
      what: z.enum(['calibration', 'runs', 'bandwidth', 'plans']).default('calibration'),
      agent: agent.optional()
    })
    .strict()
} satisfies Record<MethodName, z.ZodType>

export function isMethod(name: unknown): name is MethodName {
  return typeof name === 'string' && (METHOD_NAMES as readonly string[]).includes(name)
}

/** Validates a call's arguments (absent = `{}`); a UserError names the method and what is wrong. */
export function parseArgs<M extends MethodName>(method: M, args: unknown): ArgsOf<M> {
  if (!isMethod(method)) throw new UserError(`unknown method "${String(method)}"`)
  const r = API_SCHEMAS[method].safeParse(args === undefined || args === null ? {} : args)
  if (!r.success) throw new UserError(describeIssues(method, r.error.issues))
  return r.data as ArgsOf<M>
}
