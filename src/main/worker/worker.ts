/**
 * `edgent worker` (issue 34): a headless edge process on any machine that reaches the broker. It
 * opens the models of a folder in its own ORT pool, announces them with their digests (a retained
 * hello), beats its load every WORKER_HEARTBEAT_MS, and answers each job — one segment of a model on
 * one tensor — on its answer topic. It holds no state of the console's: killed, it costs the console
 * a resend of its jobs in flight (workers.ts), nothing more.
 */
import mqtt, { type MqttClient } from 'mqtt'
import { existsSync, readdirSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { UserError, errorMessage } from '../../shared/errors.js'
import { decodeFrameData, encodeTensorMessage, readTensorHead } from '../../shared/contracts/frame.js'
import { workerClientId, workerTopics, workerUsername } from '../../shared/contracts/topics.js'
import { JobHeaderSchema, WORKER_HEARTBEAT_MS, type WorkerHello } from '../../shared/contracts/worker-api.js'
import { encodeJson } from '../../shared/contracts/messages.js'
import { OrtExecutor } from '../runtime/executor.js'
import { noDelay } from '../runtime/mqtt-socket.js'
import { appVersion } from '../runtime/version.js'

export interface WorkerOptions {
  broker: string
  id: string
  token: string
  /** A model folder, or a folder of model folders (default: the shipped models). */
  models: string
  /** ORT threads: jobs run at once. */
  threads: number
  /** Each job takes this many times its run here (an emulated slower machine; 1: none). */
  slowdown?: number
  /** Largest job accepted, bytes. */
  maxJobBytes?: number
  log: Logger
}

/** The model folders under `dir`: itself when it holds a manifest, else its subfolders that do. */
export function modelFolders(dir: string): string[] {
  if (existsSync(join(dir, 'manifest.json'))) return [dir]
  if (!existsSync(dir)) throw new UserError(`--models: no such folder: ${dir}`)
  const found = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'manifest.json')))
    .map((e) => join(dir, e.name))
  if (!found.length) throw new UserError(`--models: ${dir} holds no model folder (a folder with a manifest.json)`)
  return found
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export class EdgeWorker {
  private client: MqttClient | null = null
  private readonly executor: OrtExecutor
  private readonly held = new Map<string, string>()
  private heartbeat: NodeJS.Timeout | null = null
  private seq = 0
  /** Jobs received and not answered yet. */
  private active = 0
  private done = 0

  constructor(private readonly o: WorkerOptions) {
    this.executor = new OrtExecutor({ workers: o.threads, maxSessions: 128 })
  }

  async start(): Promise<void> {
    try {
      await this.connect()
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  private async connect(): Promise<void> {
    const { o } = this
    const dirs = modelFolders(o.models)
    await this.executor.start()
    for (const dir of dirs) {
      const open = await this.executor.openModel(dir)
      this.held.set(open.manifest.id, open.sha256)
    }
    const client = mqtt.connect(o.broker, {
      clientId: workerClientId(o.id),
      username: workerUsername(o.id),
      password: o.token,
      protocolVersion: 4,
      clean: true,
      keepalive: 10,
      reconnectPeriod: 1000
    })
    this.client = client
    await new Promise<void>((resolve, reject) => {
      const onErr = (err: Error) => {
        client.end(true)
        reject(new UserError(`worker ${o.id}: cannot log in to ${o.broker}: ${err.message}`))
      }
      client.once('error', onErr)
      client.once('connect', () => {
        client.off('error', onErr)
        resolve()
      })
    })
    noDelay(client)
    client.on('connect', () => {
      noDelay(client)
      void this.announce()
    })
    client.on('error', (err) => o.log.warn({ err: err.message }, 'worker mqtt error'))
    client.on('message', (_topic, payload) => void this.onJob(payload))
    await client.subscribeAsync(workerTopics.job(o.id), { qos: 1 })
    await this.announce()
    this.heartbeat = setInterval(() => this.beat(), WORKER_HEARTBEAT_MS)
    this.beat()
    o.log.info({ id: o.id, models: [...this.held.keys()], threads: o.threads }, 'edge worker started')
  }

  private async announce(): Promise<void> {
    const hello: WorkerHello = {
      schema: 1,
      workerId: this.o.id,
      version: appVersion(),
      pool: this.o.threads,
      cpus: cpus().length,
      models: [...this.held].map(([id, sha256]) => ({ id, sha256 })),
      startedAt: new Date().toISOString()
    }
    await this.client?.publishAsync(workerTopics.hello(this.o.id), Buffer.from(encodeJson(hello)), { qos: 1, retain: true })
  }

  private beat(): void {
    const running = Math.min(this.active, this.o.threads)
    const health = { seq: ++this.seq, queued: this.active - running, running, done: this.done, loadavg: loadavg()[0] ?? 0 }
    this.client?.publish(workerTopics.health(this.o.id), Buffer.from(encodeJson(health)), { qos: 0 })
  }

  private answer(header: object, dims: number[], data: Float32Array): void {
    this.client?.publish(workerTopics.done(this.o.id), Buffer.from(encodeTensorMessage(header, dims, data)), { qos: 0 })
  }

  private async onJob(payload: Buffer): Promise<void> {
    let jobId = ''
    this.active++
    try {
      const head = readTensorHead(
        new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength),
        { maxPayloadBytes: this.o.maxJobBytes ?? 64 * 2 ** 20 },
        JobHeaderSchema,
        'job'
      )
      const h = head.header
      jobId = h.jobId
      const sha = this.held.get(h.model)
      if (!sha) throw new UserError(`model ${h.model} is not held by this worker (holds: ${[...this.held.keys()].join(', ')})`)
      if (sha !== h.sha256) throw new UserError(`model ${h.model} is held at digest ${sha.slice(0, 12)}…, the job asks for ${h.sha256.slice(0, 12)}…`)
      const x = decodeFrameData({ ...head, header: head.header as never })
      const r = await this.executor.runSegment(h.model, { exit: h.exit, from: h.from, to: h.to }, x.data, x.dims)
      const k = this.o.slowdown ?? 1
      if (k > 1) await sleep((k - 1) * r.ms)
      this.done++
      this.answer({ jobId, ms: r.ms * k, queuedMs: r.queuedMs }, r.dims, r.output)
    } catch (err) {
      if (!jobId) {
        this.o.log.warn({ err: errorMessage(err) }, 'refused a malformed job')
        return
      }
      this.answer({ jobId, ms: 0, queuedMs: 0, error: errorMessage(err).slice(0, 500) }, [1], new Float32Array(1))
    } finally {
      this.active--
    }
  }

  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat)
    this.heartbeat = null
    const c = this.client
    this.client = null
    if (c) await c.endAsync(true)
    await this.executor.stop()
  }
}
