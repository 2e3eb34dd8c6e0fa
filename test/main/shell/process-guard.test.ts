/** The process guard keeps a shell running past an uncaught error; the log limiter writes one line per burst. */
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { promisify } from 'node:util'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { LogLimiter } from '../../../src/main/console/broker/log-limit.js'
import { root } from '../console/harness.js'

const run = promisify(execFile)

function capture(): { log: pino.Logger; lines: () => { msg: string; repeated?: number; agentId?: string }[] } {
  const out: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _e, cb) {
      out.push(...chunk.toString().split('\n').filter(Boolean))
      cb()
    }
  })
  return { log: pino({ level: 'info' }, sink), lines: () => out.map((l) => JSON.parse(l) as { msg: string; repeated?: number }) }
}

describe('process guard and burst logging', () => {
  it('logs an uncaught exception and an unhandled rejection, once per burst, and the process keeps running', async () => {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', join(root, 'test', 'fixtures', 'guarded.ts')], { cwd: root, timeout: 30_000 })
    expect(stdout).toBe('still running\n')
    const lines = stderr.split('\n').filter(Boolean)
    expect(lines.filter((l) => l.includes('uncaught exception (the console keeps running)'))).toHaveLength(1) // 50 throws, one line
    expect(lines.filter((l) => l.includes('unhandled promise rejection'))).toHaveLength(1)
    expect(stderr).toContain('boom from a timer')
  }, 40_000)

  it('writes the first line of a key at once, counts repeats within the window and summarises them after it', async () => {
    const { log, lines } = capture()
    const limiter = new LogLimiter(log, 200)
    for (let i = 0; i < 1000; i++) limiter.warn('refused:rogue', { agentId: 'rogue' }, 'refused publish')
    limiter.warn('refused:other', { agentId: 'other' }, 'refused publish')
    expect(lines()).toHaveLength(2)
    expect(limiter.suppressed('refused:rogue')).toBe(999)
    await new Promise((r) => setTimeout(r, 250))
    limiter.warn('refused:rogue', { agentId: 'rogue' }, 'refused publish')
    const after = lines()
    expect(after).toHaveLength(4)
    expect(after[2]).toMatchObject({ msg: 'refused publish (repeated 999 more times)', repeated: 999, agentId: 'rogue' })
    expect(after[3]).toMatchObject({ msg: 'refused publish' })
    limiter.close()
  })

  it('keeps a bounded number of keys', () => {
    const { log, lines } = capture()
    const limiter = new LogLimiter(log, 60_000)
    for (let i = 0; i < 5000; i++) {
      limiter.warn(`k${i}`, {}, 'line')
      limiter.warn(`k${i}`, {}, 'line')
    }
    // every key's first line, plus a summary for each key pushed out of the table
    expect(lines().filter((l) => l.msg === 'line')).toHaveLength(5000)
    expect(lines().filter((l) => l.repeated === 1).length).toBe(5000 - 1024)
    limiter.close()
  })
})
