import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { residual } from '../fixtures/dag.js'
import { root } from './console/harness.js'
import { edgentBin, startServe, type ServeProcess } from './serve-process.js'

const run = promisify(execFile)
const edgent = edgentBin

function post(port: number, path: string, token: string | null, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      res.resume()
      resolve(res.statusCode!)
    })
    req.on('error', reject)
    req.end(body)
  })
}

describe('edgent serve with its local emulated device, driven by the CLI', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'edgent-serve-'))
  let serve: ServeProcess

  beforeAll(async () => {
    serve = await startServe({ dataDir, args: ['--local-cpu-quota', '0.5', '--advertise-host', '127.0.0.1'] })
    for (let i = 0; i < 120; i++) {
      const { stdout } = await run(process.execPath, [edgent, 'devices', '--data-dir', dataDir, '--json'])
      if ((JSON.parse(stdout) as { id: string; state: string }[]).some((d) => d.id === 'local-pi' && d.state === 'online')) break
      await new Promise((r) => setTimeout(r, 500))
    }
  }, 120_000)
  afterAll(() => {
    if (serve && serve.child.exitCode === null) serve.child.kill('SIGKILL')
  })

  it('prints where it runs and starts the local emulated device', async () => {
    expect(serve.stdout()).toContain('Edgent console running · model branchy-alexnet')
    const { stdout } = await run(process.execPath, [edgent, 'devices', '--data-dir', dataDir, '--json'])
    const local = (JSON.parse(stdout) as { id: string; state: string; hello: { emulation: { kind: string } } }[]).find((d) => d.id === 'local-pi')!
    expect(local.state).toBe('online')
    expect(local.hello.emulation.kind).toBe('local emulated device')
  })

  it('co-infers from the CLI and prints p50/p95, accuracy and the share of requirements met', async () => {
    const { stdout } = await run(
      process.execPath,
      [edgent, 'infer', '--agent', 'local-pi', '--count', '20', '--latency-ms', '200', '--data-dir', dataDir, '--json'],
      { timeout: 240_000 }
    )
    const r = JSON.parse(stdout) as { summary: Record<string, unknown>; rows: unknown[] }
    expect(r.summary).toMatchObject({ agentId: 'local-pi', count: 20, completed: 20, lost: 0, latencyMs: 200, bandwidthSource: 'estimate' })
    expect(r.rows).toHaveLength(20)
    for (const k of ['p50Ms', 'p95Ms', 'accuracy', 'metShare']) expect(typeof r.summary[k]).toBe('number')
    const text = await run(
      process.execPath,
      [edgent, 'infer', '--agent', 'local-pi', '--count', '5', '--latency-ms', '200', '--bandwidth-kbps', '250', '--data-dir', dataDir],
      { timeout: 240_000 }
    )
    expect(text.stdout).toMatch(/5\/5 co-inferences on local-pi · requirement 200 ms · uplink 250 kbps \(fixed\)/)
    expect(text.stdout).toMatch(/end-to-end p50 [\d.]+ ms · p95 [\d.]+ ms · requirement met [\d.]+ % · accuracy [\d.]+ %/)
    // At a percentile: the requirement, the tail it was planned with (or why none), the share against the target.
    const tail = await run(
      process.execPath,
      [edgent, 'infer', '--agent', 'local-pi', '--count', '5', '--latency-ms', '200', '--percentile', '95', '--data-dir', dataDir],
      { timeout: 240_000 }
    )
    expect(tail.stdout).toMatch(/5\/5 co-inferences on local-pi · requirement 200 ms at p95 · /)
    expect(tail.stdout).toMatch(
      /^tail( \(measured over \d+ inferences of \d+ plans\): device ×[\d.]+, edge ×[\d.]+, link and messaging \+[\d.]+ ms at p95|: \d+ inferences in plans run)/m
    )
    expect(tail.stdout).toMatch(/requirement met [\d.]+ % \(target 95 %\)/)
    const bad = await run(process.execPath, [
      edgent,
      'infer',
      '--agent',
      'local-pi',
      '--latency-ms',
      '200',
      '--percentile',
      '100',
      '--data-dir',
      dataDir
    ]).catch((e: { code: number; stderr: string }) => e)
    expect(bad).toMatchObject({ code: 2 })
    expect((bad as { stderr: string }).stderr).toContain("option '--percentile <p>' argument '100' is invalid. expected a percentile from 50 to 99.9, e.g. 95.")
  }, 300_000)

  it('tags and notes runs, lists them by tag, annotates and compares two from the CLI', async () => {
    const edg = (args: string[]) => run(process.execPath, [edgent, ...args, '--data-dir', dataDir], { timeout: 240_000 })
    const infer = async (extra: string[]) =>
      (
        JSON.parse((await edg(['infer', '--agent', 'local-pi', '--count', '12', '--latency-ms', '200', '--json', ...extra])).stdout) as {
          summary: { runId: string }
        }
      ).summary.runId
    const a = await infer(['--tag', 'cli-a', '--tag', 'shared', '--note', 'first run'])
    const b = await infer(['--tag', 'shared', '--bandwidth-kbps', '250'])
    const listed = JSON.parse((await edg(['runs', '--tag', 'shared', '--json'])).stdout) as { id: string; tags: string[]; note: string; model: string }[]
    expect(listed.map((r) => r.id)).toEqual([b, a])
    expect(listed[1]).toMatchObject({ tags: ['cli-a', 'shared'], note: 'first run', model: 'branchy-alexnet' })
    const text = (await edg(['runs', '--tag', 'cli-a'])).stdout.trimEnd().split('\n')
    expect(text[0]).toMatch(/^run +started +device +model +status +done +req ms +p50 ms +met +tags +note$/)
    expect(text).toHaveLength(3)
    expect(text[2]).toMatch(new RegExp(`^${a} .* branchy-alexnet +done +12/12 +200 +[\\d.]+ +[\\d.]+ % +cli-a shared +first run$`))
    expect((await edg(['annotate', 'run', a, '--no-tags', '--note', 'kept'])).stdout).toBe(`run ${a}: tags (none) · note “kept”\n`)
    const bad = await edg(['annotate', 'job', a, '--note', 'x']).catch((e: { code: number; stderr: string }) => e)
    expect(bad).toMatchObject({ code: 2, stderr: 'edgent: annotate: the target is run or campaign, got "job"\n' })
    const cmp = (await edg(['runs', 'compare', a, b])).stdout
    expect(cmp).toContain(`A: ${a} · local-pi · branchy-alexnet`)
    expect(cmp).toMatch(/^not alike: .*uplink \(kbps\): [\d.]+ → 250/m)
    expect(cmp).toMatch(/^p50 end to end \(ms\) +[\d.]+ +[\d.]+ +[+-]?[\d.]+/m)
    expect(cmp).toMatch(/^B − A at p50: [+-]?[\d.]+ ms, 95 % interval \[-?[\d.]+, -?[\d.]+\] ms — (a difference beyond|within) the runs’ own noise$/m)
    // A pinned plan says it was pinned, never "fastest plan" (nothing was planned).
    const pinned = (await edg(['infer', '--agent', 'local-pi', '--count', '3', '--latency-ms', '200', '--plan', '1/0'])).stdout
    expect(pinned).toMatch(/^plan [\w-]+: exit 1, 0\/\d+ layers on the device.*, predicted [\d.]+ ms \(pinned(; predicted over the requirement)?\)$/m)
    expect(pinned).not.toContain('fastest plan')
    const list = (await edg(['campaign', 'list'])).stdout.split('\n')[0]
    expect(list).toMatch(/^campaign +kind +device +model +status +progress +measurements +started +tags +note$/)
  }, 300_000)

  it('exports every inference and every bandwidth sample, as CSV and JSON, with named columns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgent-export-runs-'))
    const ex = (args: string[]) => run(process.execPath, [edgent, 'export', '--data-dir', dataDir, ...args])
    const csv = await ex(['--what', 'runs', '--format', 'csv', '--agent', 'local-pi', '--out', join(dir, 'runs.csv')])
    expect(csv.stdout).toMatch(/wrote .*runs\.csv: (\d+) inferences \(csv\)/)
    const lines = readFileSync(join(dir, 'runs.csv'), 'utf8').trim().split('\n')
    const head = lines[0]!.split(',')
    for (const c of [
      'id',
      'device',
      'run_id',
      'campaign_id',
      'exit',
      'device_layers',
      'latency_requirement_ms',
      'predicted_ms',
      'e2e_ms',
      'met',
      'correct',
      'uplink_kbps'
    ])
      expect(head, c).toContain(c)
    expect(lines.length - 1).toBeGreaterThanOrEqual(25) // the 20 + 5 co-inferences above
    expect(lines.slice(1).every((l) => !/[{[]/.test(l) && l.split(',')[head.indexOf('device')] === 'local-pi')).toBe(true)
    await ex(['--what', 'runs', '--format', 'json', '--out', join(dir, 'runs.json')])
    const runs = JSON.parse(readFileSync(join(dir, 'runs.json'), 'utf8')) as { format: string; rows: { met: boolean | null; e2e_ms: number }[] }
    expect(runs.format).toBe('edgent-runs-export')
    expect(runs.rows).toHaveLength(lines.length - 1)
    expect(typeof runs.rows[0]!.met).toBe('boolean')
    await ex(['--what', 'bandwidth', '--format', 'csv', '--agent', 'local-pi', '--out', join(dir, 'bw.csv')])
    const bw = readFileSync(join(dir, 'bw.csv'), 'utf8').trim().split('\n')
    expect(bw[0]).toBe('at,device,source,bytes,sample_kbps,estimate_kbps')
    expect(bw.length).toBeGreaterThan(1)
    // A flag that belongs to another kind of export is refused in one line.
    const bad = await ex(['--what', 'runs', '--campaign', 'x', '--out', join(dir, 'no.csv')]).catch((e: { code: number; stderr: string }) => e)
    expect(bad).toMatchObject({ code: 2, stderr: 'edgent: --campaign is for --what calibration (runs, bandwidth and plans take --agent)\n' })
  }, 60_000)

  it('serves the local device an imported DAG model chosen with `model use`: the device fetches it and co-infers with it', async () => {
    const src = mkdtempSync(join(tmpdir(), 'edgent-serve-model-'))
    writeFileSync(join(src, 'residual.onnx'), residual().bytes)
    await run(process.execPath, [edgent, 'model', 'import', join(src, 'residual.onnx'), '--accuracy', '0.5', '--data-dir', dataDir])
    const use = await run(process.execPath, [edgent, 'model', 'use', 'residual', '--agent', 'local-pi', '--data-dir', dataDir])
    expect(use.stdout).toMatch(/local-pi is now planned and served with residual/)
    const r = JSON.parse(
      (
        await run(process.execPath, [edgent, 'infer', '--agent', 'local-pi', '--count', '10', '--latency-ms', '1000', '--data-dir', dataDir, '--json'], {
          timeout: 240_000
        })
      ).stdout
    ) as { summary: { completed: number; lost: number; accuracy: number | null } }
    expect(r.summary).toMatchObject({ completed: 10, lost: 0, accuracy: null }) // random inputs: no labels, no accuracy
    const devices = JSON.parse((await run(process.execPath, [edgent, 'devices', '--data-dir', dataDir, '--json'])).stdout) as {
      id: string
      model: string
      modelAssigned: boolean
      plan: { model: string }
      transfer: { state: string } | null
      hello: { models: { id: string }[] }
    }[]
    const local = devices.find((d) => d.id === 'local-pi')!
    expect(local).toMatchObject({ model: 'residual', modelAssigned: true, plan: { model: 'residual' }, transfer: { state: 'done' } })
    expect(local.hello.models.map((m) => m.id).sort()).toEqual(['branchy-alexnet', 'residual'])
    expect(readdirSync(join(dataDir, 'agent-cache', 'local-pi')).filter((n) => n.startsWith('residual-'))).toHaveLength(1)
    const back = await run(process.execPath, [edgent, 'model', 'use', 'default', '--agent', 'local-pi', '--data-dir', dataDir])
    expect(back.stdout).toMatch(/local-pi is now planned and served with branchy-alexnet/)
    const unknown = await run(process.execPath, [edgent, 'model', 'use', 'nope', '--data-dir', dataDir]).catch((e: { code: number; stderr: string }) => e)
    expect(unknown).toMatchObject({ code: 2 })
    expect((unknown as { stderr: string }).stderr).toMatch(/^edgent: no model "nope"/)
  }, 300_000)

  it('pairs a new agent with the exact command to run, and unpairs it', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'edgent-pair-')), 'pi-kitchen.credentials.json')
    const { stdout } = await run(process.execPath, [edgent, 'pair', 'pi-kitchen', '--data-dir', dataDir, '--out', out])
    expect(stdout).toContain('npx --no -- edgent-agent --credentials pi-kitchen.credentials.json')
    expect(stdout).toMatch(/over TLS \(mqtts:\/\/\S+:\d+\) and pins this console's CA, SHA-256 [0-9a-f:]{95}/)
    expect(statSync(out).mode & 0o777).toBe(0o600)
    const cred = JSON.parse(readFileSync(out, 'utf8')) as { id: string; broker: string; token: string; ca: string }
    expect(cred).toMatchObject({ id: 'pi-kitchen', broker: expect.stringMatching(/^mqtts:\/\//), token: expect.stringMatching(/^[A-Za-z0-9_-]{32}$/) })
    expect(cred.ca).toContain('BEGIN CERTIFICATE')
    expect(stdout).not.toContain(cred.token)
    // the same id again: refused without --force (the old token would die), replaced with it
    const again = await run(process.execPath, [edgent, 'pair', 'pi-kitchen', '--data-dir', dataDir, '--out', out]).catch(
      (e: { code: number; stderr: string }) => e
    )
    expect(again).toMatchObject({ code: 2, stderr: expect.stringMatching(/already paired: pairing it again issues a new token .* --force/) })
    expect(JSON.parse(readFileSync(out, 'utf8')).token).toBe(cred.token) // the file was not touched
    const forced = await run(process.execPath, [edgent, 'pair', 'pi-kitchen', '--force', '--data-dir', dataDir, '--out', out])
    expect(forced.stdout).toContain('re-paired pi-kitchen: its old token no longer works')
    expect(JSON.parse(readFileSync(out, 'utf8')).token).not.toBe(cred.token)
    const un = await run(process.execPath, [edgent, 'unpair', 'pi-kitchen', '--data-dir', dataDir])
    expect(un.stdout).toContain('unpaired pi-kitchen')
    const bad = await run(process.execPath, [edgent, 'pair', 'Bad/Id', '--data-dir', dataDir]).catch((e: { code: number; stderr: string }) => e)
    expect((bad as { code: number }).code).toBe(2)
    expect((bad as { stderr: string }).stderr).toMatch(/^edgent: agent id "Bad\/Id" is not valid/)
  })

  it('the pairing command it prints, run as printed with npm 11 in a folder where the agent is installed, connects the agent', async () => {
    // The folder as `npm install edgent-agent-*.tgz` leaves it on a Pi: a package with the agent's bin.
    const piDir = mkdtempSync(join(tmpdir(), 'edgent-pi-'))
    writeFileSync(join(piDir, 'package.json'), '{"name":"pi-home","private":true}\n')
    mkdirSync(join(piDir, 'node_modules', '.bin'), { recursive: true })
    symlinkSync(join(root, 'pi-agent', 'bin', 'edgent-agent.js'), join(piDir, 'node_modules', '.bin', 'edgent-agent'))
    const { stdout } = await run(process.execPath, [edgent, 'pair', 'pi-npx', '--data-dir', dataDir, '--out', join(piDir, 'pi-npx.credentials.json')])
    const printed = stdout
      .split('\n')
      .find((l) => l.trim().startsWith('npx '))!
      .trim()
    expect(printed).toBe('npx --no -- edgent-agent --credentials pi-npx.credentials.json')
    // the exact string through a shell, with the npm on PATH (the README's: npm 11)
    const npmVersion = (await run('npm', ['--version'])).stdout.trim()
    expect(Number(npmVersion.split('.')[0])).toBeGreaterThanOrEqual(11)
    const agent = spawn('sh', ['-c', printed], { cwd: piDir, detached: true, stdio: ['ignore', 'ignore', 'pipe'] })
    let agentErr = ''
    agent.stderr!.on('data', (d: Buffer) => void (agentErr = (agentErr + d.toString()).slice(-4000)))
    try {
      let state = ''
      for (let i = 0; i < 240 && state !== 'online'; i++) {
        if (agent.exitCode !== null) throw new Error(`the printed command exited ${agent.exitCode}: ${agentErr}`)
        const list = JSON.parse((await run(process.execPath, [edgent, 'devices', '--data-dir', dataDir, '--json'])).stdout) as { id: string; state: string }[]
        state = list.find((d) => d.id === 'pi-npx')?.state ?? ''
        if (state !== 'online') await new Promise((r) => setTimeout(r, 500))
      }
      expect(state, agentErr).toBe('online')
    } finally {
      if (agent.exitCode === null) process.kill(-agent.pid!, 'SIGTERM')
    }
    await run(process.execPath, [edgent, 'unpair', 'pi-npx', '--data-dir', dataDir])
  }, 180_000)

  it('cancels a running campaign from the CLI, and `campaign run --json` then exits 1 with the status', async () => {
    const runP = run(process.execPath, [edgent, 'campaign', 'run', '--agent', 'local-pi', '--kind', 'layers', '--reps', '3', '--json', '--data-dir', dataDir], {
      timeout: 240_000
    }).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (e: { code: number; stdout: string }) => e
    )
    let id = ''
    for (let i = 0; i < 200 && !id; i++) {
      const list = JSON.parse((await run(process.execPath, [edgent, 'campaign', 'list', '--json', '--data-dir', dataDir])).stdout) as {
        id: string
        status: string
      }[]
      id = list.find((c) => c.status === 'running')?.id ?? ''
      if (!id) await new Promise((r) => setTimeout(r, 100))
    }
    expect(id).not.toBe('')
    const cancel = await run(process.execPath, [edgent, 'campaign', 'cancel', id, '--data-dir', dataDir])
    expect(cancel.stdout).toMatch(new RegExp(`cancelling campaign ${id}: it stops between chunks`))
    const r = await runP
    expect(r.code).toBe(1)
    expect(JSON.parse(r.stdout)).toMatchObject({ id, status: 'cancelled' })
    const again = await run(process.execPath, [edgent, 'campaign', 'cancel', id, '--data-dir', dataDir]).catch((e: { code: number; stderr: string }) => e)
    expect(again).toMatchObject({ code: 2, stderr: expect.stringContaining(`campaign ${id} is not running (it is cancelled)`) })
  }, 240_000)

  it('refuses the control API without the token, or with a wrong one', async () => {
    const file = JSON.parse(readFileSync(join(dataDir, 'console.json'), 'utf8')) as { httpPort: number; token: string }
    expect(await post(file.httpPort, '/api/devices', null, '{}')).toBe(401)
    expect(await post(file.httpPort, '/api/devices', 'x'.repeat(file.token.length), '{}')).toBe(401)
    expect(await post(file.httpPort, '/api/devices', file.token, '{}')).toBe(200)
    expect(await post(file.httpPort, '/api/infer', file.token, '{"agent": 3}')).toBe(400)
  })

  it('stops cleanly on SIGTERM, removing console.json', async () => {
    await serve.kill('SIGTERM')
    expect(serve.child.exitCode).toBe(0)
    expect(existsSync(join(dataDir, 'console.json'))).toBe(false)
    expect(serve.stderr()).not.toMatch(/"level":50/)
  }, 30_000)
})
