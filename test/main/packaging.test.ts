/**
 * Packaging, as far as this machine allows: electron-builder itself (loading and validating
 * electron-builder.yml with its own schema, collecting the production dependencies, copying the
 * app) packs the unpacked Linux app, with a stand-in for Electron's release (which downloads from
 * GitHub; so do the AppImage and .deb tools, hence the `dir` target here). The packed tree must hold
 * the built console, the shipped model byte for byte, both native addons for x64 and arm64, no
 * development dependency — and run: the CLI plans and the agent checks its model from the package.
 */
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { beforeAll, describe, expect, it } from 'vitest'
import { root } from './console/harness.js'

const run = promisify(execFile)
const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex')

describe('electron-builder packs the desktop console (linux, unpacked)', () => {
  const out = mkdtempSync(join(tmpdir(), 'edgent-dist-'))
  const app = join(out, 'linux-unpacked', 'resources', 'app')
  let log = ''

  beforeAll(async () => {
    const dist = join(out, 'fake-electron')
    mkdirSync(dist)
    writeFileSync(join(dist, 'electron'), '#!/bin/sh\necho "stand-in for Electron" >&2\nexit 1\n')
    chmodSync(join(dist, 'electron'), 0o755)
    writeFileSync(join(dist, 'LICENSE'), '')
    const r = await run(
      process.execPath,
      [
        join(root, 'node_modules', 'electron-builder', 'cli.js'),
        '--linux',
        'dir',
        '--publish',
        'never',
        `-c.electronDist=${dist}`,
        `-c.directories.output=${out}`
      ],
      // electron-builder silences its log when it sees VITEST (its own test set-up): it is not under test here.
      { cwd: root, env: { ...process.env, VITEST: '' }, maxBuffer: 64 * 1024 * 1024 }
    )
    log = r.stdout + r.stderr
    if (!log.includes('loaded configuration')) console.log(log)
  }, 120_000)

  it('loads electron-builder.yml (its schema check passes) and packs without rebuilding native modules', () => {
    expect(log).toContain(`loaded configuration  file=${join(root, 'electron-builder.yml')}`)
    expect(log).toContain('reason=npmRebuild is set to false')
    expect(existsSync(join(out, 'linux-unpacked', 'edgent-console'))).toBe(true)
  })

  it('holds the built console, the shipped model byte for byte and the production dependencies only', () => {
    for (const f of [
      'out/main/index.js',
      'out/main/cli.js',
      'out/main/agent.js',
      'out/main/ort-worker.js',
      'out/main/admin-worker.js',
      'out/preload/index.cjs',
      'out/renderer/index.html',
      'bin/edgent.js'
    ])
      expect(existsSync(join(app, f)), f).toBe(true)
    for (const f of ['manifest.json', 'model.onnx', 'samples-images-idx3-ubyte', 'samples-labels-idx1-ubyte'])
      expect(sha(join(app, 'resources/models/branchy-alexnet', f)), f).toBe(sha(join(root, 'resources/models/branchy-alexnet', f)))
    for (const arch of ['x64', 'arm64'])
      expect(existsSync(join(app, `node_modules/onnxruntime-node/bin/napi-v6/linux/${arch}/onnxruntime_binding.node`)), arch).toBe(true)
    expect(existsSync(join(app, 'node_modules/better-sqlite3/package.json'))).toBe(true)
    for (const dev of ['electron', 'vitest', 'electron-builder', 'react', 'typescript']) expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(false)
    expect(JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')).main).toBe('./out/main/index.js')
  })

  it('runs from the package: the CLI plans and the agent loads and times the shipped model', async () => {
    const plan = await run(process.execPath, [
      join(app, 'bin/edgent.js'),
      'plan',
      '--profile',
      'paper-2018',
      '--bandwidth-kbps',
      '500',
      '--latency-ms',
      '1000',
      '--json'
    ])
    expect(JSON.parse(plan.stdout)).toMatchObject({ model: 'branchy-alexnet', feasible: true })
    const { EDGENT_MODEL_DIR: _m, ...env } = process.env
    const check = await run(process.execPath, [join(app, 'out/main/agent.js'), '--check', '--json'], { env })
    const c = JSON.parse(check.stdout) as { ok: boolean; model: { id: string }; problems: string[] }
    expect(c).toMatchObject({ ok: true, model: { id: 'branchy-alexnet' }, problems: [] })
  }, 60_000)
})
