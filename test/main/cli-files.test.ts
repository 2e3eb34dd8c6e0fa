/** `edgent export` and `edgent import` given the wrong paths: one line naming what was wrong, exit 2, nothing left behind. */
import { execFile, execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, statSync } from 'node:fs'
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

  it('import of anything but a regular file is refused at once: an endless device, a FIFO nobody writes to', async () => {
    const r = await fails(['import', '/dev/zero', '--data-dir', dataDir])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/import: \/dev\/zero is not a regular file \(a FIFO, a device or a socket\): give a file/)
    expect(oneLine(r.stderr)).toBe(true)
    // a FIFO with no writer: opening it to read used to wait for one, forever
    const fifo = join(mkdtempSync(join(tmpdir(), 'edgent-fifo-')), 'export.json')
    execFileSync('mkfifo', [fifo])
    const f = await fails(['import', fifo, '--data-dir', dataDir])
    expect(f.code).toBe(2)
    expect(f.stderr).toMatch(/is not a regular file \(a FIFO, a device or a socket\)/)
  }, 30_000)

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

  it('an offline pair into an existing world-writable data folder leaves it private (0700)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-open-data-'))
    chmodSync(dir, 0o777)
    await run(process.execPath, [
      edgentBin,
      'pair',
      'pi-perm',
      '--data-dir',
      dir,
      '--out',
      join(dir, 'pi-perm.credentials.json'),
      '--advertise-host',
      '127.0.0.1'
    ])
    expect(statSync(dir).mode & 0o777).toBe(0o700)
    expect(statSync(join(dir, 'pi-perm.credentials.json')).mode & 0o777).toBe(0o600)
  })
})
