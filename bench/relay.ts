/**
 * MQTT relay and co-inference overhead:
 *   1. activation relay through the embedded broker (guard + aedes), agent → console, QoS 1, for
 *      64 KiB and 1 MiB frames, beside a raw TCP loopback transfer of the same bytes (baseline);
 *   2. one co-inference over loopback MQTT (real agent process, split plan) against the same two
 *      segments run in-process (ratio of medians), and where the difference goes, from what every
 *      co-inference already records (medians over the batch): the device segment (agent worker), the
 *      messaging both ways (end to end less the device segment and the console's time from the
 *      frame's arrival to the result's publish: agent encode and publish, broker, console receive,
 *      result publish, agent receive), the console's hand-off to its worker and back (arrival to
 *      publish less the edge segment), and the edge segment (console worker).
 */
import { median } from 'simple-statistics'
import { createServer, connect } from 'node:net'
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { pino } from 'pino'
import { CONSOLE_USERNAME, EmbeddedBroker } from '../src/main/console/broker.js'
import { DEFAULT_CONSOLE, EdgentConsole } from '../src/main/console/console.js'
import { loadManifest, readShippedSamples } from '../src/main/runtime/files.js'
import { defaultModelDir, packageRoot } from '../src/main/runtime/paths.js'
import { OrtExecutor } from '../src/main/runtime/executor.js'
import { preprocess } from '../src/shared/preprocess.js'
import { topics } from '../src/shared/topics.js'

const silent = pino({ level: 'silent' })

async function rawTcpMBps(frameBytes: number, frames: number): Promise<number> {
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

async function relayMBps(frameBytes: number, frames: number): Promise<number> {
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
  await broker.start()
  const url = `mqtt://127.0.0.1:${broker.port}`
  const sub = await mqtt.connectAsync(url, { clientId: 'edgent-console-bench', username: CONSOLE_USERNAME, password: secret, protocolVersion: 4 })
  const pub = await mqtt.connectAsync(url, { clientId: 'bench-agent', username: 'bench-agent', password: 'tok', protocolVersion: 4 })
  for (const c of [sub, pub]) (c.stream as { setNoDelay?: (v: boolean) => void }).setNoDelay?.(true)
  await sub.subscribeAsync(topics.allAgents.activation, { qos: 1 })
  const payload = Buffer.alloc(frameBytes, 3)
  let got = 0
  const done = new Promise<number>((resolve) => {
    sub.on('message', () => {
      if (++got === frames) resolve(performance.now())
    })
  })
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
  await sub.endAsync()
  await broker.stop()
  return (frameBytes * frames) / 1e6 / ((t1 - t0) / 1000)
}

async function coinferenceRatio(count: number): Promise<Record<string, number | Record<string, number>>> {
  const loaded = loadManifest(defaultModelDir())
  const { manifest } = loaded
  const samples = readShippedSamples(loaded)
  const plan = { exit: 5, deviceLayers: 8 }
  // in-process: the same two segments, one after the other, wall time
  const ex = new OrtExecutor()
  await ex.start()
  await ex.openModel(loaded.dir)
  const local: number[] = []
  for (let k = 0; k < count + 5; k++) {
    const x = preprocess(manifest, samples.images.subarray(k * samples.imageElements, (k + 1) * samples.imageElements))
    const t0 = performance.now()
    await ex.runSplit(manifest.id, plan.exit, plan.deviceLayers, x)
    if (k >= 5) local.push(performance.now() - t0)
  }
  await ex.stop()
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
    // transferMs = e2e − device − (result published − frame arrived) at the console (coinference.ts).
    const consoleMs = rows.map((r) => r.e2eMs - r.deviceMs - (r.transferMs ?? 0))
    return {
      inProcessMedianMs: median(local),
      mqttLoopbackMedianMs: median(e2e),
      ratio: median(e2e) / median(local),
      breakdownMedianMs: {
        deviceSegment: median(rows.map((r) => r.deviceMs)),
        messagingBothWays: median(rows.map((r) => r.transferMs ?? 0)),
        consoleHandoff: median(consoleMs.map((c, i) => c - rows[i]!.edgeMs)),
        edgeSegment: median(rows.map((r) => r.edgeMs))
      }
    }
  } finally {
    child.kill('SIGTERM')
    await core.stop()
  }
}

export async function runRelayBench(): Promise<Record<string, unknown>> {
  const sizes = [
    { label: '64 KiB', bytes: 64 * 1024, frames: Number(process.env['RELAY_FRAMES_64K'] ?? 2000) },
    { label: '1 MiB', bytes: 1024 * 1024, frames: 200 }
  ]
  const relay = []
  for (const s of sizes) {
    const base = await rawTcpMBps(s.bytes, s.frames)
    const mbps = await relayMBps(s.bytes, s.frames)
    relay.push({ frame: s.label, frames: s.frames, relayMBps: mbps, rawTcpMBps: base, ratioToRawTcp: mbps / base })
  }
  return { relay, coinference: { plan: 'exit 5, deviceLayers 8', ...(await coinferenceRatio(200)) } }
}
