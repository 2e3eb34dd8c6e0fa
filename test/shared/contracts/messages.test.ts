/** Messages from devices are bounded in depth before anything reads them. */
import { describe, expect, it } from 'vitest'
import { HelloSchema, MAX_JSON_DEPTH, jsonDepth, parsePayload } from '../../../src/shared/contracts/messages.js'
import { safeText } from '../../../src/shared/text.js'

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

describe('text a page shows', () => {
  it('has NUL, other controls and bidirectional overrides replaced in a hello, visibly', () => {
    const hello = {
      agentId: 'pi-1',
      arch: 'arm\u000064',
      platform: 'linux',
      cpus: 4,
      memoryBytes: 1,
      versions: { node: '24\u202Egpj.exe' },
      models: [],
      machine: {
        cpuModel: 'Cortex\u001b[31m-A72\u2066',
        cores: 4,
        cpuMaxMHz: null,
        cpuCurMHz: null,
        os: 'Debian',
        arch: 'arm64',
        memoryBytes: 1,
        node: '24',
        onnxruntime: '1.27.0'
      }
    }
    const h = parsePayload(HelloSchema, JSON.stringify(hello), 't')
    expect(h.arch).toBe('arm\uFFFD64')
    expect(h.versions.node).toBe('24\uFFFDgpj.exe')
    expect(h.machine!.cpuModel).toBe('Cortex\uFFFD[31m-A72\uFFFD')
    expect(safeText('résumé 日本 ✓')).toBe('résumé 日本 ✓') // ordinary text is kept
    expect(() => parsePayload(HelloSchema, JSON.stringify({ ...hello, platform: 'x'.repeat(41) }), 't')).toThrow(/platform/)
  })
})
