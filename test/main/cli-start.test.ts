/** `edgent serve` refusing to start: one line naming the reason, exit 2, promptly — never a hang. */
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from './console/harness.js'
import Database from 'better-sqlite3'
import { edgentBin, startServe } from './serve-process.js'

function serveExit(args: string[]): Promise<{ code: number | null; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = performance.now()
    const child = spawn(process.execPath, [edgentBin, 'serve', '--no-local-agent', '--log-level', 'error', ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stderr, ms: performance.now() - t0 })
    })
  })
}

describe('edgent serve start-up failures', () => {
  let taken: Server
  let port = 0
  beforeAll(async () => {
    taken = createServer()
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()))
    port = (taken.address() as { port: number }).port
  })
  afterAll(() => taken.close())

  const dirs = () => ['--data-dir', mkdtempSync(join(tmpdir(), 'edgent-start-'))]

  it('exits 2 naming the MQTT port when it is taken', async () => {
    const r = await serveExit([...dirs(), '--mqtt-host', '127.0.0.1', '--mqtt-port', String(port), '--no-mqtts', '--http-port', String(await freePort())])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`edgent: MQTT port ${port}`)
    expect(r.stderr).toContain('is in use')
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
  }, 40_000)

  it('exits 2 naming the HTTP port when it is taken', async () => {
    const r = await serveExit([...dirs(), '--mqtt-host', '127.0.0.1', '--mqtt-port', String(await freePort()), '--no-mqtts', '--http-port', String(port)])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain(`edgent: HTTP port ${port} is in use`)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
  }, 40_000)

  it('names which MQTT listener could not have its port: the TLS one', async () => {
    const r = await serveExit([
      ...dirs(),
      '--mqtt-host',
      '127.0.0.1',
      '--mqtt-port',
      String(await freePort()),
      '--mqtts-host',
      '127.0.0.1',
      '--mqtts-port',
      String(port),
      '--http-port',
      String(await freePort())
    ])
    expect(r.code).toBe(2)
    expect(r.stderr.trim()).toBe(`edgent: MQTT over TLS port ${port} is in use (another broker?): choose another with --mqtts-port`)
  }, 40_000)

  it('refuses its own listeners on one port, a port past 65535, and a data directory that cannot exist — at once, in one line', async () => {
    // before: the clash failed the start as "in use (another broker?)", 70000 was an internal error
    // with a stack, and /proc/x hung silently (Node's recursive mkdir retries ENOENT forever)
    const free = String(await freePort())
    let r = await serveExit([...dirs(), '--mqtt-host', '127.0.0.1', '--mqtt-port', free, '--no-mqtts', '--http-port', free])
    expect(r.code).toBe(2)
    expect(r.stderr.trim()).toBe(`edgent: --http-port ${free} is also the --mqtt-port: give each listener its own port`)
    r = await serveExit([...dirs(), '--mqtts-port', '70000'])
    expect(r.code).toBe(2)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
    expect(r.stderr).toMatch(/--mqtts-port <port>'? argument '70000' is invalid\. expected a port from 1 to 65535\./)
    r = await serveExit([
      '--data-dir',
      '/proc/edgent-cannot-exist',
      '--mqtt-host',
      '127.0.0.1',
      '--mqtt-port',
      free,
      '--no-mqtts',
      '--http-port',
      String(await freePort())
    ])
    expect(r.code).toBe(2)
    expect(r.ms).toBeLessThan(25_000)
    expect(r.stderr.trim()).toMatch(/^edgent: data directory \/proc\/edgent-cannot-exist is not writable \(ENOENT\)/)
  }, 90_000)

  const ports = async () => ['--mqtt-host', '127.0.0.1', '--mqtt-port', String(await freePort()), '--no-mqtts', '--http-port', String(await freePort())]
  const oneLine = (r: { code: number | null; stderr: string }) => {
    expect(r.code).toBe(2)
    expect(r.stderr.trim().split('\n')).toHaveLength(1)
  }

  it('exits 2 when the data directory cannot be written, the database is corrupt or locked', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'edgent-start-')), 'a-file')
    writeFileSync(file, 'x')
    let r = await serveExit(['--data-dir', join(file, 'data'), ...(await ports())])
    oneLine(r)
    expect(r.stderr).toContain(`edgent: data directory ${join(file, 'data')} is not writable (ENOTDIR)`)

    const corrupt = mkdtempSync(join(tmpdir(), 'edgent-start-'))
    writeFileSync(join(corrupt, 'edgent.db'), Buffer.alloc(4096, 1))
    r = await serveExit(['--data-dir', corrupt, ...(await ports())])
    oneLine(r)
    expect(r.stderr).toContain('is corrupt or not an SQLite database')
    expect(readFileSync(join(corrupt, 'edgent.db'))).toEqual(Buffer.alloc(4096, 1))

    const locked = mkdtempSync(join(tmpdir(), 'edgent-start-'))
    mkdirSync(locked, { recursive: true })
    const holder = new Database(join(locked, 'edgent.db'))
    holder.exec('CREATE TABLE t (x); BEGIN EXCLUSIVE; INSERT INTO t VALUES (1)')
    try {
      r = await serveExit(['--data-dir', locked, ...(await ports())])
    } finally {
      holder.exec('ROLLBACK')
      holder.close()
    }
    oneLine(r)
    expect(r.stderr).toContain('is locked by another process')
  }, 60_000)

  it('exits 2 naming the console that already runs on the data directory', async () => {
    const first = await startServe({ args: ['--no-local-agent', '--no-mqtts'] })
    try {
      const r = await serveExit(['--data-dir', first.dataDir, ...(await ports())])
      oneLine(r)
      expect(r.stderr).toContain(`edgent: a console is already running on ${first.dataDir}: edgent serve, pid ${first.child.pid}`)
      expect(first.died()).toBeNull()
    } finally {
      await first.stop()
    }
  }, 60_000)

  // A Node whose ABI differs from the one better-sqlite3 was built for (the system's older Node beside
  // the registry's Node 24 in CI): the console says so plainly and how to fix it.
  const other = ['/usr/bin/node', '/usr/local/bin/node'].find((n) => {
    const r = spawnSync(n, ['-p', 'process.versions.modules'], { encoding: 'utf8' })
    return r.status === 0 && r.stdout.trim() !== process.versions.modules
  })
  it.skipIf(!other)(
    `says plainly that better-sqlite3 was built for another runtime (${other ?? 'no Node of another ABI on this machine'})`,
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'edgent-start-'))
      const r = spawnSync(other!, [edgentBin, 'serve', '--data-dir', dir, '--no-local-agent', ...(await ports())], { encoding: 'utf8', timeout: 30_000 })
      expect(r.status).toBe(2)
      expect(r.stderr.trim()).toBe(
        `edgent: better-sqlite3's native addon was built for another runtime (ABI ${process.versions.modules}; this Node needs ${spawnSync(other!, ['-p', 'process.versions.modules'], { encoding: 'utf8' }).stdout.trim()}): run \`npm rebuild better-sqlite3\` in the edgent-console folder`
      )
    },
    40_000
  )
})
