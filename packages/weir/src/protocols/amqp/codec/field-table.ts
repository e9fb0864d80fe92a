import { Cursor, MAX_SHORTSTR_BYTES, pastEnd, putLong, putShortstr, readLong, readOctet, readShortstr, syntaxError, utf8Length } from './wire.js';

/**
 * Field tables and field arrays (spec §4.2.5.5) with RabbitMQ's value types, which are not the ones the 0-9-1 spec
 * lists (RabbitMQ's "AMQP 0-9-1 errata", section "Field types"): `s` is a signed 16-bit integer, not a shortstr, `l` a
 * signed 64-bit integer, `x` a byte array, and there is no `U` or `L`.
 *
 * Values keep their wire type, so a decoded table encodes back to the same bytes (given canonical input: a bool of 2
 * comes back as 1, a NaN with a payload as the canonical NaN, and a repeated name keeps only its first value, the one
 * RabbitMQ's table lookups find).
 */
export type FieldValue =
  | { type: 't'; value: boolean }
  | { type: 'b' | 'B' | 's' | 'u' | 'I' | 'i' | 'f' | 'd'; value: number }
  | { type: 'l'; value: bigint }
  | { type: 'T'; value: bigint /* seconds since the epoch */ }
  | { type: 'D'; value: { scale: number; value: number } }
  | { type: 'S'; value: Buffer }
  | { type: 'x'; value: Buffer }
  | { type: 'A'; value: FieldValue[] }
  | { type: 'F'; value: FieldTable }
  | { type: 'V'; value: null };

/** Insertion order is wire order. */
export type FieldTable = Map<string, FieldValue>;

export type FieldType = FieldValue['type'];
/** The member of FieldValue with type `T`: `FieldValueOf<'I'>` is `{ type: 'I'; value: number }`. */
export type FieldValueOf<T extends FieldType> = FieldValue extends infer V
  ? V extends { type: infer U; value: infer X }
    ? T extends U
      ? { type: T; value: X }
      : never
    : never
  : never;

/**
 * Deepest nesting of tables and arrays accepted, counting the outermost table as 1. Decoding recurses, so without a
 * bound a small frame of nested `F`s could exhaust the stack; 32 is far beyond anything clients send (x-death nests 3).
 */
export const MAX_FIELD_NESTING = 32;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function checkInt(value: number, min: number, max: number, what: string): number {
  if (!(Number.isInteger(value) && value >= min && value <= max)) throw new RangeError(`${what}: ${value} is not an integer in [${min}, ${max}]`);
  return value;
}

/**
 * Typed value constructors: `Field.long(42)` rather than `{ type: 'l', value: 42n }`. They return the FieldValue union,
 * so `new Map([['a', Field.string('x')], ['b', Field.int(1)]])` infers a FieldTable.
 */
export const Field = {
  string(text: string | Buffer): FieldValue {
    return { type: 'S', value: typeof text === 'string' ? Buffer.from(text, 'utf8') : text };
  },
  bytes(bytes: Buffer): FieldValue {
    return { type: 'x', value: bytes };
  },
  bool(value: boolean): FieldValue {
    return { type: 't', value };
  },
  /** A signed 32-bit integer (`I`), the type RabbitMQ's own tables use for counts and limits. */
  int(value: number): FieldValue {
    return { type: 'I', value: checkInt(value, -0x8000_0000, 0x7fff_ffff, 'Field.int') };
  },
  /** A signed 64-bit integer (`l`). */
  long(value: number | bigint): FieldValue {
    const big = typeof value === 'bigint' ? value : BigInt(checkInt(value, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 'Field.long'));
    if (big < INT64_MIN || big > INT64_MAX) throw new RangeError(`Field.long: ${big} is outside the signed 64-bit range`);
    return { type: 'l', value: big };
  },
  double(value: number): FieldValue {
    return { type: 'd', value };
  },
  decimal(scale: number, value: number): FieldValue {
    return { type: 'D', value: { scale: checkInt(scale, 0, 0xff, 'Field.decimal scale'), value: checkInt(value, 0, 0xffff_ffff, 'Field.decimal value') } };
  },
  /** Seconds since the epoch; a Date is truncated to whole seconds. */
  timestamp(seconds: number | bigint | Date): FieldValue {
    const value =
      seconds instanceof Date ? BigInt(Math.floor(seconds.getTime() / 1000)) : typeof seconds === 'bigint' ? seconds : BigInt(checkInt(seconds, 0, Number.MAX_SAFE_INTEGER, 'Field.timestamp'));
    if (value < 0n || value > UINT64_MAX) throw new RangeError(`Field.timestamp: ${value} is outside the unsigned 64-bit range`);
    return { type: 'T', value };
  },
  table(entries: Iterable<readonly [string, FieldValue]> | Readonly<Record<string, FieldValue>>): FieldValue {
    const iterable = Symbol.iterator in entries ? (entries as Iterable<readonly [string, FieldValue]>) : Object.entries(entries);
    return { type: 'F', value: new Map(iterable) };
  },
  array(values: FieldValue[]): FieldValue {
    return { type: 'A', value: values };
  },
  void(): FieldValue {
    return { type: 'V', value: null };
  },
};

// ---- decoding ----

/**
 * The table every empty table decodes to where decoding one per message would cost (the `headers` property: amqplib
 * sends an empty one with every publish). Shared, so it refuses changes: a caller that wants to add to a decoded
 * table copies it first (`new Map(table)`).
 */
export const EMPTY_TABLE: FieldTable = readOnlyEmptyTable();

/** A plain Map (so it compares equal to any empty table) whose changing methods throw. */
function readOnlyEmptyTable(): FieldTable {
  const table: FieldTable = new Map();
  const refuse = (): never => {
    throw new TypeError('the shared empty field table is read-only: copy it with new Map(table) first');
  };
  Object.defineProperties(table, { set: { value: refuse }, delete: { value: refuse }, clear: { value: refuse } });
  return table;
}

/** `readTable`, answering an empty table with EMPTY_TABLE instead of a new Map. */
export function readTableShared(c: Cursor, where: string): FieldTable {
  if (c.end - c.at >= 4 && c.buf.readUInt32BE(c.at) === 0) {
    c.at += 4;
    return EMPTY_TABLE;
  }
  return readTable(c, where);
}

/**
 * Reads a table (`[size:long][name:shortstr, value]*`) at the cursor. Every entry must end inside the declared size;
 * reads inside it are bounded by it, not by the frame. `depth` is this table's nesting level (1 for a method argument
 * or the headers property).
 */
export function readTable(c: Cursor, where: string, depth = 1): FieldTable {
  const size = readLong(c, where);
  if (c.end - c.at < size) throw pastEnd(c, where, `table of ${size} bytes`);
  const outerEnd = c.end;
  const outerScope = c.scope;
  const end = c.at + size;
  c.end = end;
  c.scope = 'table';
  const table: FieldTable = new Map();
  while (c.at < end) {
    const name = readShortstr(c, where);
    const value = readValue(c, where, depth, name);
    if (!table.has(name)) table.set(name, value);
  }
  c.end = outerEnd;
  c.scope = outerScope;
  return table;
}

function readArray(c: Cursor, where: string, depth: number, name: string): FieldValue[] {
  const size = readLong(c, where);
  if (c.end - c.at < size) throw pastEnd(c, where, `array of ${size} bytes in field "${name}"`);
  const outerEnd = c.end;
  const outerScope = c.scope;
  const end = c.at + size;
  c.end = end;
  c.scope = 'array';
  const values: FieldValue[] = [];
  while (c.at < end) values.push(readValue(c, where, depth, name));
  c.end = outerEnd;
  c.scope = outerScope;
  return values;
}

/** Builds its message only when it throws: this runs for every value of every table. */
function needIn(c: Cursor, bytes: number, where: string, what: string, name: string): void {
  if (c.end - c.at < bytes) throw pastEnd(c, where, `${what} in field "${name}"`);
}

function nested(c: Cursor, where: string, depth: number, name: string): number {
  if (depth >= MAX_FIELD_NESTING) throw syntaxError(c, where, `field "${name}" nests tables and arrays deeper than ${MAX_FIELD_NESTING} levels`);
  return depth + 1;
}

/** One typed value; `name` is the table field it belongs to, for error messages. */
function readValue(c: Cursor, where: string, depth: number, name: string): FieldValue {
  const type = readOctet(c, where);
  const buf = c.buf;
  let at = c.at;
  switch (type) {
    case 0x74: // t
      return { type: 't', value: readOctet(c, where) !== 0 };
    case 0x62: // b
      needIn(c, 1, where, 'int8', name);
      c.at = at + 1;
      return { type: 'b', value: buf.readInt8(at) };
    case 0x42: // B
      return { type: 'B', value: readOctet(c, where) };
    case 0x73: // s
      needIn(c, 2, where, 'int16', name);
      c.at = at + 2;
      return { type: 's', value: buf.readInt16BE(at) };
    case 0x75: // u
      needIn(c, 2, where, 'uint16', name);
      c.at = at + 2;
      return { type: 'u', value: buf.readUInt16BE(at) };
    case 0x49: // I
      needIn(c, 4, where, 'int32', name);
      c.at = at + 4;
      return { type: 'I', value: buf.readInt32BE(at) };
    case 0x69: // i
      return { type: 'i', value: readLong(c, where) };
    case 0x6c: // l
      needIn(c, 8, where, 'int64', name);
      c.at = at + 8;
      return { type: 'l', value: buf.readBigInt64BE(at) };
    case 0x66: // f
      needIn(c, 4, where, 'float', name);
      c.at = at + 4;
      return { type: 'f', value: buf.readFloatBE(at) };
    case 0x64: // d
      needIn(c, 8, where, 'double', name);
      c.at = at + 8;
      return { type: 'd', value: buf.readDoubleBE(at) };
    case 0x44: // D: [scale:octet][value:long-uint] (spec §4.2.5.5, decimal-value)
      needIn(c, 5, where, 'decimal', name);
      c.at = at + 5;
      return { type: 'D', value: { scale: buf[at]!, value: buf.readUInt32BE(at + 1) } };
    case 0x53: // S
    case 0x78: {
      // x
      const size = readLong(c, where);
      if (c.end - c.at < size) throw pastEnd(c, where, `${type === 0x53 ? 'longstr' : 'byte array'} of ${size} bytes in field "${name}"`);
      at = c.at;
      c.at = at + size;
      return { type: type === 0x53 ? 'S' : 'x', value: buf.subarray(at, at + size) };
    }
    case 0x41: // A
      return { type: 'A', value: readArray(c, where, nested(c, where, depth, name), name) };
    case 0x54: // T
      needIn(c, 8, where, 'timestamp', name);
      c.at = at + 8;
      return { type: 'T', value: buf.readBigUInt64BE(at) };
    case 0x46: // F
      return { type: 'F', value: readTable(c, where, nested(c, where, depth, name)) };
    case 0x56: // V
      return { type: 'V', value: null };
    default:
      c.at = at - 1;
      throw syntaxError(c, where, `field "${name}" has unknown type ${describeType(type)}`);
  }
}

function describeType(type: number): string {
  return type >= 0x21 && type < 0x7f ? `'${String.fromCharCode(type)}' (0x${type.toString(16)})` : `0x${type.toString(16).padStart(2, '0')}`;
}

/**
 * Decodes the table at `offset` (its 4-byte size first) and returns it with the offset after it. Byte strings in the
 * result (`S`, `x`) are views of `buf`.
 */
export function decodeTable(buf: Buffer, offset = 0): { table: FieldTable; next: number } {
  const c = new Cursor(buf, offset);
  const table = readTable(c, 'table');
  return { table, next: c.at };
}

// ---- encoding ----

/** Bytes `table` takes on the wire, its 4-byte size included; validates every value on the way. */
export function tableSize(table: FieldTable, where: string, depth = 1): number {
  if (!(table instanceof Map)) throw new TypeError(`${where}: a field table must be a Map, got ${describe(table)}`);
  let size = 4;
  for (const [name, value] of table) {
    const nameBytes = typeof name === 'string' ? utf8Length(name) : -1;
    if (nameBytes < 0 || nameBytes > MAX_SHORTSTR_BYTES) throw new RangeError(`${where}: field name ${describe(name)} is not a string of at most 255 UTF-8 bytes`);
    size += 1 + nameBytes + valueSize(value, where, depth, name);
  }
  return size;
}

function arraySize(values: FieldValue[], where: string, depth: number, name: string): number {
  if (!Array.isArray(values)) throw new TypeError(`${where}: field "${name}": an A value must be an array`);
  let size = 4;
  for (const value of values) size += valueSize(value, where, depth, name);
  return size;
}

function nestedForEncoding(where: string, depth: number, name: string): number {
  if (depth >= MAX_FIELD_NESTING) throw new RangeError(`${where}: field "${name}" nests tables and arrays deeper than ${MAX_FIELD_NESTING} levels`);
  return depth + 1;
}

function valueSize(field: FieldValue, where: string, depth: number, name: string): number {
  if (field === null || typeof field !== 'object') throw new TypeError(`${where}: field "${name}": expected a FieldValue, got ${describe(field)}`);
  const bad = (expected: string): RangeError => new RangeError(`${where}: field "${name}": ${field.type} value ${describe(field.value)} is not ${expected}`);
  switch (field.type) {
    case 't':
      if (typeof field.value !== 'boolean') throw bad('a boolean');
      return 2;
    case 'b':
      if (!isInt(field.value, -0x80, 0x7f)) throw bad('an int8');
      return 2;
    case 'B':
      if (!isInt(field.value, 0, 0xff)) throw bad('a uint8');
      return 2;
    case 's':
      if (!isInt(field.value, -0x8000, 0x7fff)) throw bad('an int16');
      return 3;
    case 'u':
      if (!isInt(field.value, 0, 0xffff)) throw bad('a uint16');
      return 3;
    case 'I':
      if (!isInt(field.value, -0x8000_0000, 0x7fff_ffff)) throw bad('an int32');
      return 5;
    case 'i':
      if (!isInt(field.value, 0, 0xffff_ffff)) throw bad('a uint32');
      return 5;
    case 'f':
      if (typeof field.value !== 'number') throw bad('a number');
      return 5;
    case 'd':
      if (typeof field.value !== 'number') throw bad('a number');
      return 9;
    case 'l':
      if (typeof field.value !== 'bigint' || field.value < INT64_MIN || field.value > INT64_MAX) throw bad('a bigint in the signed 64-bit range');
      return 9;
    case 'T':
      if (typeof field.value !== 'bigint' || field.value < 0n || field.value > UINT64_MAX) throw bad('a bigint in the unsigned 64-bit range');
      return 9;
    case 'D': {
      const decimal = field.value as { scale: unknown; value: unknown } | null;
      if (typeof decimal !== 'object' || decimal === null || !isInt(decimal.scale, 0, 0xff) || !isInt(decimal.value, 0, 0xffff_ffff)) {
        throw bad('{ scale: uint8, value: uint32 }');
      }
      return 6;
    }
    case 'S':
    case 'x':
      if (!Buffer.isBuffer(field.value)) throw bad('a Buffer');
      return 5 + field.value.length;
    case 'A':
      return 1 + arraySize(field.value, where, nestedForEncoding(where, depth, name), name);
    case 'F':
      return 1 + tableSize(field.value, where, nestedForEncoding(where, depth, name));
    case 'V':
      return 1;
    default:
      throw new TypeError(`${where}: field "${name}" has unknown type ${describe((field as { type: unknown }).type)}`);
  }
}

function isInt(value: unknown, min: number, max: number): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' || value === null || value === undefined) return String(value);
  if (Buffer.isBuffer(value)) return `Buffer(${value.length})`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value;
}

/** Writes a table `tableSize` has validated; nested sizes are patched in after their contents, so nothing is sized twice. */
export function putTable(buf: Buffer, at: number, table: FieldTable): number {
  const start = at;
  at += 4;
  for (const [name, value] of table) {
    at = putShortstr(buf, at, name);
    at = putValue(buf, at, value);
  }
  putLong(buf, start, at - start - 4);
  return at;
}

function putValue(buf: Buffer, at: number, field: FieldValue): number {
  buf[at++] = field.type.charCodeAt(0);
  switch (field.type) {
    case 't':
      buf[at] = field.value ? 1 : 0;
      return at + 1;
    case 'b':
      return buf.writeInt8(field.value, at);
    case 'B':
      buf[at] = field.value;
      return at + 1;
    case 's':
      return buf.writeInt16BE(field.value, at);
    case 'u':
      return buf.writeUInt16BE(field.value, at);
    case 'I':
      return buf.writeInt32BE(field.value, at);
    case 'i':
      return buf.writeUInt32BE(field.value, at);
    case 'f':
      return buf.writeFloatBE(field.value, at);
    case 'd':
      return buf.writeDoubleBE(field.value, at);
    case 'l':
      return buf.writeBigInt64BE(field.value, at);
    case 'T':
      return buf.writeBigUInt64BE(field.value, at);
    case 'D':
      buf[at] = field.value.scale;
      return buf.writeUInt32BE(field.value.value, at + 1);
    case 'S':
    case 'x':
      at = putLong(buf, at, field.value.length);
      field.value.copy(buf, at);
      return at + field.value.length;
    case 'A': {
      const start = at;
      at += 4;
      for (const value of field.value) at = putValue(buf, at, value);
      putLong(buf, start, at - start - 4);
      return at;
    }
    case 'F':
      return putTable(buf, at, field.value);
    case 'V':
      return at;
  }
}

/** The table as it appears in a frame: `[size:long][entries]`. */
export function encodeTable(table: FieldTable): Buffer {
  const buf = Buffer.allocUnsafe(tableSize(table, 'table'));
  putTable(buf, 0, table);
  return buf;
}

// ---- plain JavaScript views ----

export type JsFieldValue = boolean | number | bigint | string | Buffer | null | { scale: number; value: number } | JsFieldValue[] | JsFieldObject;
export interface JsFieldObject {
  [name: string]: JsFieldValue;
}

function safeNumber(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/**
 * A value as plain JavaScript: S → string (UTF-8), x → Buffer, integers and floats → number, l and T → number when
 * it is a safe integer and bigint otherwise, D → { scale, value }, A → array, F → object, V → null.
 */
export function fieldToJs(field: FieldValue): JsFieldValue {
  switch (field.type) {
    case 'S':
      return field.value.toString('utf8');
    case 'l':
    case 'T':
      return safeNumber(field.value);
    case 'D':
      return { scale: field.value.scale, value: field.value.value };
    case 'A':
      return field.value.map(fieldToJs);
    case 'F':
      return tableToJs(field.value);
    default:
      return field.value;
  }
}

function assign(target: JsFieldObject, name: string, value: JsFieldValue): void {
  // A plain assignment to "__proto__" would replace the prototype instead of adding a field.
  if (name === '__proto__') Object.defineProperty(target, name, { value, enumerable: true, writable: true, configurable: true });
  else target[name] = value;
}

export function tableToJs(table: FieldTable): JsFieldObject {
  const out: JsFieldObject = {};
  for (const [name, value] of table) assign(out, name, fieldToJs(value));
  return out;
}

/**
 * A table from plain JavaScript, inferring wire types: string → S, boolean → t, integer in int32 range → I, other
 * integer or bigint → l, other number → d, null → V, Buffer/Uint8Array → x, Date → T, array → A, object → F.
 * Properties whose value is undefined are left out.
 */
export function tableFromJs(object: Readonly<Record<string, unknown>>): FieldTable {
  return tableFromJsAt(object, 1);
}

function tableFromJsAt(object: Readonly<Record<string, unknown>>, depth: number): FieldTable {
  const table: FieldTable = new Map();
  for (const [name, value] of Object.entries(object)) {
    if (value !== undefined) table.set(name, fieldFromJs(value, name, depth));
  }
  return table;
}

function fieldFromJs(value: unknown, name: string, depth: number): FieldValue {
  switch (typeof value) {
    case 'string':
      return { type: 'S', value: Buffer.from(value, 'utf8') };
    case 'boolean':
      return { type: 't', value };
    case 'number':
      if (Number.isInteger(value)) {
        if (value >= -0x8000_0000 && value <= 0x7fff_ffff) return { type: 'I', value };
        if (Number.isSafeInteger(value)) return { type: 'l', value: BigInt(value) };
      }
      return { type: 'd', value };
    case 'bigint':
      return Field.long(value);
    case 'object': {
      if (value === null) return { type: 'V', value: null };
      if (Buffer.isBuffer(value)) return { type: 'x', value };
      if (value instanceof Uint8Array) return { type: 'x', value: Buffer.from(value.buffer, value.byteOffset, value.byteLength) };
      if (value instanceof Date) return Field.timestamp(value);
      if (depth >= MAX_FIELD_NESTING) throw new RangeError(`tableFromJs: field "${name}" nests deeper than ${MAX_FIELD_NESTING} levels`);
      if (Array.isArray(value)) return { type: 'A', value: value.map((item) => fieldFromJs(item, name, depth + 1)) };
      return { type: 'F', value: tableFromJsAt(value as Record<string, unknown>, depth + 1) };
    }
    default:
      throw new TypeError(`tableFromJs: field "${name}" is a ${typeof value}, which has no field table type`);
  }
}

/** A numeric field of any width or type as a number (l and T may lose precision past 2^53; D is scaled), else undefined. */
export function tableNumber(table: FieldTable | undefined, name: string): number | undefined {
  const field = table?.get(name);
  if (field === undefined) return undefined;
  switch (field.type) {
    case 'b':
    case 'B':
    case 's':
    case 'u':
    case 'I':
    case 'i':
    case 'f':
    case 'd':
      return field.value;
    case 'l':
    case 'T':
      return Number(field.value);
    case 'D':
      return field.value.value / 10 ** field.value.scale;
    default:
      return undefined;
  }
}

/** A longstr field as a UTF-8 string, else undefined. */
export function tableString(table: FieldTable | undefined, name: string): string | undefined {
  const field = table?.get(name);
  return field?.type === 'S' ? field.value.toString('utf8') : undefined;
}

/** A bool field, else undefined. */
export function tableBoolean(table: FieldTable | undefined, name: string): boolean | undefined {
  const field = table?.get(name);
  return field?.type === 't' ? field.value : undefined;
}
