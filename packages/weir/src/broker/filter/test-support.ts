import { compileFilter, type FilterInput } from './index.js';

export type Headers = Readonly<Record<string, string | Uint8Array | undefined>>;

export function messageOf(headers: Headers, tag: string | null = null): FilterInput {
  return { tag, header: (name) => (Object.hasOwn(headers, name) ? headers[name] : undefined) };
}

export type TruthName = 'TRUE' | 'FALSE' | 'UNKNOWN';

/**
 * An SQL condition's three-valued result, seen from outside: UNKNOWN is what neither the condition nor its negation
 * selects.
 */
export function truthOf(expression: string, headers: Headers = {}): TruthName {
  const message = messageOf(headers);
  if (compileFilter({ kind: 'sql', expression }).matches(message)) return 'TRUE';
  return compileFilter({ kind: 'sql', expression: `NOT (${expression})` }).matches(message) ? 'FALSE' : 'UNKNOWN';
}

export function sqlMatches(expression: string, headers: Headers = {}): boolean {
  return compileFilter({ kind: 'sql', expression }).matches(messageOf(headers));
}
