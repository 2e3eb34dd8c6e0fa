/**
 * The device half of the relay bench's floor (relay.ts, splitFloor): a second process that runs the
 * device segment in its own ORT worker and sends the activation over a bare TCP socket (a 4-byte
 * length, the float32 bytes) to the edge half, which answers with the exit's scores. No MQTT, no
 * frame header, no checks: what a split across two processes costs on this machine at the least.
 * argv: <port> <count> <exit> <deviceLayers>. Prints one JSON line: every co-inference's end-to-end ms, after 5 warm-ups.
 */
import { connect } from 'node:net'
import { loadManifest, readShippedSamples } from '../src/main/runtime/files.js'
import { defaultModelDir } from '../src/main/runtime/paths.js'
import { OrtExecutor } from '../src/main/runtime/executor.js'
import { preprocess } from '../src/shared/algorithms/preprocess.js'

const [port, count, exit, deviceLayers] = process.argv.slice(2).map(Number) as [number, number, number, number]
const loaded = loadManifest(defaultModelDir())
const samples = readShippedSamples(loaded)
const ex = new OrtExecutor()
await ex.start()
await ex.openModel(loaded.dir)
const sock = connect(port, '127.0.0.1')
sock.setNoDelay(true)
await new Promise((r) => sock.once('connect', r))
let pending: (() => void) | null = null
let got = 0
sock.on('data', (d: Buffer) => {
  got += d.length
  // the reply: 4-byte length + the scores; one reply per request
  if (got >= 4 + d.readUInt32LE(0) && pending) {
    got = 0
    const p = pending
    pending = null
    p()
  }
})
const e2e: number[] = []
for (let k = 0; k < count + 5; k++) {
  const i = k % samples.count
  const t0 = performance.now()
  const x = preprocess(loaded.manifest, samples.images.subarray(i * samples.imageElements, (i + 1) * samples.imageElements))
  const r = await ex.runSegment(loaded.manifest.id, { exit, from: 0, to: deviceLayers }, x)
  const head = Buffer.alloc(4)
  head.writeUInt32LE(r.output.byteLength)
  const replied = new Promise<void>((resolve) => {
    pending = resolve
  })
  sock.cork()
  sock.write(head)
  sock.write(Buffer.from(r.output.buffer, r.output.byteOffset, r.output.byteLength))
  sock.uncork()
  await replied
  if (k >= 5) e2e.push(performance.now() - t0)
}
process.stdout.write(`${JSON.stringify({ e2e })}\n`)
sock.end()
await ex.stop()
process.exit(0)
