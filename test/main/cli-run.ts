/** The CLI run in this process, its output and errors captured (tests of `edgent` commands). */
import { main } from '../../src/main/cli/index.js'

export async function runCli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) })
  return { code, out, err }
}
