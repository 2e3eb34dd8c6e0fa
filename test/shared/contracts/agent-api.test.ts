/**
 * The console ↔ agent command contract (src/shared/contracts/agent-api.ts): every command's arguments and
 * replies round-trip through their schemas (as JSON, the way they travel), defaults are filled in,
 * and a malformed argument or reply is refused with a message naming the command and the field.
 */
import { describe, expect, it } from 'vitest'
import {
  AGENT_COMMANDS,
  AGENT_COMMAND_NAMES,
  dispatchCommand,
  parseCommandArgs,
  parseCommandReply,
  type AgentCommand,
  type AgentHandlers,
  type CommandArgsIn,
  type CommandReply
} from '../../../src/shared/contracts/agent-api.js'
import { UserError } from '../../../src/shared/errors.js'

/** One valid example of every command's arguments and reply. */
const EXAMPLES: { [C in AgentCommand]: { args: CommandArgsIn<C>; reply: CommandReply<C> } } = {
  'run-batch': {
    args: { runId: 'run-1', count: 3, offset: 7 },
    reply: {
      runId: 'run-1',
      planId: 'plan-1',
      rows: [
        { requestId: 'pi-a-1', sample: 7, label: 3, deviceMs: 1.5, ackMs: 0.4, e2eMs: 4.25, predictedLabel: 3, uploadBytes: 3200 },
        { requestId: 'pi-a-2', sample: null, label: null, deviceMs: 0, ackMs: 0, e2eMs: 30_000, predictedLabel: -1, uploadBytes: 3200, lost: true }
      ]
    }
  },
  probe: { args: { bytes: 4096 }, reply: { bytes: 4096, ackMs: 12.5, rttMs: 0.8, uplinkSampleKbps: 2790.2 } },
  'stop-batch': { args: { runId: 'run-1' }, reply: { runId: 'run-1', stopped: true } },
  'profile-layers': {
    args: { reps: 4 },
    reply: { model: 'branchy-alexnet', layerMs: { conv1: 0.31, relu1: 0.02 }, exitFusedMs: { '1': 0.25, '5': 1.9 }, reps: 4 }
  },
  'time-layers': {
    args: { specs: [{ type: 'fc', inputs: 128, outputs: 10 }], reps: 2, regime: 'cold' },
    reply: [
      {
        key: 'fc:128:10',
        spec: { type: 'fc', inputs: 128, outputs: 10 },
        regressionKey: 'fc',
        features: [128, 10, 1280],
        runMs: 0.011,
        loadMs: 0.9,
        modelBytes: 5300,
        reps: 2
      }
    ]
  },
  'load-model': {
    args: { model: 'resnet-tiny', sha256: 'ab'.repeat(32) },
    reply: { model: 'resnet-tiny', sha256: 'ab'.repeat(32), source: 'fetched', fetchedBytes: 40_000, resumedBytes: 8192, refusedChunks: 1, ms: 250 }
  },
  'set-uplink': { args: { kbps: 500 }, reply: { previousKbps: 1000, kbps: 500 } }
}

const wire = (v: unknown): unknown => JSON.parse(JSON.stringify(v))

describe('the agent command contract', () => {
  it('covers every command the console sends', () => {
    expect([...AGENT_COMMAND_NAMES].sort()).toEqual(['load-model', 'probe', 'profile-layers', 'run-batch', 'set-uplink', 'stop-batch', 'time-layers'])
    expect(Object.keys(EXAMPLES).sort()).toEqual([...AGENT_COMMAND_NAMES].sort())
  })

  for (const command of Object.keys(AGENT_COMMANDS) as AgentCommand[]) {
    it(`${command}: arguments and reply round-trip as JSON`, () => {
      const ex = EXAMPLES[command]
      expect(parseCommandArgs(command, wire({ transaction: 'tx-1', ...ex.args }))).toEqual(ex.args)
      expect(parseCommandReply(command, wire(ex.reply), 'pi-a')).toEqual(ex.reply)
    })
  }

  it('fills in the defaults an older console leaves out, and ignores unknown fields', () => {
    expect(parseCommandArgs('probe', { transaction: 't' })).toEqual({ bytes: 16384 })
    expect(parseCommandArgs('profile-layers', {})).toEqual({ reps: 10 })
    expect(parseCommandArgs('run-batch', { runId: 'r', count: 2, future: true })).toEqual({ runId: 'r', count: 2, offset: 0 })
    // An older console's time-layers (no regime) times warm, as it always did.
    expect(parseCommandArgs('time-layers', { specs: [{ type: 'fc', inputs: 8, outputs: 2 }] })).toEqual({
      specs: [{ type: 'fc', inputs: 8, outputs: 2 }],
      reps: 5,
      regime: 'warm'
    })
  })

  it('refuses malformed arguments, naming the command and the field', () => {
    const bad = (command: AgentCommand, args: unknown) => () => parseCommandArgs(command, args)
    expect(bad('run-batch', { runId: 'r', count: '3' })).toThrow(/^"run-batch" arguments: count: /)
    expect(bad('run-batch', { runId: 'r', count: 0 })).toThrow(/^"run-batch" arguments: count: /)
    expect(bad('probe', { bytes: 1e9 })).toThrow(/^"probe" arguments: bytes: /)
    expect(bad('time-layers', { specs: [{ type: 'conv' }] })).toThrow(/^"time-layers" arguments: specs\[0\]/)
    expect(bad('time-layers', { specs: [{ type: 'fc', inputs: 8, outputs: 2 }], regime: 'tepid' })).toThrow(/^"time-layers" arguments: regime: /)
    expect(bad('set-uplink', { kbps: Number.POSITIVE_INFINITY })).toThrow(/^"set-uplink" arguments: kbps: /)
    expect(bad('set-uplink', {})).toThrow(UserError)
  })

  it('refuses a malformed reply, naming the agent, the command and the field', () => {
    const bad = (command: AgentCommand, reply: unknown) => () => parseCommandReply(command, reply, 'pi-a')
    expect(bad('probe', { bytes: 4096, ackMs: 1, rttMs: 1, kbps: 100 })).toThrow(/^agent pi-a: malformed reply to "probe": uplinkSampleKbps: /)
    expect(bad('set-uplink', { previousKbps: 'fast', kbps: 500 })).toThrow(/^agent pi-a: malformed reply to "set-uplink": previousKbps: /)
    expect(bad('profile-layers', { model: 'm', layerMs: { conv1: -1 }, exitFusedMs: {}, reps: 1 })).toThrow(
      /malformed reply to "profile-layers": layerMs\.conv1: /
    )
    expect(bad('profile-layers', { model: 'm', layerMs: {}, exitFusedMs: {}, piecesMs: { '5/0-4': Number.NaN }, reps: 1 })).toThrow(
      /malformed reply to "profile-layers": piecesMs\.5\/0-4: /
    )
    const rows = wire(EXAMPLES['run-batch'].reply) as { rows: Record<string, unknown>[] }
    rows.rows[1]!['e2eMs'] = null
    expect(bad('run-batch', rows)).toThrow(/malformed reply to "run-batch": rows\[1\]\.e2eMs: /)
    expect(bad('time-layers', null)).toThrow(/malformed reply to "time-layers"/)
  })

  it('dispatches through a handler table with validated arguments, and refuses unknown commands', async () => {
    const seen: unknown[] = []
    const handlers: AgentHandlers = {
      'run-batch': (a) => (seen.push(a), EXAMPLES['run-batch'].reply),
      probe: (a) => (seen.push(a), EXAMPLES.probe.reply),
      'profile-layers': (a) => (seen.push(a), EXAMPLES['profile-layers'].reply),
      'load-model': (a) => (seen.push(a), EXAMPLES['load-model'].reply),
      'time-layers': async (a) => (seen.push(a), EXAMPLES['time-layers'].reply),
      'set-uplink': (a) => (seen.push(a), EXAMPLES['set-uplink'].reply),
      'stop-batch': (a) => (seen.push(a), EXAMPLES['stop-batch'].reply)
    }
    expect(await dispatchCommand(handlers, 'set-uplink', { transaction: 't', kbps: 500 })).toEqual({ previousKbps: 1000, kbps: 500 })
    expect(await dispatchCommand(handlers, 'probe', { transaction: 't' })).toEqual(EXAMPLES.probe.reply)
    expect(seen).toEqual([{ kbps: 500 }, { bytes: 16384 }])
    await expect(dispatchCommand(handlers, 'reboot', {})).rejects.toThrow(
      'unknown command "reboot" (commands: run-batch, probe, profile-layers, load-model, time-layers, set-uplink, stop-batch)'
    )
    await expect(dispatchCommand(handlers, '__proto__', {})).rejects.toThrow(/unknown command/)
    await expect(dispatchCommand(handlers, 'run-batch', { count: 1 })).rejects.toThrow(/^"run-batch" arguments: runId: /)
    expect(seen).toHaveLength(2) // refused requests reach no handler
  })
})
