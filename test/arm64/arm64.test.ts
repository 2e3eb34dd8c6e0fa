/**
 * The agent's linux-arm64 path, for real: the agent package a Pi user installs (`npm run pack:agent`,
 * then `npm install` of the tarball, as on the Pi) runs on an arm64 Node.js binary under qemu-user
 * emulation (Cortex-A72, a Raspberry Pi 4's core) with onnxruntime-node's own arm64 CPU binary,
 * against a console on x64. Its activations and predictions must equal an x64 agent's on the same
 * samples and plans. Run with `npm run test:arm64` (it installs what it needs first).
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../src/main/console/console.js'
import type { FrameHeader } from '../../src/shared/contracts/frame.js'
import { deviceState, root, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../main/console/harness.js'

const NODE_ARM64 = process.env['EDGENT_NODE_ARM64'] ?? join(root, '.cache', 'arm64', 'node-v24.22.3', 'bin', 'node')
const QEMU = ['env', 'QEMU_CPU=cortex-a72', 'qemu-aarch64-static']
const COUNT = 20
/** Plans run by both agents: a deep prefix of the final exit and a short one of an early exit. */
const PLANS = [
  { exit: 5, deviceLayers: 8 },
  { exit: 2, deviceLayers: 3 }
]

interface Seen {
  sample: number
  dims: number[]
  data: Float32Array
}

describe('the agent on linux-arm64 under qemu-user emulation', () => {
  let core: EdgentConsole & { logPath: string }
  let x64: AgentProc | null = null
  let arm: AgentProc | null = null
  const frames = new Map<string, Map<string, Seen>>() // agent → "exit/deviceLayers/sample" → frame
  let packedBin = ''

  beforeAll(async () => {
    if (!existsSync(NODE_ARM64)) throw new Error(`no arm64 node at ${NODE_ARM64}: run \`npm run test:arm64\`, which installs it (scripts/arm64-setup.sh)`)
    if (spawnSync('qemu-aarch64-static', ['--version']).status !== 0)
      throw new Error('qemu-aarch64-static is missing: run `npm run test:arm64` (scripts/arm64-setup.sh installs qemu-user-static)')
    // The deployment path: pack the agent, install the tarball in an empty folder without dev tools.
    const tgz = execFileSync(process.execPath, [join(root, 'scripts', 'pack-agent.mjs')], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop()!
    const site = mkdtempSync(join(tmpdir(), 'edgent-pi-'))
    writeFileSync(join(site, 'package.json'), '{"private": true}\n')
    execFileSync('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', tgz], {
      cwd: site,
      stdio: 'ignore',
      env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' }
    })
    packedBin = join(site, 'node_modules', 'edgent-agent', 'bin', 'edgent-agent.js')
    expect(existsSync(packedBin)).toBe(true)
    expect(existsSync(join(site, 'node_modules', 'better-sqlite3'))).toBe(false) // nothing to compile on a Pi
    core = await startConsole({ profileReps: 1 })
    core.on('frame', (f: { agentId: string; header: FrameHeader; dims: number[]; data: Float32Array }) => {
      let m = frames.get(f.agentId)
      if (!m) frames.set(f.agentId, (m = new Map()))
      m.set(`${f.header.exit}/${f.header.deviceLayers}/${f.header.sample}`, { sample: f.header.sample!, dims: f.dims, data: f.data })
    })
    const broker = `mqtt://127.0.0.1:${core.mqttPort}`
    x64 = spawnAgent(broker, 'pi-x64', core.pair('pi-x64').token)
    arm = spawnAgent(broker, 'pi-arm64', core.pair('pi-arm64').token, [], QEMU, { node: NODE_ARM64, entry: packedBin })
    await waitFor('pi-x64 online', () => deviceState(core, 'pi-x64') === 'online')
    await waitFor('pi-arm64 online (emulated)', () => deviceState(core, 'pi-arm64') === 'online', 180_000, 200).catch((e: Error) => {
      throw new Error(`${e.message}\n${arm?.stderr()}`)
    })
  }, 240_000)

  afterAll(async () => {
    await stopAgent(x64)
    await stopAgent(arm)
    await core?.stop()
  })

  it('announces arm64 and the same onnxruntime-node version as the x64 side', () => {
    const d = core.devices().find((x) => x.id === 'pi-arm64')!
    expect(d.hello).toMatchObject({ arch: 'arm64', versions: { onnxruntime: '1.27.0' } })
    const x = core.devices().find((x) => x.id === 'pi-x64')!
    expect(x.hello!.arch).toBe(process.arch)
    expect(d.hello!.models[0]!.sha256).toBe(x.hello!.models[0]!.sha256)
  })

  it(`runs ${COUNT} co-inferences per plan with the same activations (≤ 1e-5) and predictions as the x64 agent`, async () => {
    for (const plan of PLANS) {
      const a = await core.infer({ agent: 'pi-arm64', count: COUNT, latencyMs: 10_000, uplinkKbps: 100_000, plan })
      const b = await core.infer({ agent: 'pi-x64', count: COUNT, latencyMs: 10_000, uplinkKbps: 100_000, plan })
      expect(a.summary).toMatchObject({ completed: COUNT, lost: 0, plan })
      expect(b.summary).toMatchObject({ completed: COUNT, lost: 0, plan })
      expect(a.rows.map((r) => r.sample)).toEqual(b.rows.map((r) => r.sample))
      expect(a.rows.map((r) => r.predictedLabel)).toEqual(b.rows.map((r) => r.predictedLabel))
      let worst = 0
      for (const r of a.rows) {
        const key = `${plan.exit}/${plan.deviceLayers}/${r.sample}`
        const fa = frames.get('pi-arm64')?.get(key)
        const fb = frames.get('pi-x64')?.get(key)
        expect(fa, `arm64 frame ${key}`).toBeDefined()
        expect(fb, `x64 frame ${key}`).toBeDefined()
        expect(fa!.dims).toEqual(fb!.dims)
        expect(fa!.data.length).toBe(fb!.data.length)
        for (let i = 0; i < fa!.data.length; i++) worst = Math.max(worst, Math.abs(fa!.data[i]! - fb!.data[i]!))
      }
      console.log(
        `exit ${plan.exit}, ${plan.deviceLayers} device layers: ${COUNT} samples, max |arm64 − x64| = ${worst}; end-to-end p50 arm64 ${a.summary.p50Ms.toFixed(1)} ms, x64 ${b.summary.p50Ms.toFixed(1)} ms`
      )
      expect(worst).toBeLessThanOrEqual(1e-5)
    }
  }, 600_000)

  it('`edgent-agent --check` runs under emulation and prints arm64', () => {
    const out = execFileSync('qemu-aarch64-static', [NODE_ARM64, packedBin, '--check'], {
      env: { ...process.env, QEMU_CPU: 'cortex-a72' },
      encoding: 'utf8',
      timeout: 120_000
    })
    expect(out).toMatch(/^arch\s+arm64 /m)
    expect(out).toMatch(/^model\s+branchy-alexnet loads/m)
    expect(out).toMatch(/^check\s+ok$/m)
  }, 150_000)
})
