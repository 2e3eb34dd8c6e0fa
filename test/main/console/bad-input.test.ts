import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import mqtt from 'mqtt'
import type { EdgentConsole } from '../../../src/main/console/console.js'
import { encodeFrame } from '../../../src/shared/contracts/frame.js'
import { topics } from '../../../src/shared/contracts/topics.js'
import { deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from './harness.js'

/** Sends bytes on a raw TCP connection; resolves when the server closes it (or after `waitMs`). */
function rawSend(port: number, bytes: Uint8Array, waitMs = 3000): Promise<{ closedByServer: boolean }> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1', () => s.write(bytes))
    const timer = setTimeout(() => {
      s.destroy()
      resolve({ closedByServer: false })
    }, waitMs)
    s.on('close', () => {
      clearTimeout(timer)
      resolve({ closedByServer: true })
    })
    s.on('error', () => undefined)
  })
}

const header = { requestId: 'rogue-1', planId: 'nope', model: 'branchy-alexnet', exit: 5, deviceLayers: 8, deviceMs: 1, sentAt: Date.now() }

describe('bad input on the broker and the activation path', () => {
  let core: EdgentConsole & { logPath: string }
  let good: AgentProc | null = null
  let rogue: mqtt.MqttClient

  beforeAll(async () => {
    core = await startConsole({ maxPacketBytes: 512 * 1024 })
    good = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'good', core.pair('good').token)
    const t = core.pair('rogue').token
    rogue = await mqtt.connectAsync(`mqtt://127.0.0.1:${core.mqttPort}`, {
      clientId: 'rogue',
      username: 'rogue',
      password: t,
      reconnectPeriod: 0,
      protocolVersion: 4
    })
    await waitFor('good online', () => deviceState(core, 'good') === 'online')
  })
  afterAll(async () => {
    rogue?.end(true)
    await stopAgent(good)
    await core?.stop()
  })

  it('stays up, logs a reason for each, buffers nothing oversized, and the good agent loses no result', async () => {
    const run = core.infer({ agent: 'good', count: 150, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 5, deviceLayers: 8 } })
    await waitFor('good busy', () => deviceState(core, 'good') === 'busy', 30_000)

    // Raw sockets: a non-CONNECT first packet, a CONNECT declaring 256 MiB, random bytes.
    const publishFirst = await rawSend(core.mqttPort, Uint8Array.from([0x30, 0x05, 0, 1, 0x61, 0x62, 0x63]))
    const hugeConnect = await rawSend(core.mqttPort, Uint8Array.from([0x10, 0xff, 0xff, 0xff, 0x7f]))
    const random = Uint8Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24)
    random[0] = 0xe0 // DISCONNECT type as first byte: never a CONNECT
    const randomBytes = await rawSend(core.mqttPort, random)
    expect(publishFirst.closedByServer).toBe(true)
    expect(hugeConnect.closedByServer).toBe(true)
    expect(randomBytes.closedByServer).toBe(true)

    // An authenticated agent sending malformed activation frames on its own topic.
    const ok = encodeFrame(header, [1, 96, 7, 7], new Float32Array(96 * 49))
    const v = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength)
    const truncated = ok.slice(0, ok.length - 100)
    const wrongDims = ok.slice()
    v(wrongDims).setUint32(20, 95)
    const hugeDeclared = ok.slice()
    v(hugeDeclared).setUint32(12, 0xffffffff)
    const wrongDtype = ok.slice()
    v(wrongDtype).setUint8(5, 9)
    // Frames of version 2 (codecs): an unknown codec, an int8 frame whose scale is NaN, an f16 frame sized for f32.
    const unknownCodec = ok.slice()
    v(unknownCodec).setUint8(4, 2)
    v(unknownCodec).setUint8(5, 9)
    const nanScale = encodeFrame(header, [1, 96, 7, 7], new Float32Array(96 * 49).fill(0.5), 'int8')
    v(nanScale).setFloat32(nanScale.length - 96 * 49 - 8, Number.NaN, true)
    const f16Sized = ok.slice()
    v(f16Sized).setUint8(4, 2)
    v(f16Sized).setUint8(5, 2)
    for (const bad of [truncated, wrongDims, hugeDeclared, wrongDtype, random, unknownCodec, nanScale, f16Sized]) {
      await rogue.publishAsync(topics.activation('rogue'), Buffer.from(bad), { qos: 1 })
    }
    // A well-formed frame for a plan that does not exist.
    await rogue.publishAsync(topics.activation('rogue'), Buffer.from(ok), { qos: 1 })
    // A publish larger than the packet limit: the guard drops the connection before aedes buffers it.
    const closed = new Promise<void>((r) => rogue.once('close', () => r()))
    rogue.publish(topics.activation('rogue'), Buffer.alloc(600 * 1024), { qos: 0 })
    await closed

    const { summary } = await run
    expect(summary).toMatchObject({ completed: 150, lost: 0 })
    const log = readFileSync(core.logPath, 'utf8')
    for (const reason of [
      'first packet is type 3, not CONNECT',
      'CONNECT declares 268435455 bytes, over the 4096-byte limit',
      'first packet is type 14, not CONNECT',
      'frame: declares',
      'frame: dims [1, 95, 7, 7] need',
      'frame: declared payload 4294967295 bytes exceeds',
      'frame: dtype code 9 is not supported',
      'frame: codec 9 is not supported (known: 1 f32, 2 f16, 3 int8, 4 int8c, 5 u8)',
      // (the int8 frame whose scale is NaN is refused for its plan before its tensor is decoded:
      // "unknown plan" below; decodeFrame's refusal of the scale is in test/shared/algorithms/codecs.test.ts)
      `frame: dims [1, 96, 7, 7] need ${2 * 96 * 49} payload bytes under f16, the frame declares ${4 * 96 * 49}`,
      'frame: bad magic',
      'unknown plan \\"nope\\" for agent rogue',
      `packet type 3 declares ${600 * 1024 + 2 + topics.activation('rogue').length} bytes, over the ${512 * 1024}-byte limit`
    ]) {
      expect(log, reason).toContain(reason)
    }
    // still serving
    expect(core.devices().find((d) => d.id === 'good')!.state).toBe('online')
    const again = await core.infer({ agent: 'good', count: 5, latencyMs: 1000, uplinkKbps: 100_000, plan: { exit: 3, deviceLayers: 4 } })
    expect(again.summary.completed).toBe(5)
  }, 120_000)

  it('refuses a hello nested 20,000 levels deep, and one stored before still leaves every devices call working', async () => {
    const base = core.devices().find((d) => d.id === 'good')!.hello!
    const { emulation: _e, ...plain } = base
    const text = `${JSON.stringify({ ...plain, agentId: 'deep' }).slice(0, -1)},"emulation":{"a":${'['.repeat(20_000)}${']'.repeat(20_000)}}}`
    expect(text.length).toBeLessThan(64 * 1024) // under the retained-message bound: the depth is what must be refused
    const deep = await mqtt.connectAsync(`mqtt://127.0.0.1:${core.mqttPort}`, {
      clientId: 'deep',
      username: 'deep',
      password: core.pair('deep').token,
      reconnectPeriod: 0,
      protocolVersion: 4
    })
    await deep.publishAsync(topics.hello('deep'), Buffer.from(text), { qos: 1, retain: true })
    await deep.endAsync(true)
    await waitFor('the refusal logged', () => readFileSync(core.logPath, 'utf8').includes('nested 20002 levels deep'), 5000)
    expect(() => JSON.stringify(core.devices())).not.toThrow()
    expect(core.devices().find((d) => d.id === 'deep')!.hello).toBeNull()
    // a hello a console before this one stored: read as none, not relayed
    core.store.stop()
    const { default: Database } = await import('better-sqlite3')
    const db = new Database(join(core.opts.dataDir, 'edgent.db'))
    db.prepare('UPDATE devices SET hello_json = ? WHERE id = ?').run(text, 'deep')
    db.close()
    core.store.start()
    const dev = core.devices().find((d) => d.id === 'deep')!
    expect(dev.hello).toBeNull()
    expect(JSON.stringify(core.devices()).length).toBeLessThan(64 * 1024)
  })
})
