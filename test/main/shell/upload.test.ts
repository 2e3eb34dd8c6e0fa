/**
 * Importing a model through the console API (the headless shell): `POST /upload` streams a file into
 * the data directory under a cap, `modelImport` imports it as `edgent model import` would. A missing
 * token, a file over the cap (declared or streamed), an unknown upload and a file that is not ONNX
 * each get a clear error, and leave nothing behind in the uploads or the library.
 */
import { request } from 'node:http'
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { Jimp } from 'jimp'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { listModels } from '../../../src/main/models/library.js'
import { ControlApi } from '../../../src/main/shell/http-server.js'
import { residual } from '../../fixtures/dag.js'
import { startConsole } from '../console/harness.js'

interface Answer {
  status: number
  body: { ok: boolean; data?: unknown; error?: string }
}

function post(port: number, path: string, token: string | null, body: Uint8Array | string, chunked = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': Buffer.byteLength(body) })
        }
      },
      (res) => {
        let text = ''
        res.on('data', (d: Buffer) => (text += d.toString()))
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as Answer['body'] }))
      }
    )
    req.on('error', (err) => (chunked ? undefined : reject(err)))
    if (chunked && typeof body !== 'string') {
      // Streamed in 16 KiB pieces without a declared length: the cap must hold while reading.
      for (let i = 0; i < body.length; i += 16_384) req.write(body.subarray(i, i + 16_384), () => undefined)
      req.end()
    } else req.end(body)
  })
}

describe('model import through the console API', () => {
  let core: Awaited<ReturnType<typeof startConsole>>
  let api: ControlApi
  const CAP = 64 * 1024
  const call = (method: string, args: unknown) => post(api.port, `/api/${method}`, api.token, JSON.stringify(args))
  const uploads = () => readdirSync(join(core.opts.dataDir, 'uploads'))
  const imported = () =>
    listModels(core.opts.dataDir)
      .filter((m) => m.source === 'imported')
      .map((m) => m.id)

  beforeAll(async () => {
    core = await startConsole({ maxImportBytes: CAP })
    api = new ControlApi(core, { host: '127.0.0.1', port: 0, dataDir: core.opts.dataDir })
    await api.start()
  })
  afterAll(async () => {
    await api?.stop()
    await core?.stop()
  })

  it('uploads an ONNX file and imports it', async () => {
    const bytes = residual().bytes
    const up = await post(api.port, '/upload?name=my%20residual.onnx', api.token, bytes)
    expect(up).toMatchObject({ status: 200, body: { ok: true, data: { fileName: 'my residual.onnx', bytes: bytes.length } } })
    const { upload } = up.body.data as { upload: string }
    const r = await call('modelImport', { upload, fileName: 'my residual.onnx', accuracy: [0.4] })
    expect(r).toMatchObject({ status: 200, body: { ok: true, data: { id: 'my-residual', layers: 7, inputShape: [1, 3, 16, 16] } } })
    expect((r.body.data as { exits: unknown[] }).exits).toEqual([{ exit: 1, layers: 7, accuracy: 0.4, accuracySource: 'supplied' }])
    expect(imported()).toEqual(['my-residual'])
    expect(uploads()).toEqual([]) // used, then removed
  })

  it('imports with an image folder on the console machine as the labelled set, measuring each exit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-upload-images-'))
    const lines: string[] = []
    for (let k = 0; k < 6; k++) {
      const rgba = Buffer.alloc(16 * 16 * 4, 40 * k)
      writeFileSync(join(dir, `${k}.png`), await Jimp.fromBitmap({ width: 16, height: 16, data: rgba }).getBuffer('image/png'))
      lines.push(`${k}.png ${k % 10}`)
    }
    writeFileSync(join(dir, 'labels.txt'), lines.join('\n'))
    const up = await post(api.port, '/upload?name=res2.onnx', api.token, residual().bytes)
    const { upload } = up.body.data as { upload: string }
    const r = await call('modelImport', { upload, fileName: 'res2.onnx', imageDir: dir })
    expect(r.status, r.body.error).toBe(200)
    expect((r.body.data as { exits: { accuracySource: string }[] }).exits[0]!.accuracySource).toBe('measured')
    const bad = await post(api.port, '/upload?name=res3.onnx', api.token, residual().bytes)
    const r2 = await call('modelImport', { upload: (bad.body.data as { upload: string }).upload, fileName: 'res3.onnx', imageDir: join(dir, 'nope') })
    expect(r2).toMatchObject({ status: 400, body: { error: `imageDir: no such folder ${join(dir, 'nope')}` } })
    expect(uploads()).toEqual([])
  })

  it('refuses a missing token, and files over the cap whether declared or streamed, keeping nothing', async () => {
    expect(await post(api.port, '/upload?name=a.onnx', null, 'x')).toMatchObject({ status: 401, body: { error: 'missing or wrong token' } })
    const big = new Uint8Array(CAP + 1)
    expect(await post(api.port, '/upload?name=big.onnx', api.token, big)).toMatchObject({
      status: 413,
      body: { ok: false, error: `upload: big.onnx is ${CAP + 1} bytes, over the 64.0 KiB upload cap` }
    })
    const streamed = await post(api.port, '/upload?name=big.onnx', api.token, new Uint8Array(4 * CAP), true)
    expect(streamed).toMatchObject({ status: 413, body: { ok: false, error: 'upload: big.onnx is over the 64.0 KiB upload cap' } })
    expect(uploads()).toEqual([])
  })

  it('refuses an unknown upload, a malformed id and a file that is not ONNX, naming the problem', async () => {
    expect(await call('modelImport', { upload: 'a'.repeat(24), fileName: 'x.onnx', accuracy: [0.5] })).toMatchObject({
      status: 400,
      body: { error: `unknown upload "${'a'.repeat(24)}" (upload the file first; an upload not used within 30 min is removed)` }
    })
    expect((await call('modelImport', { upload: '../edgent.db', fileName: 'x.onnx' })).body.error).toMatch(/^modelImport: upload: expected an upload id/)
    const up = await post(api.port, '/upload?name=notes.onnx', api.token, 'these are not protobuf bytes at all')
    const { upload } = up.body.data as { upload: string }
    const r = await call('modelImport', { upload, fileName: 'notes.onnx', accuracy: [0.5] })
    expect(r.status).toBe(400)
    expect(r.body.error).toMatch(/^notes\.onnx: /)
    expect(r.body.error).not.toMatch(/\n/)
    expect(imported()).toEqual(['my-residual', 'res2'])
    expect(uploads()).toEqual([])
    expect(existsSync(join(core.opts.dataDir, 'models', 'notes'))).toBe(false)
  })
})
