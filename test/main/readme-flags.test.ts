/**
 * The README and the command lines agree: every `--flag` in a README command (`npx edgent …`,
 * `npm run testbed -- …`, `npx edgent-agent …`) is one the command's own --help lists.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { main } from '../../src/main/cli/index.js'
import { agentEntry, root } from './console/harness.js'

/** The shell commands of a markdown file's code blocks, continuation lines joined. */
function commands(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8')
  const out: string[] = []
  for (const block of text.matchAll(/```(?:sh|bash)?\n([\s\S]*?)```/g)) {
    const joined = block[1]!.replace(/\\\n\s*/g, ' ')
    for (const line of joined.split('\n')) out.push(line.replace(/#.*$/, '').trim())
  }
  return out.filter(Boolean)
}

async function edgentHelp(words: string[]): Promise<string> {
  let out = ''
  await main([...words, '--help'], { out: (t) => (out += t), err: (t) => (out += t) })
  return out
}

const flagsOf = (line: string): string[] => [...line.matchAll(/(?:^|[\s[|])(--[a-z][a-z0-9-]*)/g)].map((m) => m[1]!)

describe('README command lines', () => {
  it('use only flags that `edgent <command> --help` lists', async () => {
    const lines = [...commands('README.md'), ...commands('pi-agent/README.md')]
      .map((l) => /(?:npx (?:--no (?:-- )?)?edgent|npm run testbed --)\s+(.*)$/.exec(l))
      .filter((m): m is RegExpExecArray => !!m && !m[0].includes('edgent-agent'))
    expect(lines.length).toBeGreaterThan(8)
    const problems: string[] = []
    for (const m of lines) {
      const isTestbed = m[0].startsWith('npm run testbed')
      const tokens = m[1]!.split(/\s+/)
      // the command words: leading tokens that are not flags, placeholders or paths
      const words = isTestbed ? ['testbed'] : []
      if (!isTestbed)
        for (const t of tokens)
          if (/^[a-z][a-z|-]*$/.test(t) && words.length < 3) words.push(t)
          else break
      const variants = words.length === 2 && words[1]!.includes('|') ? words[1]!.split('|').map((w) => [words[0]!, w]) : [words.map((w) => w.split('|')[0]!)]
      for (const v of variants) {
        const help = await edgentHelp(v)
        for (const f of flagsOf(m[1]!)) if (!help.includes(f)) problems.push(`"${m[0]}": edgent ${v.join(' ')} has no ${f}`)
      }
    }
    expect(problems).toEqual([])
  })

  it('use only flags that `edgent-agent --help` lists', () => {
    const help = spawnSync(process.execPath, [agentEntry, '--help'], { encoding: 'utf8' }).stdout
    // the command itself, not a path such as /opt/edgent-agent
    const lines = [...commands('README.md'), ...commands('pi-agent/README.md')].flatMap((l) => /(?:^|\s)edgent-agent(\s+--.*)$/.exec(l)?.[1] ?? [])
    expect(lines.length).toBeGreaterThan(0)
    const problems = lines.flatMap((l) =>
      flagsOf(l)
        .filter((f) => !help.includes(f))
        .map((f) => `"edgent-agent${l}": edgent-agent has no ${f}`)
    )
    expect(problems).toEqual([])
  })

  it("stay in a user's document of at most 300 lines (the research log is docs/lab-notebook.md)", () => {
    expect(readFileSync(join(root, 'README.md'), 'utf8').trimEnd().split('\n').length).toBeLessThanOrEqual(300)
  })
})
