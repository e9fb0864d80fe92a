import { RoutingError } from './errors.js';
import { textOf, valuesEqual } from './values.js';

/**
 * How a headers-exchange binding matches, from its arguments, as RabbitMQ does it:
 * - 'x-match' is 'all' (the default: every listed header must match), 'any' (at least one must), or 'all-with-x' /
 *   'any-with-x'. Under 'all' and 'any', arguments whose names start with 'x-' are not headers to match; under the
 *   '-with-x' forms they are, except 'x-match' itself.
 * - An argument whose value is null or undefined (AMQP's void) matches when the message has that header, whatever
 *   its value; any other value matches a header equal to it (values.ts).
 * - So a binding with no headers to match takes every message under 'all' and none under 'any'; a message without
 *   headers is matched as one with none.
 */
export interface HeadersRule {
  readonly any: boolean;
  readonly names: readonly string[];
  /** Parallel to `names`; null or undefined asks only for the header to be present. */
  readonly values: readonly unknown[];
}

const MODES = ['all', 'any', 'all-with-x', 'any-with-x'] as const;
type Mode = (typeof MODES)[number];

function modeOf(binding: Record<string, unknown>): Mode {
  const raw = binding['x-match'];
  if (raw === undefined) return 'all';
  const text = textOf(raw);
  if (text === null) throw new RoutingError('PRECONDITION_FAILED', `Invalid x-match field type ${typeof raw}; expected a string`);
  if (!(MODES as readonly string[]).includes(text)) {
    throw new RoutingError('PRECONDITION_FAILED', `Invalid x-match field value '${text}'; expected all, any, all-with-x, or any-with-x`);
  }
  return text as Mode;
}

/** Throws PRECONDITION_FAILED (RabbitMQ's reply to an invalid binding) for a bad 'x-match'. */
export function compileHeadersRule(bindingArguments: Record<string, unknown>): HeadersRule {
  const mode = modeOf(bindingArguments);
  const withX = mode === 'all-with-x' || mode === 'any-with-x';
  const names: string[] = [];
  const values: unknown[] = [];
  for (const [name, value] of Object.entries(bindingArguments)) {
    if (withX ? name === 'x-match' : name.startsWith('x-')) continue;
    names.push(name);
    values.push(value);
  }
  return { any: mode === 'any' || mode === 'any-with-x', names, values };
}

const NO_HEADERS: ReadonlyMap<string, unknown> = new Map();

export function headersMatch(rule: HeadersRule, headers: ReadonlyMap<string, unknown> | null): boolean {
  const present = headers ?? NO_HEADERS;
  const { names, values } = rule;
  for (let index = 0; index < names.length; index++) {
    const name = names[index]!;
    const wanted = values[index];
    let matched: boolean;
    if (wanted === null || wanted === undefined) matched = present.has(name);
    else {
      const actual = present.get(name);
      // Two strings need no more than `===`, and they are the common case.
      matched = actual === wanted || ((typeof actual !== 'string' || typeof wanted !== 'string') && valuesEqual(actual, wanted));
    }
    if (matched === rule.any) return matched;
  }
  return !rule.any;
}
