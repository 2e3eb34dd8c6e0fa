import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { exitPath, getExit, inputBytes, parseManifest, resultBytes, uploadBytes } from '../../../src/shared/contracts/manifest.js'

const raw = (): any => JSON.parse(readFileSync(new URL('../../fixtures/tiny/manifest.json', import.meta.url), 'utf8'))

describe('manifest schema', () => {
  it('accepts the hand-sized model and resolves exit paths', () => {
    const m = parseManifest(raw(), 'tiny/manifest.json')
    expect(m.exits.map((e) => e.exit)).toEqual([1, 2])
    expect(exitPath(m, 1).map((l) => l.id)).toEqual(['conv1', 'relu1', 'pool1', 'b1_fc', 'b1_softmax'])
    expect(inputBytes(m)).toBe(64)
    expect(uploadBytes(m, 2, 0)).toBe(64)
    expect(uploadBytes(m, 2, 3)).toBe(32)
    expect(uploadBytes(m, 2, 8)).toBe(0)
    expect(resultBytes(m, 2)).toBe(12)
    expect(() => uploadBytes(m, 2, 9)).toThrow('deviceLayers 9 is out of range 0..8 for exit 2')
    expect(() => getExit(m, 7)).toThrow('model tiny has no exit 7 (exits: 1, 2)')
  })

  const cases: [string, (m: any) => void, string][] = [
    ['a missing field', (m) => delete m.input, 'tiny/manifest.json: input: '],
    ['an unknown layer type', (m) => (m.layers[1].type = 'gelu'), 'tiny/manifest.json: layers[1].type: '],
    ['an unknown layer id in an exit', (m) => (m.exits[1].layers[3] = 'flat'), 'tiny/manifest.json: exits[1].layers[3]: unknown layer id "flat"'],
    [
      'a broken chain of tensors',
      (m) => (m.layers[6].input = 'pool1'),
      'tiny/manifest.json: exits[1].layers[4]: layer "fc1" reads tensor "pool1" but the previous layer of exit 2 writes "flatten1"'
    ],
    [
      'a shape that does not follow',
      (m) => (m.layers[6].inputShape = [1, 9]),
      'tiny/manifest.json: exits[1].layers[4]: layer "fc1" expects input shape [1, 9] but receives [1, 8]'
    ],
    [
      'outputBytes that disagree with the shape',
      (m) => (m.layers[2].outputBytes = 33),
      'tiny/manifest.json: layers[2].outputBytes: layer "pool1": outputBytes 33 does not match outputShape [1, 2, 2, 2] (expected 32 for float32)'
    ],
    [
      'a wrong exit output name',
      (m) => (m.exits[0].output = 'exit9'),
      'tiny/manifest.json: exits[0].output: exit 1 names output "exit9" but its last layer writes "exit1"'
    ],
    ['exits not numbered from 1', (m) => (m.exits[0].exit = 3), 'tiny/manifest.json: exits: exit numbers must be 1..2 (1 = earliest), got 2, 3'],
    ['an accuracy above 1', (m) => (m.exits[0].accuracy = 80), 'tiny/manifest.json: exits[0].accuracy: '],
    ['a duplicate layer id', (m) => (m.layers[9].id = 'fc2'), 'duplicate layer id "fc2"'],
    ['a conv layer without filters', (m) => delete m.layers[0].filters, 'tiny/manifest.json: layers[0].filters: ']
  ]
  for (const [what, mutate, message] of cases) {
    it(`rejects ${what} with one line naming it`, () => {
      const m = raw()
      mutate(m)
      let error: Error | undefined
      try {
        parseManifest(m, 'tiny/manifest.json')
      } catch (e) {
        error = e as Error
      }
      expect(error?.name).toBe('UserError')
      expect(error!.message).toContain(message)
      expect(error!.message).not.toContain('\n')
    })
  }
})
