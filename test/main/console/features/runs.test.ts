/**
 * Runs and campaigns carry their model, tags and a note, and two runs compare side by side (issue 35
 * item 10), through the console API with a real agent process: tags and notes validated and kept,
 * the Live page's batches joined into one run, runs listed by tag, and the comparison's rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EdgentConsole } from '../../../../src/main/console/console.js'
import { ConsoleService } from '../../../../src/main/console/api/service.js'
import { deviceState, spawnAgent, startConsole, stopAgent, waitFor, type AgentProc } from '../harness.js'

describe('tags, notes and comparisons of runs', () => {
  let core: EdgentConsole & { logPath: string }
  let api: ConsoleService
  let agent: AgentProc | null = null

  beforeAll(async () => {
    core = await startConsole()
    api = new ConsoleService(core, { shell: 'headless', brokerAddress: () => `127.0.0.1:${core.mqttPort}` })
    agent = spawnAgent(`mqtt://127.0.0.1:${core.mqttPort}`, 'pi-r', core.pair('pi-r').token)
    await waitFor('pi-r online', () => deviceState(core, 'pi-r') === 'online')
  })
  afterAll(async () => {
    await stopAgent(agent)
    await core?.stop()
  })

  it('keeps a run’s model, tags and note, joins continued batches into one run, lists by tag and compares', async () => {
    const infer = (o: Record<string, unknown>) => api.call('infer', { agent: 'pi-r', count: 10, latencyMs: 200, uplinkKbps: 100_000, ...o })
    // Refused whole, naming the field: a tag with a space, too many tags, a note too long.
    await expect(infer({ tags: ['two words'] })).rejects.toThrow(/infer: tags\[0\]: a tag is letters, digits/)
    await expect(infer({ tags: Array.from({ length: 17 }, (_, i) => `t${i}`) })).rejects.toThrow(/at most 16 tags/)
    await expect(infer({ note: 'x'.repeat(2001) })).rejects.toThrow(/a note has at most 2000 characters/)
    expect(await api.call('runs', { agent: 'pi-r' })).toEqual([]) // nothing was stored by a refusal

    const a1 = await infer({ tags: ['baseline', 'wifi', 'baseline'], note: 'fan on\nroom 21 \u202e°C' })
    const a2 = await infer({ continues: a1.summary.runId })
    expect(a2.summary.runId).toBe(a1.summary.runId)
    const b = await infer({ plan: { exit: 1, deviceLayers: 0 }, tags: ['edge-only'] })
    await expect(infer({ continues: 'no-such-run' })).rejects.toThrow('infer: no run "no-such-run" of pi-r to continue')

    const runs = await api.call('runs', { agent: 'pi-r' })
    expect(runs.map((r) => r.id)).toEqual([b.summary.runId, a1.summary.runId]) // newest first; the continued batch is no run of its own
    const a = runs[1]!
    expect(a).toMatchObject({ model: core.model.id, tags: ['baseline', 'wifi'], note: 'fan on\nroom 21 \uFFFD°C', status: 'done' })
    // The run's summary covers both batches: counts add up, quantiles over all 20 stored inferences.
    expect(a.summary).toMatchObject({ count: 20, completed: 20, batches: 2 })
    const stored = core.store.runs.e2eMs(a.id)
    expect(stored).toHaveLength(20)
    expect(a.summary!.p50Ms).toBeCloseTo((stored[9]! + stored[10]!) / 2, 6)

    expect((await api.call('runs', { agent: 'pi-r', tag: 'edge-only' })).map((r) => r.id)).toEqual([b.summary.runId])
    const edited = await api.call('annotate', { target: 'run', id: b.summary.runId, tags: ['edge-only', 'check'], note: 'exit 1 on the edge' })
    expect(edited).toEqual({ target: 'run', id: b.summary.runId, tags: ['edge-only', 'check'], note: 'exit 1 on the edge' })
    await expect(api.call('annotate', { target: 'run', id: 'nope', note: 'x' })).rejects.toThrow('unknown run "nope"')
    await expect(api.call('annotate', { target: 'run', id: b.summary.runId })).rejects.toThrow(/give tags, a note or both/)

    const c = await api.call('runCompare', { a: a.id, b: b.summary.runId })
    expect(c.runs.map((r) => r.id)).toEqual([a.id, b.summary.runId])
    expect(c.rows.find((r) => r.measure === 'inferences completed')).toMatchObject({ a: 20, b: 10, delta: -10 })
    expect(c.differs.some((d) => d.startsWith('first plan: exit '))).toBe(true)
    expect(c.differences).toHaveLength(2)
    for (const d of c.differences) expect(d.lowMs).toBeLessThanOrEqual(d.highMs)
    await expect(api.call('runCompare', { a: a.id, b: 'nope' })).rejects.toThrow('unknown run "nope" (edgent runs lists them)')

    // The runs export names each inference's run tags and note.
    const csv = core.store.runs.export('csv', 'pi-r').content.trim().split('\n')
    const head = csv[0]!.split(',')
    expect(head.slice(-2)).toEqual(['run_tags', 'run_note'])
    expect(csv.filter((l) => l.includes('baseline wifi'))).toHaveLength(20)
  }, 120_000)

  it('keeps a campaign’s model, tags and note, shown in its status and editable', async () => {
    const { id } = await api.call('campaignStart', { agent: 'pi-r', kind: 'plans', reps: 1, uplinkKbps: 100_000, tags: ['nightly'], note: 'after the fan fix' })
    await api.call('campaignCancel', { id })
    const s = await api.call('campaignStatus', { id })
    expect(s).toMatchObject({ model: core.model.id, tags: ['nightly'], note: 'after the fan fix' })
    await api.call('annotate', { target: 'campaign', id, note: 'cancelled on purpose' })
    expect(await api.call('campaignStatus', { id })).toMatchObject({ tags: ['nightly'], note: 'cancelled on purpose' })
    await expect(api.call('annotate', { target: 'campaign', id: 'nope', tags: [] })).rejects.toThrow('unknown campaign "nope"')
    await waitFor('the campaign ended', () => core.campaigns.status(id)?.status !== 'running', 60_000)
  }, 120_000)
})
