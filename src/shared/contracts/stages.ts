/**
 * Where one co-inference's time goes (DESIGN.md, "Where the time goes"). Each side times its own
 * stages on its own clock; the two one-way message times need one clock on both sides (an agent on
 * the console's machine, as in `npm run bench -- relay`), while `wireMs` — both ways together — is
 * clock-free: the agent's publish-to-result time less the console's arrival-to-publish time.
 */
import { median } from 'simple-statistics'
import { z } from 'zod'

const ms = z.number().finite().nonnegative()

/** Now on a clock shared by the threads and processes of one machine (ms since the epoch, sub-ms). */
export function epochNow(): number {
  return performance.timeOrigin + performance.now()
}

/** The console's half, sent with the result. */
export const ConsoleStagesSchema = z.object({
  /** When the frame reached the console's handler (epochNow). */
  arrivedAt: z.number().finite(),
  /** Decoding, admission and checks, until the edge segment is asked for. */
  admitMs: ms,
  /** Waiting for the edge: the device's previous frame and other devices' runs (the executor's queue). */
  queueMs: ms,
  /** The hand-off to the ORT worker and back, less the run itself. */
  handoffMs: ms,
  /** The edge segment's `session.run`. */
  edgeMs: ms,
  /** From the worker's answer to the result handed to the broker (epochNow), the result's encoding excluded. */
  publishedAt: z.number().finite()
})
export type ConsoleStages = z.infer<typeof ConsoleStagesSchema>

/** One co-inference's stages as the agent saw them, with the console's half joined in. */
export const StagesSchema = z.object({
  preprocessMs: ms,
  /** The device segment's `session.run` (emulated slow-down included). */
  deviceMs: ms,
  /** The hand-off to the agent's ORT worker and back, less the run. */
  deviceHandoffMs: ms,
  encodeMs: ms,
  /** The emulated uplink's wait before the publish (an agent started with --uplink-kbps; else 0). */
  emulatedUplinkMs: ms,
  /** The MQTT client's publish call (serialising and writing the PUBLISH). */
  publishMs: ms,
  /** Publish call returned → console handler (one clock only: same machine). */
  uplinkMs: z.number().finite(),
  admitMs: ms,
  queueMs: ms,
  handoffMs: ms,
  edgeMs: ms,
  /** The console's whole share, arrival → result handed to the broker. */
  consoleMs: ms,
  /** Result handed to the broker → agent handler, its encoding included (one clock only). */
  downlinkMs: z.number().finite(),
  /** Agent handler → the inference resumes with its result (parse and dispatch). */
  receiveMs: ms,
  /** Both message legs together, clock-free: publish returned → result handler, less consoleMs. */
  wireMs: z.number().finite()
})
export type Stages = z.infer<typeof StagesSchema>

export type StageName = keyof Stages

/** Each stage's median over inferences (null when none carries stages). */
export function stageMedians(all: readonly Stages[]): Record<StageName, number> | null {
  if (!all.length) return null
  const out = {} as Record<StageName, number>
  for (const k of Object.keys(all[0]!) as StageName[]) out[k] = median(all.map((s) => s[k]))
  return out
}

/** The order stages are reported in (bench, API). */
export const STAGE_ORDER = [
  'preprocessMs',
  'deviceMs',
  'deviceHandoffMs',
  'encodeMs',
  'emulatedUplinkMs',
  'publishMs',
  'uplinkMs',
  'admitMs',
  'queueMs',
  'handoffMs',
  'edgeMs',
  'downlinkMs',
  'receiveMs'
] as const satisfies readonly (keyof Stages)[]
