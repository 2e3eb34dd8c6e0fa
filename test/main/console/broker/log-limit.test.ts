/**
 * Logs a client cannot amplify (issue 30, item 7): refused CONNECTs from rotating addresses and ids
 * wrote 65,628 lines (13.7 MB) in 42 s, every rotated key a first line. Now each family of keys
 * writes at most FAMILY_LINES first lines per window and counts the rest into one summary line.
 */
import { Writable } from 'node:stream'
import { connect } from 'node:net'
import { generate, type Packet } from 'mqtt-packet'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { EmbeddedBroker } from '../../../../src/main/console/broker/broker.js'
import { FAMILY_LINES, LogLimiter } from '../../../../src/main/console/broker/log-limit.js'

function capture() {
  const lines: { msg: string; [k: string]: unknown }[] = []
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l))
      cb()
    }
  })
  return { lines, log: pino({ level: 'info' }, dest) }
}

describe('log lines per family', () => {
  it('writes at most FAMILY_LINES first lines per family and window, then one summary with the count', async () => {
    const { lines, log } = capture()
    const limiter = new LogLimiter(log, 200)
    for (let i = 0; i < 5000; i++) limiter.warn(`refused:10.0.${i >> 8}.${i & 255}:agent:x${i}`, { i }, 'refused: wrong token')
    limiter.warn('guard:1.2.3.4:slow', {}, 'dropped connection') // another family is not held back
    await new Promise((r) => setTimeout(r, 20))
    expect(lines.filter((l) => l.msg === 'refused: wrong token')).toHaveLength(FAMILY_LINES)
    expect(lines.filter((l) => l.msg === 'dropped connection')).toHaveLength(1)
    expect(limiter.familySuppressed('refused:x')).toBe(5000 - FAMILY_LINES)
    limiter.close()
    const summary = lines.find((l) => l['family'] === 'refused')
    expect(summary).toMatchObject({ suppressed: 5000 - FAMILY_LINES, distinctKeys: 1024 })
    expect(summary!.msg).toMatch(/^4980 more "refused" lines in 0\.2 s, for 1024\+ other addresses or ids/)
  })

  it('keeps a broker under a rotating wrong-login flood to a handful of lines', async () => {
    const { lines, log } = capture()
    const broker = new EmbeddedBroker({
      host: '127.0.0.1',
      port: 0,
      maxPacketBytes: 1 << 20,
      maxConnectBytes: 4096,
      consoleSecret: 'secret',
      checkAgent: async () => false,
      log
    })
    await broker.start()
    try {
      let refused = 0
      for (let batch = 0; batch < 10; batch++)
        await Promise.all(
          Array.from({ length: 40 }, async (_, k) => {
            const i = batch * 40 + k
            const id = `rogue-${i}`
            // A raw CONNECT from its own loopback address (mqtt.js does not bind a local address).
            const s = connect({ port: broker.port, host: '127.0.0.1', localAddress: `127.70.${i >> 7}.${(i & 127) + 1}` })
            s.on('error', () => undefined)
            await new Promise<void>((r) => s.once('connect', () => r()))
            s.write(generate({ cmd: 'connect', clientId: id, username: id, password: Buffer.from('wrong'), protocolVersion: 4, keepalive: 10 } as Packet))
            await new Promise<void>((r) => {
              s.once('data', (d: Buffer) => {
                if (d[0] === 0x20 && d[3] !== 0) refused++ // CONNACK with a refusal code
                r()
              })
              s.once('close', () => r())
            })
            s.destroy()
          })
        )
      const written = lines.filter((l) => /^refused/.test(l.msg)).length
      console.log(`400 refused CONNECTs from 400 ids and addresses: ${refused} refusals, ${written} log lines`)
      expect(refused).toBeGreaterThan(300)
      expect(written).toBeLessThanOrEqual(FAMILY_LINES + 5)
    } finally {
      await broker.stop()
    }
    expect(lines.some((l) => l['family'] === 'refused' && (l['suppressed'] as number) > 0)).toBe(true)
  }, 60_000)
})
