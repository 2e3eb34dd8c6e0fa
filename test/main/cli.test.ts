import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { runCli } from './cli-run.js'
import { cifarAlexNetManifest } from '../fixtures/paper-alexnet.js'

const fixture = fileURLToPath(new URL('../fixtures/tiny/', import.meta.url))
const model = join(fixture, 'manifest.json')
const profile = join(fixture, 'profile.json')
const root = fileURLToPath(new URL('../../', import.meta.url))

const run = runCli

describe('edgent plan', () => {
  it('prints the plan as one JSON object with the documented fields', async () => {
    const r = await run('plan', '--model', model, '--profile', profile, '--bandwidth-kbps', '64', '--latency-ms', '3', '--json')
    expect(r.code).toBe(0)
    expect(r.err).toBe('')
    const p = JSON.parse(r.out)
    expect(p).toMatchObject({
      model: 'tiny',
      mode: 'edgent',
      exit: 2,
      deviceLayers: 8,
      layers: 8,
      feasible: true,
      accuracy: 0.9,
      uploadBytes: 0,
      profile: 'tiny-linear',
      latencyMs: 3,
      uplinkKbps: 64
    })
    expect(p.predictedMs).toBeCloseTo(2.11, 12)
    expect(Object.keys(p.breakdown).sort()).toEqual(['deviceMs', 'downloadMs', 'edgeMs', 'overheadMs', 'uploadMs'])
    expect(p.candidates).toBeUndefined()
  })

  it('lists every candidate with --all', async () => {
    const r = await run('plan', '--model', fixture, '--profile', profile, '--bandwidth-kbps', '64', '--latency-ms', '3', '--json', '--all')
    const p = JSON.parse(r.out)
    expect(p.candidates).toHaveLength(15)
    expect(p.candidates[0]).toMatchObject({ exit: 1, deviceLayers: 0, layers: 5, uploadBytes: 64 })
    for (const c of p.candidates)
      expect(Object.keys(c)).toEqual(
        expect.arrayContaining(['exit', 'deviceLayers', 'layers', 'feasible', 'predictedMs', 'accuracy', 'uploadBytes', 'breakdown'])
      )
  })

  it('reports no plan in mode paper when nothing meets the requirement', async () => {
    const r = await run('plan', '--model', model, '--profile', profile, '--bandwidth-kbps', '64', '--latency-ms', '1', '--mode', 'paper', '--json')
    expect(r.code).toBe(0)
    expect(JSON.parse(r.out)).toMatchObject({ mode: 'paper', exit: null, deviceLayers: null, feasible: false })
    const text = await run('plan', '--model', model, '--profile', profile, '--bandwidth-kbps', '64', '--latency-ms', '1', '--mode', 'paper')
    expect(text.out).toContain('no plan meets the requirement')
  })

  it('prints a readable table', async () => {
    const r = await run('plan', '--model', model, '--profile', profile, '--bandwidth-kbps', '64', '--latency-ms', '2', '--all')
    expect(r.code).toBe(0)
    expect(r.out).toContain('plan: exit 1, deviceLayers 5 of 5 (device-only)')
    expect(r.out).toContain('meets the requirement: predicted 1.41 ms <= 2 ms')
    expect(r.out.split('\n').filter((l) => /^\*/.test(l))).toHaveLength(1)
  })

  it('plans over codecs with --codecs: u8 edge-only candidates, the codec in the plan and the map', async () => {
    const shipped = join(root, 'resources/models/branchy-alexnet')
    const base = ['plan', '--model', shipped, '--profile', 'paper-2018', '--bandwidth-kbps', '500', '--latency-ms', '1000']
    const f32 = JSON.parse((await run(...base, '--json', '--all')).out)
    expect(new Set(f32.candidates.map((c: { codec: string }) => c.codec))).toEqual(new Set(['f32']))
    const r = JSON.parse((await run(...base, '--json', '--all', '--codecs', 'u8')).out)
    const u8 = r.candidates.filter((c: { codec: string }) => c.codec === 'u8')
    expect(u8).toHaveLength(5) // one per exit, edge-only
    for (const c of u8) expect(c).toMatchObject({ deviceLayers: 0, uploadBytes: 784 })
    expect(r.candidates).toHaveLength(f32.candidates.length + 5)
    const text = (await run(...base, '--all', '--codecs', 'all')).out
    expect(text).toMatch(/codec ms/)
    expect(text).toMatch(/\bu8\b/)
    const map = JSON.parse(
      (
        await run(
          'plan',
          '--model',
          shipped,
          '--profile',
          'paper-2018',
          '--map',
          '--latency-ms',
          '1000',
          '--from-kbps',
          '10',
          '--to-kbps',
          '100000',
          '--codecs',
          'u8',
          '--json'
        )
      ).out
    )
    expect(map.intervals.some((iv: { codec: string; deviceLayers: number }) => iv.codec === 'u8' && iv.deviceLayers === 0)).toBe(true)
    const bad = await run(...base, '--codecs', 'gzip')
    expect(bad.code).toBe(2)
    expect(bad.err).toContain('unknown codec "gzip"')
  })

  it('prints the configuration map as contiguous intervals', async () => {
    const r = await run('plan', '--model', model, '--profile', profile, '--map', '--latency-ms', '3', '--from-kbps', '1', '--to-kbps', '100000', '--json')
    expect(r.code).toBe(0)
    const map = JSON.parse(r.out)
    expect(map.intervals[0]).toMatchObject({ fromKbps: 1, exit: 2, deviceLayers: 8, feasible: true })
    expect(map.intervals.at(-1)).toMatchObject({ toKbps: 100000, exit: 2, deviceLayers: 0 })
    for (const iv of map.intervals) expect(Object.keys(iv)).toEqual(expect.arrayContaining(['fromKbps', 'toKbps', 'exit', 'deviceLayers', 'feasible']))
    const text = await run('plan', '--model', model, '--profile', profile, '--map', '--latency-ms', '3', '--from-kbps', '1', '--to-kbps', '100000')
    expect(text.out).toMatch(/from kbps\s+to kbps\s+exit\s+deviceLayers/)
  })

  it("paper-2018 on the paper's CIFAR-10 AlexNet: the motivation figures for edge-only within 15 %, device-only slower by an order of magnitude", async () => {
    // The paper: device-only > 2 s; edge-only ≈ 123 ms at 1 Mbps and 2.317 s at 50 kbps (Raspberry Pi, desktop PC).
    const dir = mkdtempSync(join(tmpdir(), 'edgent-paper-'))
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify(cifarAlexNetManifest()))
    const at = async (profile: string, kbps: number) => {
      const r = await run('plan', '--model', dir, '--profile', profile, '--bandwidth-kbps', String(kbps), '--latency-ms', '10000', '--all', '--json')
      expect(r.err).toBe('')
      const all = JSON.parse(r.out).candidates as { deviceLayers: number; layers: number; predictedMs: number }[]
      return { edgeOnly: all.find((c) => c.deviceLayers === 0)!.predictedMs, deviceOnly: all.find((c) => c.deviceLayers === c.layers)!.predictedMs }
    }
    const fast = await at('paper-2018', 1000)
    const slow = await at('paper-2018', 50)
    expect(Math.abs(fast.edgeOnly - 123) / 123).toBeLessThan(0.15)
    expect(Math.abs(slow.edgeOnly - 2317) / 2317).toBeLessThan(0.15)
    // Device-only: 0.99 s on this reading of the shapes, not the paper's > 2 s (README); still ≈ 9× edge-only at 1 Mbps.
    expect(fast.deviceOnly).toBeGreaterThan(900)
    expect(fast.deviceOnly).toBeGreaterThan(8 * fast.edgeOnly)
    // As printed, the Pi would run the whole AlexNet in a few ms — faster than sending it its input.
    const printed = await at('paper-2018-as-printed', 1000)
    expect(printed.deviceOnly).toBeLessThan(50)
    expect(printed.edgeOnly).toBeGreaterThan(300)
  })

  it('uses the built-in paper-2018 profile', async () => {
    const r = await run('plan', '--model', model, '--profile', 'paper-2018', '--bandwidth-kbps', '500', '--latency-ms', '100', '--json')
    expect(JSON.parse(r.out)).toMatchObject({ profile: 'paper-2018', feasible: true })
  })

  const bad = mkdtempSync(join(tmpdir(), 'edgent-cli-'))
  writeFileSync(join(bad, 'broken.json'), '{"id": ')
  writeFileSync(join(bad, 'manifest.json'), JSON.stringify({ id: 'x' }))
  const errors: [string, string[], RegExp][] = [
    [
      'a non-numeric bandwidth',
      ['--bandwidth-kbps', 'fast', '--latency-ms', '3'],
      /^edgent: option '--bandwidth-kbps <kbps>' argument 'fast' is invalid\. expected a positive number\.$/
    ],
    ['a negative requirement', ['--bandwidth-kbps', '5', '--latency-ms', '-3'], /argument '-3' is invalid/],
    ['an unknown flag', ['--bandwidth-kbps', '5', '--latency-ms', '3', '--fast'], /^edgent: unknown option '--fast'$/],
    [
      'an unknown mode',
      ['--bandwidth-kbps', '5', '--latency-ms', '3', '--mode', 'greedy'],
      /argument 'greedy' is invalid\. Allowed choices are edgent, paper\.$/
    ],
    ['a missing bandwidth', ['--latency-ms', '3'], /^edgent: missing required option '--bandwidth-kbps <kbps>' \(or use --map\)$/],
    ['a map without its range', ['--latency-ms', '3', '--map'], /^edgent: --map needs '--from-kbps <kbps>' and '--to-kbps <kbps>'$/]
  ]
  for (const [what, args, pattern] of errors) {
    it(`exits 2 with one line on ${what}`, async () => {
      const r = await run('plan', '--model', model, '--profile', profile, ...args)
      expect(r.code).toBe(2)
      expect(r.out).toBe('')
      expect(r.err.trim()).toMatch(pattern)
      expect(r.err.trim().split('\n')).toHaveLength(1)
    })
  }

  const fileErrors: [string, string[], string][] = [
    [
      'a missing model',
      ['--model', join(bad, 'nope'), '--profile', profile],
      `edgent: model: no such file or folder ${join(bad, 'nope')} (expected a manifest.json or a model folder)`
    ],
    ['an invalid manifest', ['--model', bad, '--profile', profile], 'edgent: '],
    ['a missing profile file', ['--model', model, '--profile', join(bad, 'none.json')], `edgent: profile: no such file ${join(bad, 'none.json')}`],
    ['a profile that is not JSON', ['--model', model, '--profile', join(bad, 'broken.json')], `edgent: profile: ${join(bad, 'broken.json')} is not valid JSON`],
    [
      'an unknown built-in profile',
      ['--model', model, '--profile', 'paper-2019'],
      'edgent: profile: unknown profile "paper-2019" (built-in: paper-2018, paper-2018-as-printed; a stored profile id; or a calibration .json file)'
    ],
    ['an invalid profile', ['--model', model, '--profile', model], 'edgent: manifest.json: format: ']
  ]
  for (const [what, args, prefix] of fileErrors) {
    it(`exits 2 with one line on ${what}`, async () => {
      const r = await run('plan', ...args, '--bandwidth-kbps', '5', '--latency-ms', '3')
      expect(r.code).toBe(2)
      expect(r.err.startsWith(prefix)).toBe(true)
      expect(r.err.trim().split('\n')).toHaveLength(1)
    })
  }

  it('names the broken manifest field', async () => {
    const r = await run('plan', '--model', bad, '--profile', profile, '--bandwidth-kbps', '5', '--latency-ms', '3')
    expect(r.err).toMatch(/^edgent: [^ ]*manifest\.json: onnx: /)
  })
})

describe('the built `edgent` command', () => {
  it('--version names the console, Node and onnxruntime-node', async () => {
    const r = await run('--version')
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/^edgent \d+\.\d+\.\d+ \(Node v\d+\.\d+\.\d+, onnxruntime-node \d+\.\d+\.\d+\)/)
  })

  it('runs as the package bin (after npm run build)', async () => {
    expect(existsSync(join(root, 'out/main/cli.js')), 'out/main/cli.js is missing: npm test builds it first (npm run build)').toBe(true)
    const { stdout } = await promisify(execFile)(process.execPath, [
      join(root, 'bin/edgent.js'),
      'plan',
      '--model',
      model,
      '--profile',
      profile,
      '--bandwidth-kbps',
      '64',
      '--latency-ms',
      '3',
      '--json'
    ])
    expect(JSON.parse(stdout)).toMatchObject({ exit: 2, deviceLayers: 8 })
    const failed = await promisify(execFile)(process.execPath, [
      join(root, 'bin/edgent.js'),
      'plan',
      '--profile',
      profile,
      '--bandwidth-kbps',
      'x',
      '--latency-ms',
      '3'
    ]).catch((e) => e)
    expect(failed.code).toBe(2)
    expect(failed.stderr).toMatch(/^edgent: option '--bandwidth-kbps <kbps>' argument 'x' is invalid/)
  })
})

describe('edgent infer --plan', () => {
  it('refuses a pinned plan it cannot read, naming the codecs', async () => {
    expect(await run('infer', '--agent', 'x', '--latency-ms', '10', '--plan', '5/8/int4')).toMatchObject({
      code: 2,
      err: expect.stringContaining('unknown codec "int4" (known: f32, f16, int8, int8c, u8)')
    })
    expect(await run('infer', '--agent', 'x', '--latency-ms', '10', '--plan', 'five')).toMatchObject({
      code: 2,
      err: expect.stringContaining('expected exit/deviceLayers[/codec], e.g. 5/8 or 5/8/int8')
    })
  })
})

describe('edgent worker', () => {
  it('refuses to start without a token, with a bad id, or on a folder without models — naming what was wrong', async () => {
    const saved = process.env['EDGENT_WORKER_TOKEN']
    delete process.env['EDGENT_WORKER_TOKEN']
    try {
      const noToken = await run('worker', '--broker', 'mqtt://127.0.0.1:1', '--id', 'w1')
      expect(noToken).toMatchObject({ code: 2 })
      expect(noToken.err).toContain('--token (or $EDGENT_WORKER_TOKEN) is required')
      const badId = await run('worker', '--broker', 'mqtt://127.0.0.1:1', '--id', 'W_1', '--token', 't')
      expect(badId).toMatchObject({ code: 2 })
      expect(badId.err).toContain('agent id "W_1" is not valid')
      const empty = mkdtempSync(join(tmpdir(), 'edgent-worker-models-'))
      const noModels = await run('worker', '--broker', 'mqtt://127.0.0.1:1', '--id', 'w1', '--token', 't', '--models', empty)
      expect(noModels).toMatchObject({ code: 2 })
      expect(noModels.err).toContain(`--models: ${empty} holds no model folder`)
      const badThreads = await run('worker', '--broker', 'mqtt://127.0.0.1:1', '--id', 'w1', '--threads', '0')
      expect(badThreads.code).toBe(2)
      expect(badThreads.err).toMatch(/--threads/)
    } finally {
      if (saved !== undefined) process.env['EDGENT_WORKER_TOKEN'] = saved
    }
  })
})
