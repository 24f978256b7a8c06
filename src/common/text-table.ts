/**
 * Rows as text columns for a terminal (the demo's summaries, `sidecarless query`): a header line, then one line per
 * row, each column as wide as its widest cell, two spaces apart.
 */

/** The lines of the table; a column whose `rightAligned` entry is true is padded on the left (numbers). */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[], rightAligned: readonly boolean[]): string[] {
  const widths = header.map((name, i) => rows.reduce((widest, row) => Math.max(widest, row[i]!.length), name.length));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (rightAligned[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}
