/** Public shapes of broker-side message filters; see index.ts for how they are compiled. */
export type FilterKind = 'tag' | 'sql';

export interface FilterSpec {
  kind: FilterKind;
  expression: string;
}

/**
 * What a filter sees of a message. Header values are strings (text headers) or Uint8Array (binary headers), which a
 * filter treats as NULL: there is no text to compare them with.
 */
export interface FilterInput {
  readonly tag: string | null;
  header(name: string): string | Uint8Array | undefined;
}

export interface CompiledFilter {
  readonly spec: FilterSpec;
  matches(message: FilterInput): boolean;
}

/** Longer expressions are refused, so compiling one costs bounded time and memory. */
export const MAX_EXPRESSION_LENGTH = 4096;

/** Deepest nesting of parentheses and NOTs in an SQL filter: the parser and evaluator recurse once per level. */
export const MAX_NESTING_DEPTH = 100;
