import { existsSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { runCli } from '../cli-run.js'
import { defaultModelDir } from '../../../src/main/runtime/paths.js'
import { formatLoadReport, runLoadTest } from '../../../src/main/testbed/load.js'
import { agentEntry } from '../console/harness.js'

const run = runCli

describe('load test: 20 agent processes at once against one console', () => {
  it('loses, duplicates and mismatches no result, with the embedded broker and with mosquitto', async () => {
    expect(existsSync(agentEntry)).toBe(true)
    const lines: string[] = []
    const r = await runLoadTest({
      agents: 20,
      brokers: ['embedded', 'mosquitto'],
      count: 15,
      latencyMs: 10,
      uplinkKbps: 100_000,
      cpuQuota: 0.25,
      compareRounds: 0,
      modelDir: defaultModelDir(),
      mosquitto: '/usr/sbin/mosquitto',
      log: pino({ level: 'silent' }),
      progress: (l) => lines.push(l)
    })
    expect(r.phases.map((p) => [p.broker, p.planning, p.agents, p.inferences])).toEqual([
      ['embedded', 'load-aware', 20, 300],
      ['mosquitto', 'load-aware', 20, 300]
    ])
    for (const p of r.phases) {
      expect({ lost: p.lost, duplicated: p.duplicated, mismatched: p.mismatched }).toEqual({ lost: 0, duplicated: 0, mismatched: 0 })
      expect(p.devices).toHaveLength(20)
      for (const d of p.devices) {
        expect(d.completed).toBe(15)
        expect(d.p95Ms).toBeGreaterThanOrEqual(d.p50Ms)
        expect(Object.values(d.plans).reduce((a, b) => a + b, 0)).toBe(15)
      }
      // the edge was shared: its pool measured runs from many devices at once
      expect(p.edge.workers).toBeGreaterThanOrEqual(1)
      expect(p.edge.devices.length).toBeGreaterThan(1)
    }
    expect(r.clean).toBe(true)
    expect(r.comparison).toBeNull()
    const text = formatLoadReport(r)
    expect(text).toContain('0 lost, 0 duplicated, 0 mismatched')
    expect(text).toMatch(/mosquitto +load-aware round 1: 300 inferences/)
    expect(lines.some((l) => l.startsWith('mosquitto: 20 agents online and profiled'))).toBe(true)
  }, 240_000)

  it('compares load-blind and load-aware planning side by side and writes the report as JSON', async () => {
    const json = join(mkdtempSync(join(tmpdir(), 'edgent-load-json-')), 'load.json')
    const r = await run('load-test', '--agents', '3', '--broker', 'embedded', '--count', '10', '--compare', '1', '--json', json)
    expect(r.code, r.err).toBe(0)
    expect(r.out).toMatch(/embedded +load-blind round 1: 30 inferences/)
    expect(r.out).toMatch(/embedded +load-aware round 1: 30 inferences/)
    expect(r.out).toMatch(/Requirement met \(embedded broker, pooled over the rounds\): load-blind [\d.]+ %, load-aware [\d.]+ %/)
    const rep = JSON.parse(readFileSync(json, 'utf8'))
    expect(rep.phases.map((p: { planning: string }) => p.planning)).toEqual(['load-blind', 'load-aware'])
    expect(rep.comparison.loadBlindMetShare).toBeGreaterThanOrEqual(0)
    expect(rep.clean).toBe(true)
  }, 120_000)

  it('refuses wrong flags by name', async () => {
    expect(await run('load-test', '--broker', 'rabbit')).toMatchObject({ code: 2, err: expect.stringContaining('--broker takes embedded, mosquitto or both') })
    expect(await run('load-test', '--agents', '0')).toMatchObject({ code: 2, err: expect.stringContaining('expected a positive integer') })
    expect(await run('load-test', '--agents', '65', '--broker', 'embedded')).toMatchObject({ code: 2, err: expect.stringContaining('--agents must be 1..64') })
    expect(await run('load-test', '--cpu-quota', '2')).toMatchObject({ code: 2, err: expect.stringContaining('--cpu-quota is a share of one CPU') })
  })
})
