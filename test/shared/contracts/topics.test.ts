import { describe, expect, it } from 'vitest'
import { agentMayPublish, agentMaySubscribe, checkAgentId, parseTopic, topics } from '../../../src/shared/contracts/topics.js'

describe('topic builders', () => {
  it('builds the documented topics', () => {
    expect(topics.state('pi-1')).toBe('edgent/v1/agents/pi-1/state')
    expect(topics.hello('pi-1')).toBe('edgent/v1/agents/pi-1/hello')
    expect(topics.plan('pi-1')).toBe('edgent/v1/agents/pi-1/plan')
    expect(topics.request('pi-1', 'run-batch')).toBe('edgent/v1/agents/pi-1/request/run-batch')
    expect(topics.response('pi-1', 'probe')).toBe('edgent/v1/agents/pi-1/response/probe')
    expect(topics.activation('pi-1')).toBe('edgent/v1/agents/pi-1/activation')
    expect(topics.result('pi-1')).toBe('edgent/v1/agents/pi-1/result')
    expect(topics.fetch('pi-1')).toBe('edgent/v1/agents/pi-1/fetch')
    expect(topics.chunk('pi-1')).toBe('edgent/v1/agents/pi-1/chunk')
  })

  it('refuses ids that are not one lowercase level', () => {
    for (const bad of ['Pi', 'a/b', '+', '#', '__proto__', '', '-x', 'x'.repeat(65), 'constructor ', 'é']) {
      expect(() => checkAgentId(bad), bad).toThrow(/is not valid/)
    }
    expect(checkAgentId('pi-4b-kitchen')).toBe('pi-4b-kitchen')
  })

  it('parses only topics of the tree', () => {
    expect(parseTopic('edgent/v1/agents/pi-1/response/run-batch')).toEqual({ agentId: 'pi-1', kind: 'response', verb: 'run-batch' })
    expect(parseTopic('edgent/v1/agents/pi-1/activation')).toEqual({ agentId: 'pi-1', kind: 'activation' })
    for (const t of [
      '$SYS/broker/clients',
      'edgent/v2/agents/pi-1/state',
      'edgent/v1/agents/pi-1/state/extra',
      'edgent/v1/agents/__proto__/state',
      'edgent/v1/agents/pi-1/secrets',
      'edgent/v1/agents/pi-1/request/a/b'
    ]) {
      expect(parseTopic(t), t).toBeUndefined()
    }
  })

  it('lets an agent publish and subscribe only under its own prefix', () => {
    expect(agentMayPublish('pi-1', 'edgent/v1/agents/pi-1/activation')).toBe(true)
    expect(agentMayPublish('pi-1', 'edgent/v1/agents/pi-1/state')).toBe(true)
    expect(agentMayPublish('pi-1', 'edgent/v1/agents/pi-2/activation')).toBe(false)
    expect(agentMayPublish('pi-1', 'edgent/v1/agents/pi-1/plan')).toBe(false) // plans come from the console
    expect(agentMayPublish('pi-1', 'edgent/v1/agents/pi-1/result')).toBe(false)
    expect(agentMaySubscribe('pi-1', 'edgent/v1/agents/pi-1/plan')).toBe(true)
    expect(agentMaySubscribe('pi-1', 'edgent/v1/agents/pi-1/request/+')).toBe(true)
    expect(agentMaySubscribe('pi-1', 'edgent/v1/agents/pi-1/result')).toBe(true)
    // Model distribution: an agent asks for chunks of its own model and receives them on its own topic.
    expect(agentMayPublish('pi-1', 'edgent/v1/agents/pi-1/fetch')).toBe(true)
    expect(agentMayPublish('pi-1', 'edgent/v1/agents/pi-2/fetch')).toBe(false)
    expect(agentMayPublish('pi-1', 'edgent/v1/agents/pi-1/chunk')).toBe(false) // chunks come from the console
    expect(agentMaySubscribe('pi-1', 'edgent/v1/agents/pi-1/chunk')).toBe(true)
    expect(agentMaySubscribe('pi-1', 'edgent/v1/agents/pi-2/chunk')).toBe(false)
    expect(agentMaySubscribe('pi-1', 'edgent/v1/agents/pi-1/fetch')).toBe(false)
    for (const f of ['#', '$SYS/#', 'edgent/v1/agents/+/plan', 'edgent/v1/agents/pi-2/plan', 'edgent/v1/agents/pi-1/#', 'edgent/v1/agents/pi-1/activation']) {
      expect(agentMaySubscribe('pi-1', f), f).toBe(false)
    }
  })
})
