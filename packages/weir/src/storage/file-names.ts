/**
 * Data files named by the number they start at (a commit-log position, a queue offset), zero-padded to 20 digits so
 * that names sort as their numbers do: `00000000000000004096.log`.
 */
const DIGITS = 20;

export function numberedFileName(value: number, suffix: string): string {
  return `${String(value).padStart(DIGITS, '0')}${suffix}`;
}

/** The number a file name of this kind starts with, or null for any other name. */
export function parseNumberedFileName(name: string, suffix: string): number | null {
  if (name.length !== DIGITS + suffix.length || !name.endsWith(suffix)) return null;
  const digits = name.slice(0, DIGITS);
  return /^\d+$/.test(digits) ? Number(digits) : null;
}
