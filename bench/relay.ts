/**
 * MQTT relay and co-inference overhead:
 *   1. activation relay through the embedded broker (guard + aedes), agent → console, QoS 1, for
 *      64 KiB and 1 MiB frames, to the console in process (as it runs) and to an MQTT subscriber,
 *      beside a raw TCP loopback transfer of the same bytes (baseline);
 *   2. one co-inference over loopback MQTT (real agent process, split plan) against the same two
 *      segments run in-process (ratio of medians), and where the difference goes, stage by stage,
 *      from the timings every co-inference carries (src/shared/contracts/stages.ts; medians over the batch).
 */
import { median } from 'simple-statistics'
import { createServer, connect } from 'node:net'
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { pino } from 'pino'
import { CONSOLE_USERNAME, EmbeddedBroker } from '../src/main/console/broker/broker.js'
import { DEFAULT_CONSOLE, EdgentConsole } from '../src/main/console/console.js'
import { loadManifest, readShippedSamples } from '../src/main/runtime/files.js'
import { defaultModelDir, packageRoot } from '../src/main/runtime/paths.js'
import { OrtExecutor } from '../src/main/runtime/executor.js'
import { preprocess } from '../src/shared/algorithms/preprocess.js'
import { topics } from '../src/shared/contracts/topics.js'
import { exitPath } from '../src/shared/contracts/manifest.js'
import { STAGE_ORDER } from '../src/shared/contracts/stages.js'
import { storePublishesUncopied } from '../src/main/runtime/mqtt-store.js'
import { noDelay } from '../src/main/runtime/mqtt-socket.js'

/** The split every co-inference figure here is for. */
const FLOOR_PLAN = { exit: 5, deviceLayers: 8 }

const round3 = (x: number): number => Math.round(x * 1000) / 1000

const silent = pino({ level: 'silent' })

export async function rawTcpMBps(frameBytes: number, frames: number): Promise<number> {
  const total = frameBytes * frames
  return new Promise((resolve) => {
    let got = 0
    let t0 = 0
    const server = createServer((sock) => {
      sock.on('data', (d: Buffer) => {
        got += d.length
        if (got >= total) {
          const s = (performance.now() - t0) / 1000
          sock.destroy()
          server.close()
          resolve(total / 1e6 / s)
        }
      })
    })
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      const c = connect(port, '127.0.0.1', async () => {
        const buf = Buffer.alloc(frameBytes, 7)
        t0 = performance.now()
        for (let i = 0; i < frames; i++) if (!c.write(buf)) await new Promise((r) => c.once('drain', r))
        c.end()
      })
    })
  })
}

/** Relay agent → console through the embedded broker: to the console in process (as it runs) or to an MQTT subscriber. */
export async function relayMBps(
  frameBytes: number,
  frames: number,
  to: 'in-process' | 'mqtt-client',
  publisher: 'agent' | 'mqtt.js default' = 'agent'
): Promise<number> {
  const secret = 'bench-secret'
  const broker = new EmbeddedBroker({
    host: '127.0.0.1',
    port: 0,
    maxPacketBytes: 2 * 1024 * 1024,
    maxConnectBytes: 4096,
    consoleSecret: secret,
    checkAgent: async (id, t) => id === 'bench-agent' && t === 'tok',
    // The relay is measured at full speed: the per-agent publish rate (a hardening default, 300/s) is lifted.
    agentPublishRate: null,
    log: silent
  })
  let got = 0
  let arrived: (t: number) => void = () => undefined
  const done = new Promise<number>((resolve) => {
    arrived = resolve
  })
  const onMessage = () => {
    if (++got === frames) arrived(performance.now())
  }
  // as the console's link takes activations (agent-link.ts): as the broker authorises them
  if (to === 'in-process') await broker.attach({ filters: [], early: (t) => t.endsWith('/activation'), deliver: onMessage })
  await broker.start()
  const url = `mqtt://127.0.0.1:${broker.port}`
  const sub =
    to === 'mqtt-client'
      ? await mqtt.connectAsync(url, { clientId: 'edgent-console-bench', username: CONSOLE_USERNAME, password: secret, protocolVersion: 4 })
      : null
  const pub = await mqtt.connectAsync(url, { clientId: 'bench-agent', username: 'bench-agent', password: 'tok', protocolVersion: 4 })
  // as the agent publishes (its QoS 1 frames stored uncopied until their PUBACK), or as mqtt.js does by default
  if (publisher === 'agent' && !storePublishesUncopied(pub)) throw new Error('bench: this mqtt.js cannot store publishes uncopied')
  for (const c of [sub, pub]) if (c) noDelay(c)
  if (sub) {
    await sub.subscribeAsync(topics.allAgents.activation, { qos: 1 })
    sub.on('message', onMessage)
  }
  const payload = Buffer.alloc(frameBytes, 3)
  const t0 = performance.now()
  // at most 8 frames in flight, as an agent streaming activations would
  const inflight = new Set<Promise<unknown>>()
  for (let i = 0; i < frames; i++) {
    const p = pub.publishAsync(topics.activation('bench-agent'), payload, { qos: 1 })
    inflight.add(p)
    void p.then(() => inflight.delete(p))
    if (inflight.size >= 8) await Promise.race(inflight)
  }
  const t1 = await done
  await pub.endAsync()
  await sub?.endAsync()
  await broker.stop()
  return (frameBytes * frames) / 1e6 / ((t1 - t0) / 1000)
}

/**
 * The floor: the same split across two processes with the thinnest messaging there is — the device
 * segment in a second process (split-peer.ts, its own ORT worker), the activation over a bare TCP
 * socket, the edge segment in this process's ORT worker, the scores back. Median end to end, ms.
 */
async function splitFloor(count: number): Promise<number> {
  const loaded = loadManifest(defaultModelDir())
  const n = exitPath(loaded.manifest, FLOOR_PLAN.exit).length
  const ex = new OrtExecutor()
  await ex.start()
  await ex.openModel(loaded.dir)
  const dims = exitPath(loaded.manifest, FLOOR_PLAN.exit)[FLOOR_PLAN.deviceLayers - 1]!.outputShape
  const server = createServer((sock) => {
    sock.setNoDelay(true)
    let buf: Buffer = Buffer.alloc(0)
    sock.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d
      if (buf.length < 4 || buf.length < 4 + buf.readUInt32LE(0)) return
      const bytes = buf.readUInt32LE(0)
      const x = new Float32Array(bytes / 4)
      new Uint8Array(x.buffer).set(buf.subarray(4, 4 + bytes))
      buf = Buffer.alloc(0)
      void ex.runSegment(loaded.manifest.id, { exit: FLOOR_PLAN.exit, from: FLOOR_PLAN.deviceLayers, to: n }, x, dims).then((r) => {
        const head = Buffer.alloc(4)
        head.writeUInt32LE(r.output.byteLength)
        sock.cork()
        sock.write(head)
        sock.write(Buffer.from(r.output.buffer, r.output.byteOffset, r.output.byteLength))
        sock.uncork()
      })
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as { port: number }).port
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(packageRoot(), 'bench/split-peer.ts'), String(port), String(count), String(FLOOR_PLAN.exit), String(FLOOR_PLAN.deviceLayers)],
    {
      stdio: ['ignore', 'pipe', 'inherit']
    }
  )
  let out = ''
  child.stdout.on('data', (d) => (out += String(d)))
  const code = await new Promise<number | null>((r) => child.once('exit', r))
  server.close()
  await ex.stop()
  if (code !== 0) throw new Error(`split-peer exited with ${code}`)
  return median((JSON.parse(out) as { e2e: number[] }).e2e)
}

export async function coinferenceRatio(count: number): Promise<Record<string, number | Record<string, number>>> {
  const loaded = loadManifest(defaultModelDir())
  const { manifest } = loaded
  const samples = readShippedSamples(loaded)
  const plan = FLOOR_PLAN
  // in-process: the same two segments, one after the other, wall time
  const ex = new OrtExecutor()
  await ex.start()
  await ex.openModel(loaded.dir)
  const local: number[] = []
  const localRuns: { deviceMs: number; edgeMs: number; handoffsMs: number }[] = []
  for (let k = 0; k < count + 5; k++) {
    const x = preprocess(manifest, samples.images.subarray(k * samples.imageElements, (k + 1) * samples.imageElements))
    const t0 = performance.now()
    const r = await ex.runSplit(manifest.id, plan.exit, plan.deviceLayers, x)
    const wall = performance.now() - t0
    if (k >= 5) {
      local.push(wall)
      localRuns.push({ deviceMs: r.deviceMs, edgeMs: r.edgeMs, handoffsMs: wall - r.deviceMs - r.edgeMs })
    }
  }
  await ex.stop()
  const floor = await splitFloor(count)
  // over MQTT: a real agent process and the console
  const core = new EdgentConsole({
    ...DEFAULT_CONSOLE,
    dataDir: mkdtempSync(join(tmpdir(), 'edgent-bench-')),
    modelDir: loaded.dir,
    mqttHost: '127.0.0.1',
    mqttPort: 0,
    profileReps: 2,
    probeIntervalMs: 0,
    log: silent
  })
  await core.start()
  const token = core.pair('bench-pi').token
  const child = spawn(
    process.execPath,
    [join(packageRoot(), 'out/main/agent.js'), '--broker', `mqtt://127.0.0.1:${core.mqttPort}`, '--id', 'bench-pi', '--token', token, '--log-level', 'warn'],
    { stdio: 'ignore' }
  )
  try {
    for (let i = 0; i < 600 && core.devices().find((d) => d.id === 'bench-pi')?.state !== 'online'; i++) await new Promise((r) => setTimeout(r, 50))
    await core.infer({ agent: 'bench-pi', count: 5, latencyMs: 1000, uplinkKbps: 1e6, plan }) // warm-up
    const { rows } = await core.infer({ agent: 'bench-pi', count, latencyMs: 1000, uplinkKbps: 1e6, plan })
    const e2e = rows.map((r) => r.e2eMs)
    const timed = rows.flatMap((r) => (r.stages ? [r.stages] : []))
    if (timed.length < rows.length) throw new Error(`only ${timed.length} of ${rows.length} co-inferences carry their stages`)
    const stages = Object.fromEntries(STAGE_ORDER.map((k) => [k, round3(median(timed.map((s) => s[k])))]))
    const accounted = rows.map((r) => STAGE_ORDER.reduce((sum, k) => sum + r.stages![k], 0))
    return {
      inProcessMedianMs: median(local),
      // the in-process run's own parts: both segments' session.run, and its two hand-offs to the worker and back
      inProcessPartsMedianMs: {
        deviceMs: round3(median(localRuns.map((r) => r.deviceMs))),
        edgeMs: round3(median(localRuns.map((r) => r.edgeMs))),
        handoffsMs: round3(median(localRuns.map((r) => r.handoffsMs)))
      },
      mqttLoopbackMedianMs: median(e2e),
      ratio: median(e2e) / median(local),
      // the same split across two processes over a bare TCP socket (no MQTT, no protocol): the floor here
      twoProcessFloorMedianMs: floor,
      floorRatio: floor / median(local),
      ratioToFloor: median(e2e) / floor,
      // Medians of each stage (stages.ts); uplink and downlink on one clock (agent and console share this machine's).
      stagesMedianMs: stages,
      wireBothWaysMedianMs: round3(median(timed.map((s) => s.wireMs))),
      unaccountedMedianMs: round3(median(rows.map((r, i) => r.e2eMs - accounted[i]!)))
    }
  } finally {
    child.kill('SIGTERM')
    await core.stop()
  }
}

export async function runRelayBench(): Promise<Record<string, unknown>> {
  const sizes = [
    { label: '64 KiB', bytes: 64 * 1024, frames: Number(process.env['RELAY_FRAMES_64K'] ?? 4000) },
    { label: '1 MiB', bytes: 1024 * 1024, frames: 200 }
  ]
  // Each ratio is taken from measurements back to back, repeated and interleaved: the machine's speed
  // moves by ±30 % between seconds here, so one pair alone says little. Medians over the repeats.
  const repeats = Number(process.env['RELAY_REPEATS'] ?? 7)
  const relay = []
  for (const s of sizes) {
    const runs: { raw: number; relay: number; viaClient: number; copying: number }[] = []
    for (let k = 0; k < repeats; k++) {
      const raw = await rawTcpMBps(s.bytes, s.frames)
      runs.push({
        raw,
        relay: await relayMBps(s.bytes, s.frames, 'in-process'),
        viaClient: await relayMBps(s.bytes, s.frames, 'mqtt-client'),
        copying: await relayMBps(s.bytes, s.frames, 'in-process', 'mqtt.js default')
      })
    }
    const med = (f: (r: (typeof runs)[number]) => number) => median(runs.map(f))
    relay.push({
      frame: s.label,
      frames: s.frames,
      repeats,
      rawTcpMBps: med((r) => r.raw),
      // to the console in process, as it runs with its embedded broker, from a publisher storing as the agent does
      relayMBps: med((r) => r.relay),
      ratioToRawTcp: med((r) => r.relay / r.raw),
      ratiosToRawTcp: runs.map((r) => round3(r.relay / r.raw)),
      // the same from a publisher storing as mqtt.js does by default (a copy of each QoS 1 payload)
      copyingPublisherRatio: med((r) => r.copying / r.raw),
      // to an MQTT subscriber over loopback (how the console received before it subscribed in process)
      viaMqttClientMBps: med((r) => r.viaClient),
      viaMqttClientRatio: med((r) => r.viaClient / r.raw)
    })
  }
  return { relay, coinference: { plan: 'exit 5, deviceLayers 8', ...(await coinferenceRatio(200)) } }
}
