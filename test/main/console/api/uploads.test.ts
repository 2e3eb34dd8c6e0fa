/**
 * Uploads cannot fill the disk (issue 30, item 8): one never imported expires after its time to live
 * (not while an import reads it), and the kept and arriving uploads together stay under a total cap —
 * before, 1.5 GB of uploads were kept until a restart. A refused upload keeps nothing.
 */
import { mkdtempSync, readdirSync, utimesSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Uploads } from '../../../../src/main/console/api/uploads.js'
import { TooLargeError } from '../../../../src/shared/errors.js'

const KiB = 1024

describe('uploads', () => {
  it('holds at most the total cap, counting uploads still arriving, and keeps nothing refused', async () => {
    const u = new Uploads(mkdtempSync(join(tmpdir(), 'edgent-uploads-')), { maxBytes: 64 * KiB, maxTotalBytes: 100 * KiB })
    u.start()
    try {
      await u.receive('a.onnx', new Uint8Array(60 * KiB))
      const err = await u.receive('b.onnx', new Uint8Array(50 * KiB)).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(TooLargeError)
      expect((err as Error).message).toBe(
        'upload: b.onnx would take the uploads waiting for an import past their 100.0 KiB total (60.0 KiB kept): import them, or wait 30 min for unused ones to expire'
      )
      expect(u.list()).toHaveLength(1)
      // Two slow uploads at once: the second is refused on the bytes the first has sent so far.
      async function* slow(n: number, gate: Promise<void>) {
        yield new Uint8Array(n)
        await gate
      }
      let open!: () => void
      const gate = new Promise<void>((r) => (open = r))
      const first = u.receive('c.onnx', slow(30 * KiB, gate))
      await new Promise((r) => setTimeout(r, 20))
      await expect(u.receive('d.onnx', new Uint8Array(20 * KiB))).rejects.toThrow(/past their 100\.0 KiB total/)
      open()
      await first
      expect(u.list()).toHaveLength(2)
      expect(readdirSync(u.dir).filter((n) => n.startsWith('.'))).toEqual([])
    } finally {
      u.stop()
    }
  })

  it('expires an upload nobody used, not one an import is reading', async () => {
    let now = Date.now()
    const u = new Uploads(mkdtempSync(join(tmpdir(), 'edgent-uploads-')), { maxBytes: 64 * KiB, ttlMs: 60_000, now: () => now })
    u.start()
    try {
      const a = await u.receive('a.onnx', new Uint8Array(KiB))
      const b = await u.receive('b.onnx', new Uint8Array(KiB))
      const past = (Date.now() - 120_000) / 1000
      for (const id of [a.upload, b.upload]) utimesSync(join(u.dir, id), past, past)
      const release = u.hold([b.upload])
      expect(u.expire()).toBe(1)
      expect(u.list()).toEqual([b.upload])
      expect(() => u.path(a.upload)).toThrow(`unknown upload "${a.upload}" (upload the file first; an upload not used within 1 min is removed)`)
      release()
      now += 1
      expect(u.expire()).toBe(1)
      expect(u.list()).toEqual([])
    } finally {
      u.stop()
    }
  })

  it('names an upload without control or bidirectional characters', async () => {
    const u = new Uploads(mkdtempSync(join(tmpdir(), 'edgent-uploads-')), { maxBytes: 64 * KiB })
    u.start()
    try {
      expect((await u.receive('model\u202Exnno.onnx', new Uint8Array(1))).fileName).toBe('model\uFFFDxnno.onnx')
      expect((await u.receive('a\u0000b.onnx', new Uint8Array(1))).fileName).toBe('a\uFFFDb.onnx')
    } finally {
      u.stop()
    }
  })
})
