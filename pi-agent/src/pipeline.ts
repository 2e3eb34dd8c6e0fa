/**
 * The agent's inference pipeline: a plan's device segment on an image, the activation frame
 * published (QoS 1, timed to its PUBACK), the console's result awaited; batches the console asks for
 * (`run-batch`), one image through the library API (`infer`), and the uplink probe (`probe`: a packet
 * train whose acknowledgements time the link). It runs the plan the agent follows (`plan`), and
 * names the one still waiting for its model (`pending`).
 */
import type { Logger } from 'pino'
import { MAX_PROBE_BYTES, type CommandReply, type InferenceRecord } from '../../src/shared/contracts/agent-api.js'
import { frameCodec } from '../../src/shared/algorithms/codecs.js'
import { UserError } from '../../src/shared/errors.js'
import { encodeFrame } from '../../src/shared/contracts/frame.js'
import { exitOutput, exitPath } from '../../src/shared/contracts/manifest.js'
import { exitSchedule, pieceKey, runWithPolicy, type HeadOutcome } from '../../src/shared/algorithms/exit-paths.js'
import type { PlanMessage, ResultOrRefusal } from '../../src/shared/contracts/messages.js'
import { argmax, preprocess } from '../../src/shared/algorithms/preprocess.js'
import type { Stages } from '../../src/shared/contracts/stages.js'
import { topics } from '../../src/shared/contracts/topics.js'
import type { OrtExecutor } from '../../src/main/runtime/executor.js'
import type { Emulation } from './emulation.js'
import type { HeldModel, HeldModels } from './held-models.js'
import type { AgentLink } from './link.js'

export interface PipelineOptions {
  id: string
  executor: OrtExecutor
  models: HeldModels
  link: AgentLink
  /** An emulated device's uplink and CPU (absent: a real device). */
  emulation?: Emulation
  /** ms to wait for the edge's result before counting an inference as lost. */
  resultTimeoutMs?: number
  log: Logger
  /** Says the agent's state (busy with a batch, or not). */
  stateChanged(): void
}

export class InferencePipeline {
  /** The plan followed now, and one waiting for its model to be fetched. */
  plan: PlanMessage | null = null
  pending: PlanMessage | null = null
  busy = false
  /** The batch running, and whether its caller asked it to stop. */
  private batch: { runId: string; stop: boolean } | null = null
  /** Inferences waiting for their result, by request id: called with it and when its message arrived (performance.now). */
  private readonly waiting = new Map<string, (r: ResultOrRefusal, receivedAt: number) => void>()
  private seq = 0
  /** Frames run under policies so far (which of them are audited: an exact share over time). */
  private policyFrames = 0
  /** The warm-up of the latest policy plan's segments (warm). */
  private warming: Promise<void> = Promise.resolve()
  private rttMs: number | null = null
  /** The latest uplink sample from an activation transfer, reported once in the next frame. */
  private transferKbps: number | null = null
  private probing = false

  constructor(private readonly o: PipelineOptions) {}

  /** A result (or a refusal) from the console, for the inference waiting on it. */
  onResult(r: ResultOrRefusal, receivedAt: number): void {
    this.waiting.get(r.requestId)?.(r, receivedAt)
  }

  private noPlan(): UserError {
    const p = this.pending
    if (!p) return new UserError('no plan: the console has not pushed one yet')
    const f = this.o.models.progress(p.model)
    return new UserError(`plan ${p.planId} needs model ${p.model}, which is still being fetched${f ? ` (${f.bytes} of ${f.totalBytes} bytes)` : ''}`)
  }

  async runBatch(count: number, runId: string, offset = 0): Promise<{ runId: string; planId: string; rows: InferenceRecord[] }> {
    if (!Number.isInteger(count) || count < 1 || count > 100_000) throw new UserError(`count must be 1..100000, got ${count}`)
    const plan = this.plan
    if (!plan) throw this.noPlan()
    if (this.busy) throw new UserError('busy with another batch')
    this.busy = true
    await this.warming
    this.batch = { runId, stop: false }
    this.o.stateChanged()
    const rows: InferenceRecord[] = []
    try {
      for (let i = 0; i < count && !this.batch.stop; i++) {
        const current = this.plan ?? plan // a plan pushed mid-batch applies to the next inference
        const h = this.o.models.get(current.model)
        rows.push(await this.inferOne(current, h, (offset + i) % h.samples.count))
      }
    } finally {
      this.busy = false
      this.batch = null
      this.o.stateChanged()
    }
    return { runId, planId: plan.planId, rows }
  }

  /** Ends batch `runId` after its current inference; false when no such batch runs. */
  stopBatch(runId: string): { runId: string; stopped: boolean } {
    if (!this.batch || this.batch.runId !== runId) return { runId, stopped: false }
    this.batch.stop = true
    return { runId, stopped: true }
  }

  /**
   * Library API: one co-inference of the caller's own image (raw uint8 pixels in the model's input
   * layout) under the current plan. Resolves with its timings and the predicted label.
   */
  async infer(pixels: Uint8Array, label?: number): Promise<InferenceRecord> {
    const plan = this.plan
    if (!plan) throw this.noPlan()
    const h = this.o.models.get(plan.model)
    const expected = h.manifest.input.shape.reduce((a, b) => a * b, 1)
    if (!(pixels instanceof Uint8Array) || pixels.length !== expected) {
      throw new UserError(
        `an input image must be ${expected} uint8 pixels (${h.manifest.input.shape.join('×')}), got ${pixels instanceof Uint8Array ? pixels.length : typeof pixels}`
      )
    }
    return this.inferPixels(plan, h, pixels, label ?? null, null)
  }

  private inferOne(plan: PlanMessage, h: HeldModel, sample: number): Promise<InferenceRecord> {
    const s = h.samples
    const pixels = s.images.subarray(sample * s.imageElements, (sample + 1) * s.imageElements)
    return this.inferPixels(plan, h, pixels, s.labelled === false ? null : (s.labels[sample] ?? null), sample)
  }

  /** The device's segment, timed (as the emulated device would take it, where emulated). */
  private async deviceSegment(
    plan: PlanMessage,
    h: HeldModel,
    x: Float32Array
  ): Promise<{ output: Float32Array; dims: number[]; deviceMs: number; handoffMs: number }> {
    const asked = performance.now()
    // the preprocessed input is not needed here afterwards: it moves to the worker, not copied
    const r = await this.o.executor.runSegment(h.manifest.id, { exit: plan.exit, from: 0, to: plan.deviceLayers }, x, undefined, { give: true })
    const handoffMs = Math.max(0, performance.now() - asked - r.ms)
    const key = `${plan.model}/${plan.exit}/${plan.deviceLayers}`
    const deviceMs = this.o.emulation ? await this.o.emulation.slowCpu(key, r.ms) : r.ms
    return { output: r.output, dims: r.dims, deviceMs, handoffMs }
  }

  /**
   * The device's share under a confidence-exit policy: the trunk up to the cut, each exit head whose
   * branch point the device holds evaluated on the way (exit-paths.ts). A frame that is confident
   * enough leaves (`left`); an audited one runs on whatever its confidence.
   */
  private async devicePolicy(plan: PlanMessage, h: HeldModel, x: Float32Array, audit: boolean) {
    const m = h.manifest
    let handoffMs = 0
    let deviceMs = 0
    let realMs = 0
    const r = await runWithPolicy({
      m,
      policy: plan.policy!,
      steps: exitSchedule(m, plan.deviceLayers).device,
      from: 0,
      to: plan.deviceLayers,
      input: x,
      dims: [...m.input.shape],
      audit,
      run: async (seg, input, dims) => {
        const asked = performance.now()
        const out = await this.o.executor.runSegment(m.id, seg, input, dims)
        handoffMs += Math.max(0, performance.now() - asked - out.ms)
        // emulated: the sessions run back to back, as on a device; their slowdown is waited out once, below
        const ms = this.o.emulation ? this.o.emulation.emulatedMs(`${plan.model}/${pieceKey(seg)}`, out.ms) : out.ms
        deviceMs += ms
        realMs += out.ms
        return { output: out.output, dims: out.dims, ms }
      }
    })
    await this.o.emulation?.waitOut(deviceMs - realMs)
    return { ...r, deviceMs, handoffMs }
  }

  /**
   * Opens a policy plan's device segments and runs each once on a blank input, outside any timing: a
   * trunk piece or head that only the rare frames reaching it run would otherwise pay its session's
   * cold start on them (and, emulated, have it multiplied into the device's speed).
   */
  warm(plan: PlanMessage, h: HeldModel): void {
    const m = h.manifest
    if (!plan.policy || plan.deviceLayers === 0) return
    const policy = plan.policy
    this.warming = this.warming
      .then(async () => {
        await runWithPolicy({
          m,
          policy,
          steps: exitSchedule(m, plan.deviceLayers).device,
          from: 0,
          to: plan.deviceLayers,
          input: new Float32Array(m.input.shape.reduce((a, b) => a * b, 1)),
          dims: [...m.input.shape],
          audit: true,
          run: async (seg, input, dims) => {
            const r = await this.o.executor.runSegment(m.id, seg, input, dims)
            return { output: r.output, dims: r.dims, ms: r.ms }
          }
        })
      })
      .catch((err: unknown) => this.o.log.warn({ planId: plan.planId, err: String(err) }, 'could not warm the plan up'))
  }

  /** Whether the next frame under a policy is audited: `share` of frames, spread evenly. */
  private auditNext(share: number | undefined): boolean {
    const k = this.policyFrames++
    return !!share && Math.floor((k + 1) * share) > Math.floor(k * share)
  }

  /** Waits for the console's answer to `requestId` (null after the result timeout). */
  private awaitResult(requestId: string): { result: Promise<ResultOrRefusal | null>; receivedAt: () => number } {
    let receivedAt = 0
    const result = new Promise<ResultOrRefusal | null>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(requestId)
        resolve(null)
      }, this.o.resultTimeoutMs ?? 30_000)
      this.waiting.set(requestId, (r, at) => {
        clearTimeout(timer)
        this.waiting.delete(requestId)
        receivedAt = at
        resolve(r)
      })
    })
    return { result, receivedAt: () => receivedAt }
  }

  private async inferPixels(plan: PlanMessage, h: HeldModel, pixels: Uint8Array, label: number | null, sample: number | null): Promise<InferenceRecord> {
    const { id, log, link } = this.o
    const requestId = `${id}-${Date.now().toString(36)}-${(this.seq++).toString(36)}`
    const N = exitPath(h.manifest, plan.exit).length
    const t0 = performance.now()
    let x = preprocess(h.manifest, pixels)
    const preprocessed = performance.now()
    let dims = [...h.manifest.input.shape]
    let deviceMs = 0
    let deviceHandoffMs = 0
    let audit = false
    let heads: HeadOutcome[] | undefined
    /** What every frame of this inference says of itself (an activation, or a report of where it left). */
    const frameHeader = (deviceMs: number) => ({
      requestId,
      planId: plan.planId,
      model: plan.model,
      exit: plan.exit,
      deviceLayers: plan.deviceLayers,
      ...(sample !== null ? { sample } : {}),
      ...(label !== null ? { label } : {}),
      deviceMs,
      sentAt: Date.now()
    })
    if (plan.policy) {
      audit = this.auditNext(plan.policy.auditShare)
      const d = await this.devicePolicy(plan, h, x, audit)
      deviceMs = d.deviceMs
      deviceHandoffMs = d.handoffMs
      if (d.left) {
        // Left on the device: the result is here; a small report (its exit's scores) tells the console.
        const e2eMs = performance.now() - t0
        const report = encodeFrame(
          {
            ...frameHeader(deviceMs),
            left: { exit: d.left.exit, confidence: d.left.confidence },
            // an audited frame that ran to the final exit on the device: what every exit said
            ...(audit ? { audit: true, heads: d.heads } : {})
          },
          [...exitOutput(h.manifest, d.left.exit).outputShape],
          d.left.scores
        )
        const ackMs = await link.publishAcked(topics.activation(id), report)
        return { requestId, sample, label, deviceMs, ackMs, e2eMs, predictedLabel: d.left.label, uploadBytes: 0, exit: d.left.exit, side: 'device' }
      }
      x = d.output
      dims = d.dims
      if (audit) heads = d.heads
    } else if (plan.deviceLayers > 0) {
      const d = await this.deviceSegment(plan, h, x)
      x = d.output
      dims = d.dims
      deviceMs = d.deviceMs
      deviceHandoffMs = d.handoffMs
    }
    const encoding = performance.now()
    const frame = encodeFrame(
      {
        ...frameHeader(deviceMs),
        ...(this.transferKbps ? { uplinkSampleKbps: this.transferKbps } : {}),
        ...(audit ? { audit: true, heads: heads ?? [] } : {})
      },
      dims,
      // u8: the raw image itself, preprocessed at the edge (edge-only plans)
      plan.codec === 'u8' && plan.deviceLayers === 0 ? Float32Array.from(pixels) : x,
      frameCodec(plan.codec, plan.deviceLayers, N)
    )
    const encodeMs = performance.now() - encoding
    // Reported once: a device-only run sends no activation and must not repeat a stale sample.
    this.transferKbps = null
    if (plan.deviceLayers >= N) {
      // Device-only: the result is here; the frame only reports it (not part of the latency).
      const e2eMs = performance.now() - t0
      const ackMs = await link.publishAcked(topics.activation(id), frame)
      return { requestId, sample, label, deviceMs, ackMs, e2eMs, predictedLabel: argmax(x), uploadBytes: 0 }
    }
    if (plan.maxFrameBytes !== undefined && frame.length > plan.maxFrameBytes) {
      // The broker would drop the connection, and MQTT would resend the publish at every reconnect:
      // the device would never come back. Refused here, by name.
      log.warn(
        { requestId, planId: plan.planId, frameBytes: frame.length, maxFrameBytes: plan.maxFrameBytes },
        'activation larger than the console accepts: not sent'
      )
      return { requestId, sample, label, deviceMs, ackMs: 0, e2eMs: performance.now() - t0, predictedLabel: -1, uploadBytes: frame.length, lost: true }
    }
    const answer = this.awaitResult(requestId)
    const probingBefore = this.probing
    const shaping = performance.now()
    await this.o.emulation?.limitUplink(frame.length)
    const emulatedUplinkMs = performance.now() - shaping
    const sent = { called: 0, returned: 0 }
    const ackMs = await link.publishAcked(topics.activation(id), frame, sent)
    this.observeTransfer(frame.length, ackMs, probingBefore || this.probing)
    const r = await answer.result
    const resumed = performance.now()
    const receivedAt = answer.receivedAt()
    const e2eMs = resumed - t0
    if (r && 'refused' in r) log.warn({ requestId, reason: r.refused }, 'the console refused this inference')
    else if (r?.error) log.warn({ requestId, err: r.error }, 'the console could not answer this inference')
    if (!r || 'refused' in r || r.error) return { requestId, sample, label, deviceMs, ackMs, e2eMs, predictedLabel: -1, uploadBytes: frame.length, lost: true }
    const cs = r.stages
    const stages: Stages | undefined = cs && {
      preprocessMs: preprocessed - t0,
      deviceMs,
      deviceHandoffMs,
      encodeMs,
      emulatedUplinkMs,
      publishMs: sent.returned - sent.called,
      uplinkMs: cs.arrivedAt - (performance.timeOrigin + sent.returned),
      admitMs: cs.admitMs,
      queueMs: cs.queueMs,
      handoffMs: cs.handoffMs,
      edgeMs: cs.edgeMs,
      consoleMs: Math.max(0, cs.publishedAt - cs.arrivedAt),
      downlinkMs: performance.timeOrigin + receivedAt - cs.publishedAt,
      receiveMs: resumed - receivedAt,
      wireMs: receivedAt - sent.returned - Math.max(0, cs.publishedAt - cs.arrivedAt)
    }
    return {
      requestId,
      sample,
      label,
      deviceMs,
      ackMs,
      e2eMs,
      predictedLabel: r.label,
      uploadBytes: frame.length,
      ...(plan.policy ? { exit: r.exit, side: 'edge' as const } : {}),
      ...(stages ? { stages } : {})
    }
  }

  /**
   * An uplink sample from one acknowledged activation: bytes over (ack time − round trip). Only when
   * the transfer itself took long enough to measure (≥ 5 ms beyond the round trip) and no probe
   * shared the link meanwhile.
   */
  private observeTransfer(bytes: number, ackMs: number, overlapped: boolean): void {
    if (this.rttMs === null || overlapped) return
    const transferMs = ackMs - this.rttMs
    if (transferMs < 5) return
    this.transferKbps = (bytes * 8) / transferMs
  }

  async probe(bytes: number): Promise<CommandReply<'probe'>> {
    if (!Number.isInteger(bytes) || bytes < 64 || bytes > MAX_PROBE_BYTES) throw new UserError(`probe size must be 64..1048576 bytes, got ${bytes}`)
    this.probing = true
    try {
      return await this.probeOnce(bytes)
    } finally {
      this.probing = false
    }
  }

  /**
   * Packet-train probe: a lead message then the probe body, back to back, both QoS 1. The body's
   * bytes over the gap between the two acknowledgements is the uplink rate: the round trip cancels
   * out, and a shaper's initial burst is spent on the lead message.
   */
  private async probeOnce(bytes: number): Promise<CommandReply<'probe'>> {
    const { link, emulation } = this.o
    const topic = topics.probe(this.o.id)
    const tiny = new Uint8Array(16)
    await emulation?.limitUplink(tiny.length)
    this.rttMs = Math.min(await link.publishAcked(topic, tiny), this.rttMs ?? Infinity)
    const lead = new Uint8Array(Math.max(4096, bytes >> 2))
    const body = new Uint8Array(bytes)
    const t0 = performance.now()
    await emulation?.limitUplink(lead.length)
    const leadAck = link.publishAcked(topic, lead).then(() => performance.now())
    // Awaited with the body's below: a failure meanwhile (the connection lost while the body waits
    // out its serialisation) must not be an unhandled rejection, which ends the process.
    leadAck.catch(() => undefined)
    await emulation?.limitUplink(body.length)
    const bodyAck = link.publishAcked(topic, body).then(() => performance.now())
    const [tLead, tBody] = await Promise.all([leadAck, bodyAck])
    const gapMs = Math.max(tBody - tLead, 0.05)
    return { bytes, ackMs: tBody - t0, rttMs: this.rttMs, uplinkSampleKbps: (bytes * 8) / gapMs }
  }
}
