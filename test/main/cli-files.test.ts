/** `edgent export` and `edgent import` given the wrong paths: one line naming what was wrong, exit 2, nothing left behind. */
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { edgentBin } from './serve-process.js'

const run = promisify(execFile)

async function fails(args: string[]): Promise<{ code: number; stderr: string; ms: number }> {
  const t0 = performance.now()
  const r = await run(process.execPath, [edgentBin, ...args], { timeout: 60_000 }).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e
  )
  return { code: r.code, stderr: r.stderr, ms: performance.now() - t0 }
}

describe('export and import with wrong paths', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'edgent-files-'))
  const oneLine = (s: string) => s.trim().split('\n').length === 1 && !/internal error|\n\s+at /.test(s)

  it('export into a folder that does not exist', async () => {
    const r = await fails(['export', '--out', join(dataDir, 'missing', 'x.json'), '--data-dir', dataDir])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/export: the folder .*missing does not exist/)
    expect(oneLine(r.stderr)).toBe(true)
  })

  it('export onto a folder leaves no temporary file', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'edgent-export-'))
    const dir = join(parent, 'out')
    mkdirSync(dir)
    const r = await fails(['export', '--out', dir, '--data-dir', dataDir])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/is a folder: give a file name/)
    expect(oneLine(r.stderr)).toBe(true)
    expect(readdirSync(parent)).toEqual(['out'])
  })

  it('import of an endless device stops at the stated size', async () => {
    const r = await fails(['import', '/dev/zero', '--data-dir', dataDir])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/import: \/dev\/zero is over the 64 MiB limit/)
    expect(oneLine(r.stderr)).toBe(true)
  })

  it('import of a folder, and of a file that is not there', async () => {
    const a = await fails(['import', dataDir, '--data-dir', dataDir])
    expect(a.stderr).toMatch(/is a folder, expected a file/)
    const b = await fails(['import', join(dataDir, 'nope.json'), '--data-dir', dataDir])
    expect(b.stderr).toMatch(/no such file/)
    for (const r of [a, b]) {
      expect(r.code).toBe(2)
      expect(oneLine(r.stderr)).toBe(true)
    }
  })
})
