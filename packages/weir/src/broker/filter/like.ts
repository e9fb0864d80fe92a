/**
 * LIKE patterns, compiled once per subscription. `%` matches any run of characters, `_` exactly one (a code point,
 * so an emoji is one character), everything else itself, case-sensitively; the ESCAPE character makes the next `%`,
 * `_` or escape character literal.
 *
 * The pattern is not turned into one big RegExp: `%a%a%a…b` would become nested `.*` that backtrack exponentially on
 * a long header, and a subscriber must not be able to stall the broker. Instead the pattern is split at `%` into
 * fixed-length segments; the first must match at the start, the last at the end, and each middle one is found at its
 * leftmost place after the previous one (the leftmost match of a fixed-length segment also ends leftmost, so greedy
 * placement never misses a match). Each match is O(length of header × length of segment).
 */
export type LikeMatcher = (text: string) => boolean;

interface Segment {
  /** The segment's characters when it has no `_` (and no lone surrogate, which indexOf would find inside a pair). */
  literal: string | null;
  /** RegExp source for the segment: escaped characters, `.` for `_`. */
  source: string;
}

const REGEX_SYNTAX = /[\\^$.*+?()[\]{}|/]/;
const LONE_SURROGATE = /\p{Cs}/u;

export function compileLike(pattern: string, escape: string | null, fail: (index: number, detail: string) => never): LikeMatcher {
  const segments: Segment[] = [];
  let literal = '';
  let source = '';
  let wildcard = false;
  const push = (): void => {
    segments.push({ literal: wildcard || LONE_SURROGATE.test(literal) ? null : literal, source });
    literal = '';
    source = '';
    wildcard = false;
  };
  let index = 0;
  while (index < pattern.length) {
    let char = String.fromCodePoint(pattern.codePointAt(index)!);
    if (char === escape) {
      index += char.length;
      const next = index < pattern.length ? String.fromCodePoint(pattern.codePointAt(index)!) : '';
      if (next !== '%' && next !== '_' && next !== escape) fail(index, `expected '%', '_' or ${JSON.stringify(escape)} after the escape character`);
      char = next;
      literal += char;
      source += regexSource(char);
    } else if (char === '%') {
      push();
    } else if (char === '_') {
      wildcard = true;
      source += '.';
    } else {
      literal += char;
      source += regexSource(char);
    }
    index += char.length;
  }
  push();
  if (segments.length === 1) {
    const only = segments[0]!;
    if (only.literal !== null) {
      const exact = only.literal;
      return (text) => text === exact;
    }
    const whole = new RegExp(`^(?:${only.source})$`, 'su');
    return (text) => whole.test(text);
  }
  const first = segments[0]!;
  const last = segments[segments.length - 1]!;
  const prefix = first.source === '' ? null : atStart(first);
  // Adjacent '%'s leave empty middle segments, which match anywhere.
  const middles = segments.slice(1, -1).filter((segment) => segment.source !== '').map(findFrom);
  const suffix = last.source === '' ? null : atEnd(last);
  return (text) => {
    let position = 0;
    if (prefix !== null && (position = prefix(text)) < 0) return false;
    for (let each = 0; each < middles.length; each++) if ((position = middles[each]!(text, position)) < 0) return false;
    return suffix === null || suffix(text, position);
  };
}

/** Where a match at the very start ends, or -1. */
function atStart(segment: Segment): (text: string) => number {
  const literal = segment.literal;
  if (literal !== null) return (text) => (text.startsWith(literal) ? literal.length : -1);
  const regex = new RegExp(segment.source, 'suy');
  return (text) => {
    regex.lastIndex = 0;
    return regex.test(text) ? regex.lastIndex : -1;
  };
}

/** Where the leftmost match starting at or after `from` ends, or -1. */
function findFrom(segment: Segment): (text: string, from: number) => number {
  const literal = segment.literal;
  if (literal !== null) {
    return (text, from) => {
      const at = text.indexOf(literal, from);
      return at < 0 ? -1 : at + literal.length;
    };
  }
  const regex = new RegExp(segment.source, 'gsu');
  return (text, from) => {
    regex.lastIndex = from;
    return regex.test(text) ? regex.lastIndex : -1;
  };
}

/** Whether the segment matches the end of the text, starting at or after `from`. */
function atEnd(segment: Segment): (text: string, from: number) => boolean {
  const literal = segment.literal;
  if (literal !== null) return (text, from) => text.length - literal.length >= from && text.endsWith(literal);
  const regex = new RegExp(`(?:${segment.source})$`, 'gsu');
  return (text, from) => {
    regex.lastIndex = from;
    return regex.test(text);
  };
}

/** One pattern character as RegExp source valid under the `u` flag (which refuses needless escapes like `\-`). */
function regexSource(char: string): string {
  if (REGEX_SYNTAX.test(char)) return `\\${char}`;
  const code = char.codePointAt(0)!;
  return code < 0x20 || code > 0x7e ? `\\u{${code.toString(16)}}` : char;
}
