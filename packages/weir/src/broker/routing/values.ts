import { invalidArgument } from './errors.js';

/**
 * Argument and header values are plain JS: null/undefined (AMQP's void), booleans, numbers, bigints, strings, byte
 * strings (Uint8Array, Buffer included), Dates, arrays and plain objects of these (nested field tables).
 *
 * Equality is by value, as RabbitMQ compares decoded field values: numbers and bigints by numeric value (1 equals
 * 1n; JS cannot tell an AMQP integer 1 from a double 1.0, which RabbitMQ keeps apart), NaN equals NaN, byte strings by
 * bytes, Dates by time, arrays and objects element by element (object key order aside). A string equals a byte
 * string holding exactly its UTF-8 encoding: RabbitMQ sees a longstr and a byte array as the same binary, and a
 * front-end may decode either way. null equals undefined.
 *
 * `canonicalValue` maps values to strings such that two values are equal exactly when their strings are: bindings
 * are identified by it, and arguments compared with it.
 */

const MAX_DEPTH = 32;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function isPlainObject(value: object): boolean {
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** Throws INVALID_ARGUMENT unless `value` is an object of supported values. `what` names it in the message. */
export function checkArguments(value: unknown, what: string): asserts value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !isPlainObject(value)) {
    throw invalidArgument(`${what} must be a plain object`);
  }
  checkValue(value, what, 0);
}

function checkValue(value: unknown, path: string, depth: number): void {
  switch (typeof value) {
    case 'undefined':
    case 'boolean':
    case 'number':
    case 'bigint':
    case 'string':
      return;
    case 'object':
      if (value === null || value instanceof Uint8Array || value instanceof Date) return;
      if (depth >= MAX_DEPTH) throw invalidArgument(`${path} nests deeper than ${MAX_DEPTH} levels`);
      if (Array.isArray(value)) {
        value.forEach((item, index) => checkValue(item, `${path}[${index}]`, depth + 1));
        return;
      }
      if (isPlainObject(value)) {
        for (const [key, item] of Object.entries(value)) checkValue(item, `${path}.${key}`, depth + 1);
        return;
      }
      throw invalidArgument(`${path} is a ${value.constructor?.name ?? 'object'}, not a plain value`);
    default:
      throw invalidArgument(`${path} is a ${typeof value}, not a plain value`);
  }
}

/** Assignment that keeps a '__proto__' key as data instead of replacing the prototype. */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  else target[key] = value;
}

/** A deep copy, frozen except for byte strings (typed arrays cannot be frozen), so callers cannot change stored state. */
export function frozenCopy<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof Uint8Array) return Buffer.from(value) as T;
  if (value instanceof Date) return Object.freeze(new Date(value.getTime())) as T;
  if (Array.isArray(value)) return Object.freeze(value.map(frozenCopy)) as T;
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) setOwn(copy, key, frozenCopy(item));
  return Object.freeze(copy) as T;
}

/** The text a string or UTF-8 byte string holds; null for anything else, bytes that are not UTF-8 included. */
export function textOf(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (!(value instanceof Uint8Array)) return null;
  try {
    return utf8.decode(value);
  } catch {
    return null;
  }
}

export function valuesEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  switch (typeof a) {
    case 'number':
      if (typeof b === 'bigint') return integerEquals(a, b);
      return typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b);
    case 'bigint':
      return typeof b === 'number' && integerEquals(b, a);
    case 'string':
      return b instanceof Uint8Array && textOf(b) === a;
    case 'undefined':
      return b === null;
    case 'object':
      return a === null ? b === undefined : objectsEqual(a, b);
    default:
      return false;
  }
}

function integerEquals(number: number, bigint: bigint): boolean {
  return Number.isInteger(number) && BigInt(number) === bigint;
}

function objectsEqual(a: object, b: unknown): boolean {
  if (a instanceof Uint8Array) {
    if (typeof b === 'string') return textOf(a) === b;
    return b instanceof Uint8Array && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
  }
  if (typeof b !== 'object' || b === null) return false;
  if (a instanceof Date) return b instanceof Date && Object.is(a.getTime(), b.getTime());
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let index = 0; index < a.length; index++) if (!valuesEqual(a[index], b[index])) return false;
    return true;
  }
  // Anything but a plain object only equals itself, which `===` already answered.
  if (!isPlainObject(a) || Array.isArray(b) || b instanceof Uint8Array || b instanceof Date || !isPlainObject(b)) return false;
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = Object.keys(left);
  if (keys.length !== Object.keys(right).length) return false;
  for (const key of keys) if (!Object.hasOwn(right, key) || !valuesEqual(left[key], right[key])) return false;
  return true;
}

/** See the module comment; defined for values that pass checkArguments. */
export function canonicalValue(value: unknown): string {
  switch (typeof value) {
    case 'undefined':
      return 'v';
    case 'boolean':
      return value ? 't' : 'f';
    case 'number':
      // BigInt keeps large integers exact and turns -0 into 0, so integers read the same as the equal bigints.
      return Number.isInteger(value) ? `i${BigInt(value)}` : `n${value}`;
    case 'bigint':
      return `i${value}`;
    case 'string':
      return `s${JSON.stringify(value)}`;
    default:
      break;
  }
  if (value === null) return 'v';
  if (value instanceof Uint8Array) {
    const text = textOf(value);
    return text === null ? `x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}` : `s${JSON.stringify(text)}`;
  }
  if (value instanceof Date) return `d${value.getTime()}`;
  if (Array.isArray(value)) return `[${value.map(canonicalValue).join(',')}]`;
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalValue(record[key])}`).join(',')}}`;
}

/** A short rendering for error messages. */
export function describeValue(value: unknown): string {
  if (value === undefined || value === null) return 'void';
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'bigint') return String(value);
  if (value instanceof Uint8Array) {
    const text = textOf(value);
    return text === null ? `bytes ${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}` : `'${text}'`;
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
  if (Array.isArray(value)) return `[${value.map(describeValue).join(', ')}]`;
  if (typeof value === 'object') {
    return `{${Object.entries(value)
      .map(([key, item]) => `${key}: ${describeValue(item)}`)
      .join(', ')}}`;
  }
  return String(value);
}
