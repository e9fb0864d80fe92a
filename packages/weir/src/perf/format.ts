/** Plain-text and Markdown tables and number formats for perf reports on a terminal. */

/** Decimal megabyte, the unit of every MB/s figure. */
export const MB = 1_000_000;
export const KiB = 1024;
export const MiB = 1024 * 1024;

export type Align = 'left' | 'right';
export interface Column {
  title: string;
  align?: Align;
}

/** A plain-text table: columns padded to their widest cell. */
export function formatTable(columns: readonly Column[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = columns.map((column, index) => Math.max(column.title.length, ...rows.map((row) => (row[index] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, index) => (columns[index]?.align === 'right' ? cell.padStart(widths[index]!) : cell.padEnd(widths[index]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((column) => column.title)), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

/** The same table as formatTable, as Markdown (pipes in cells escaped). */
export function markdownTable(columns: readonly Column[], rows: ReadonlyArray<readonly string[]>): string {
  const cell = (text: string) => text.replaceAll('|', '\\|');
  const line = (cells: readonly string[]) => `| ${cells.map(cell).join(' | ')} |`;
  return [line(columns.map((column) => column.title)), `|${columns.map((column) => (column.align === 'right' ? ' ---: ' : ' --- ')).join('|')}|`, ...rows.map(line)].join('\n');
}

/** 1234567.8 → "1,234,568"; small values keep a couple of significant decimals. */
export function formatNumber(value: number, fractionDigits?: number): string {
  if (!Number.isFinite(value)) return String(value);
  const digits = fractionDigits ?? (Number.isInteger(value) || Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2);
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  if (bytes >= KiB) return `${(bytes / KiB).toFixed(1)} KiB`;
  return `${bytes} B`;
}

export function formatPercent(share: number): string {
  return `${formatNumber(share * 100, 0)}%`;
}

export function formatMs(value: number): string {
  return `${formatNumber(value, value >= 100 ? 0 : value >= 10 ? 1 : 2)} ms`;
}

export function formatMiB(bytes: number): string {
  return `${formatNumber(bytes / MiB, 0)} MiB`;
}
