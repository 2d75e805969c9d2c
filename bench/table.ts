import type { BenchRecord } from './record.js';

const fmt = (v: unknown): string => {
  if (typeof v === 'number')
    return Number.isInteger(v) ? String(v) : v >= 100 ? v.toFixed(1) : v.toPrecision(3);
  if (v === null || v === undefined) return '-';
  return String(v);
};

/** A plain-text table per suite, columns from the records' own fields. */
export function formatTable(records: readonly BenchRecord[]): string {
  const suites = [...new Set(records.map((r) => r.suite))];
  const out: string[] = [];
  for (const suite of suites) {
    const rows = records.filter((r) => r.suite === suite);
    const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter(
      (c) => c !== 'suite' && c !== 'adapter',
    );
    const cells = [columns, ...rows.map((r) => columns.map((c) => fmt(r[c])))];
    const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
    out.push(`## ${suite}`);
    for (const row of cells) out.push(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  '));
    out.push('');
  }
  return out.join('\n');
}
