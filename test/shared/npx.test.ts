import { describe, expect, it } from 'vitest'
import { npxCommand, shellWord } from '../../src/shared/npx.js'

describe('the command lines the console prints', () => {
  it('hand every flag to the command through `--` (npm 11 takes flags before it as its own)', () => {
    expect(npxCommand('edgent-agent', '--credentials', 'pi-1.credentials.json')).toBe('npx --no -- edgent-agent --credentials pi-1.credentials.json')
    expect(npxCommand('edgent', 'pair', '<id>', '--data-dir', '/home/a b/data')).toBe("npx --no -- edgent pair <id> --data-dir '/home/a b/data'")
  })
  it('quote what the shell would split or expand, and keep placeholders as written', () => {
    expect(shellWord('/var/lib/edgent-console')).toBe('/var/lib/edgent-console')
    expect(shellWord('<id>')).toBe('<id>')
    expect(shellWord("it's $HOME")).toBe(`'it'\\''s $HOME'`)
    expect(shellWord('a<b')).toBe("'a<b'")
  })
})
