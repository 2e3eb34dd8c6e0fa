/** Messages from devices are bounded in depth before anything reads them. */
import { describe, expect, it } from 'vitest'
import { HelloSchema, MAX_JSON_DEPTH, jsonDepth, parsePayload } from '../../../src/shared/contracts/messages.js'

const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`

describe('JSON depth', () => {
  it('counts nesting without recursion, skipping brackets inside strings', () => {
    expect(jsonDepth('{}')).toBe(1)
    expect(jsonDepth('{"a":[1,{"b":[]}]}')).toBe(4)
    expect(jsonDepth('{"s":"[[[[\\"[[[["}')).toBe(1)
    expect(jsonDepth(deep(200_000))).toBe(200_000) // no stack to overflow
  })

  it('refuses a payload nested past the bound, naming the topic, before it is parsed', () => {
    const hello = { agentId: 'pi-1', arch: 'arm64', platform: 'linux', cpus: 4, memoryBytes: 1, versions: {}, models: [] }
    expect(parsePayload(HelloSchema, JSON.stringify({ ...hello, emulation: { a: JSON.parse(deep(MAX_JSON_DEPTH - 2)) } }), 't')).toMatchObject({
      agentId: 'pi-1'
    })
    const text = `{"agentId":"pi-1","arch":"arm64","platform":"linux","cpus":4,"memoryBytes":1,"versions":{},"models":[],"emulation":{"a":${deep(20_000)}}}`
    expect(() => parsePayload(HelloSchema, text, 'edgent/v1/agents/pi-1/hello')).toThrow(
      `edgent/v1/agents/pi-1/hello: nested 20002 levels deep, more than the ${MAX_JSON_DEPTH} a message may have`
    )
  })
})
