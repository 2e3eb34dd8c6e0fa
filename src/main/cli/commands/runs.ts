/** `edgent runs [compare]`, `edgent annotate`: runs listed and compared, tags and notes set. */
import { type Command, Option } from 'commander'
import { UserError } from '../../../shared/errors.js'
import { annotateCommand, runsCompare, runsList } from '../runs.js'
import { type Io, dataDirOption, positiveInt } from '../args.js'

/** `--tag` given again adds one (commander's repeatable option). */
export const collectTags = (value: string, previous: string[] = []): string[] => [...previous, value]

export const tagOption = (what: string): Option =>
  new Option('--tag <tag>', `tag the ${what} (again for more: --tag wifi --tag fan-off)`).argParser(collectTags)
export const noteOption = (what: string): Option => new Option('--note <text>', `a note stored with the ${what}`)

export function registerRuns(program: Command, io: Io): void {
  const runs = program
    .command('runs')
    .description('co-inference runs, newest first: model, requirement, p50, met share, tags and note')
    .option('--agent <id>', 'one device')
    .option('--tag <tag>', 'only runs with this tag')
    .option('--all', "campaigns' runs too (default: your own)")
    .option('--limit <n>', 'at most this many', positiveInt, 50)
    .addOption(dataDirOption())
    .option('--json', 'machine-readable output')
    .action(async (o: { agent?: string; tag?: string; all?: boolean; limit: number; dataDir: string; json?: boolean }) => io.out(await runsList(o)))
  // `runs compare A B --data-dir X`: the options are the parent's (commander gives them to `runs`, which declares them).
  runs
    .command('compare <a> <b>')
    .description(
      'two runs side by side: every measure, the latency quantiles, and the p50/p95 difference against the runs’ own noise (takes --data-dir and --json)'
    )
    .action(async (a: string, b: string) => {
      const o = runs.opts<{ dataDir: string; json?: boolean }>()
      io.out(await runsCompare({ dataDir: o.dataDir, ...(o.json ? { json: true } : {}), a, b }))
    })
  program
    .command('annotate <target> <id>')
    .description('set the tags and/or note of a run or a campaign (target: run or campaign); each is replaced whole')
    .addOption(tagOption('run or campaign'))
    .option('--no-tags', 'remove every tag')
    .addOption(noteOption('run or campaign'))
    .addOption(dataDirOption())
    .action(async (target: string, id: string, o: { tag?: string[]; tags?: boolean; note?: string; dataDir: string }) => {
      if (target !== 'run' && target !== 'campaign') throw new UserError(`annotate: the target is run or campaign, got "${target}"`)
      const tags = o.tags === false ? [] : o.tag
      if (tags === undefined && o.note === undefined) throw new UserError('annotate: give --tag, --no-tags or --note')
      io.out(await annotateCommand({ dataDir: o.dataDir, target, id, ...(tags ? { tags } : {}), ...(o.note !== undefined ? { note: o.note } : {}) }))
    })
}
