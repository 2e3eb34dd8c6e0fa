/** Plain-text tables for the terminal. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], alignRight: readonly boolean[] = []): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (alignRight[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

export function ms(v: number): string {
  return v >= 100 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3)
}

export function pct(fraction: number): string {
  return `${(fraction * 100).toFixed(2)} %`
}

export function kbps(v: number): string {
  return Number.isInteger(v) ? String(v) : v >= 100 ? v.toFixed(1) : v.toPrecision(4)
}

/** A note in a table cell: its first line, at most `max` characters. */
export function noteCell(note: string, max = 40): string {
  return note.split('\n')[0]!.slice(0, max)
}
