/**
 * The command lines the console prints for a user to paste (the pairing command, the serve banner).
 * `npx --no -- <bin> <args>`: npm 11 reads every `--flag` before the `--` as its own configuration
 * (`npx --no edgent-agent --credentials f` gives npm `--credentials` and the agent only `f`), so the
 * separator is what hands the flags to the command; `--no` refuses to download a package of that
 * name from the registry when the command is not installed.
 */

/** One POSIX shell word: as is when it needs no quoting (or is a `<placeholder>` to fill in), else single-quoted. */
export function shellWord(s: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) || /^<[a-z-]+>$/.test(s)) return s
  return `'${s.replace(/'/g, `'\\''`)}'`
}

/** `npx --no -- <bin> <args…>`, each argument a shell word (a `<placeholder>` is kept as written). */
export function npxCommand(bin: string, ...args: string[]): string {
  return ['npx', '--no', '--', bin, ...args.map(shellWord)].join(' ')
}
