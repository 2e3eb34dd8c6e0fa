/**
 * Edge workers (issue 34): what the console and a worker say to each other over MQTT
 * (topics.ts, `workerTopics`). A job is one segment of a model to run — the tensor frame's layout
 * (frame.ts) with a job header; the answer is the output tensor with an answer header, or an error.
 * Every message is checked here before anyone uses it; a worker's answer to a job it was not given
 * is refused by the console (workers.ts), not here.
 */
import { z } from 'zod'
import { SCHEMA } from './messages.js'

/** A worker publishes its load this often; missing for WORKER_DEAD_MS, it is dead and its jobs go elsewhere. */
export const WORKER_HEARTBEAT_MS = 250
export const WORKER_DEAD_MS = 1000

const shown = (n: number) => z.string().max(n)

export const WorkerHelloSchema = z.object({
  schema: z.number().int().default(SCHEMA),
  workerId: z.string().max(64),
  version: shown(40),
  /** Its ORT worker threads: the jobs it runs at once. */
  pool: z.number().int().positive().max(1024),
  cpus: z.number().int().nonnegative().max(4096),
  /** The models it holds, with their ONNX files' digests: it is sent jobs only of these, at these digests. */
  models: z.array(z.object({ id: shown(64), sha256: z.string().regex(/^[0-9a-f]{64}$/) })).max(256),
  startedAt: shown(40)
})
export type WorkerHello = z.infer<typeof WorkerHelloSchema>

export const WorkerHealthSchema = z.object({
  /** Heartbeats since it started (a restarted worker starts again at 1). */
  seq: z.number().int().nonnegative(),
  /** Jobs waiting for one of its threads, and running now. */
  queued: z.number().int().nonnegative().max(1e6),
  running: z.number().int().nonnegative().max(1e6),
  /** Jobs answered since it started. */
  done: z.number().int().nonnegative(),
  /** The 1-minute load average of its machine. */
  loadavg: z.number().nonnegative().max(1e6)
})
export type WorkerHealth = z.infer<typeof WorkerHealthSchema>

/** console → worker: run layers [from, to) of exit `exit` of `model` (at digest `sha256`) on the tensor. */
export const JobHeaderSchema = z.object({
  jobId: z.string().min(1).max(64),
  model: shown(64),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  exit: z.number().int().positive(),
  from: z.number().int().nonnegative(),
  to: z.number().int().positive()
})
export type JobHeader = z.infer<typeof JobHeaderSchema>

/** worker → console: a job's answer (the output tensor follows) or, with `error`, why there is none (a 1-value tensor follows). */
export const AnswerHeaderSchema = z.object({
  jobId: z.string().min(1).max(64),
  /** The session's run, and the wait for a thread before it, on the worker, ms. */
  ms: z.number().nonnegative().max(1e7),
  queuedMs: z.number().nonnegative().max(1e7),
  error: shown(500).optional()
})
export type AnswerHeader = z.infer<typeof AnswerHeaderSchema>
