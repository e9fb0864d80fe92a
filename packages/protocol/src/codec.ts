import { ProtocolError } from './errors.js';
import { apis, FrameKind, pushes, structs, type ErrorName, type FieldSpec, type FieldType } from './schema.js';
import type { ApiName, DecodedPush, DecodedRequest, DecodedResponse, PushName, PushOf, RequestOf, ResponseOf } from './types.js';

/**
 * Encoders and decoders for every API, compiled once from the schema when this module loads: each field type becomes
 * a small codec (size, write, read), a struct is the list of its fields' codecs. Calls never look at the schema.
 *
 * Encoding sizes the whole frame first, then writes it into one `Buffer.allocUnsafe` with plain byte stores (Buffer's
 * write* methods validate their arguments per call, which costs more than the store). Decoding walks the payload with
 * one cursor; `bytes`, `nullableBytes` and `records` come back as `subarray` views of the payload, never copies.
 *
 * Every length and count is checked against the bytes left before anything is sliced or allocated; an array count
 * must fit `count × smallest element size` into what is left, so a count of 2^31 in a small frame fails at once.
 * A failure deep inside a message carries its path (`Produce.messages[3].body`): struct and array decoders catch it on
 * the way out and prepend their segment, so the success path does no path bookkeeping at all.
 */

const TWO_32 = 0x1_0000_0000;

/** Bytes before the request fields: `[kind:1][apiKey:2][apiVersion:2][correlationId:4]`. */
export const REQUEST_HEADER_BYTES = 9;
/** Bytes of a response header before the error message: `[kind:1][apiKey:2][correlationId:4][errorCode:2]`. */
export const RESPONSE_HEADER_BYTES = 9;
/** The length prefix in front of every frame. */
export const LENGTH_PREFIX_BYTES = 4;
/** Longest error message a response can carry (a nullableString). */
export const MAX_ERROR_MESSAGE_BYTES = 0x7fff;

/** A decoding cursor over one payload; `at` is relative to the payload's first byte (the frame kind). */
class Reader {
  constructor(
    readonly source: Buffer,
    public at: number,
    readonly end: number,
  ) {}
}

/**
 * A failure inside a message, before it knows where it is. Deliberately not an Error: no stack is captured, it never
 * escapes this module (the frame functions turn it into a ProtocolError with the full path).
 */
class FieldFailure {
  path = '';
  constructor(
    readonly code: ErrorName,
    readonly detail: string,
  ) {}
}

function annotate(error: unknown, segment: string): unknown {
  if (error instanceof FieldFailure) error.path = segment + error.path;
  return error;
}

function short(reader: Reader, need: number): FieldFailure {
  return new FieldFailure('INVALID_REQUEST', `need ${need} bytes at offset ${reader.at}, have ${reader.end - reader.at}`);
}

function invalidValue(expected: string, value: unknown): FieldFailure {
  return new FieldFailure('INVALID_ARGUMENT', `expected ${expected}, got ${describe(value)}`);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? `a string of ${value.length} characters` : JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null || value === undefined) return String(value);
  if (value instanceof Uint8Array) return `${value.constructor.name}(${value.byteLength})`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value;
}

// ---- byte stores and loads (little-endian). Callers guarantee the range is inside the buffer. ----

function putInt16(target: Buffer, at: number, value: number): void {
  target[at] = value;
  target[at + 1] = value >>> 8;
}

function putInt32(target: Buffer, at: number, value: number): void {
  target[at] = value;
  target[at + 1] = value >>> 8;
  target[at + 2] = value >>> 16;
  target[at + 3] = value >>> 24;
}

/** Writes a safe integer as two 32-bit halves (ToUint32 takes the low half exactly; floor division the high). */
function putInt64(target: Buffer, at: number, value: number): void {
  putInt32(target, at, value >>> 0);
  putInt32(target, at + 4, Math.floor(value / TWO_32));
}

function loadUint16(source: Buffer, at: number): number {
  return source[at]! | (source[at + 1]! << 8);
}

function loadInt32(source: Buffer, at: number): number {
  return source[at]! | (source[at + 1]! << 8) | (source[at + 2]! << 16) | (source[at + 3]! << 24);
}

function copyBytes(target: Buffer, at: number, bytes: Uint8Array): void {
  const length = bytes.byteLength;
  // TypedArray#set has a fixed cost that dominates short values (ids, keys, header values).
  if (length < 24) for (let index = 0; index < length; index++) target[at + index] = bytes[index]!;
  else target.set(bytes, at);
}

/** Writes a string's UTF-8 bytes at `at` and returns how many it wrote (the caller sized the buffer exactly). */
function writeUtf8(target: Buffer, at: number, value: string): number {
  const length = value.length;
  if (length < 32) {
    // Short ASCII strings (names, ids, tags) are the common case; copy them without crossing into C++.
    let index = 0;
    for (; index < length; index++) {
      const code = value.charCodeAt(index);
      if (code >= 0x80) break;
      target[at + index] = code;
    }
    if (index === length) return length;
  }
  return target.write(value, at, 'utf8');
}

function utf8Length(value: string): number {
  const length = value.length;
  if (length < 32) {
    let index = 0;
    while (index < length && value.charCodeAt(index) < 0x80) index++;
    if (index === length) return length;
  }
  return Buffer.byteLength(value, 'utf8');
}

// ---- codecs ----

interface Codec {
  /** The schema type, as written in docs and error messages. */
  readonly typeName: string;
  /** Smallest encoded size; array counts are checked against it before anything is allocated. */
  readonly minBytes: number;
  /** Encoded size when every value has the same size, else -1 (and `size` must be called). */
  readonly fixedBytes: number;
  /** Encoded size of `value`; checks the types the size depends on. */
  size(value: unknown): number;
  /** Writes `value` at `at` and returns where it ended; checks numeric ranges. */
  write(target: Buffer, at: number, value: unknown): number;
  read(reader: Reader): unknown;
}

function fixedSize(): number {
  throw new Error('size() called on a fixed-size codec');
}

const int8: Codec = {
  typeName: 'int8',
  minBytes: 1,
  fixedBytes: 1,
  size: fixedSize,
  write(target, at, value) {
    if (((value as number) << 24) >> 24 !== value) throw invalidValue('int8', value);
    target[at] = value as number;
    return at + 1;
  },
  read(reader) {
    if (reader.end - reader.at < 1) throw short(reader, 1);
    return (reader.source[reader.at++]! << 24) >> 24;
  },
};

const uint8: Codec = {
  typeName: 'uint8',
  minBytes: 1,
  fixedBytes: 1,
  size: fixedSize,
  write(target, at, value) {
    if (((value as number) & 0xff) !== value) throw invalidValue('uint8', value);
    target[at] = value as number;
    return at + 1;
  },
  read(reader) {
    if (reader.end - reader.at < 1) throw short(reader, 1);
    return reader.source[reader.at++]!;
  },
};

const int16: Codec = {
  typeName: 'int16',
  minBytes: 2,
  fixedBytes: 2,
  size: fixedSize,
  write(target, at, value) {
    if (((value as number) << 16) >> 16 !== value) throw invalidValue('int16', value);
    putInt16(target, at, value as number);
    return at + 2;
  },
  read(reader) {
    if (reader.end - reader.at < 2) throw short(reader, 2);
    const value = (loadUint16(reader.source, reader.at) << 16) >> 16;
    reader.at += 2;
    return value;
  },
};

const uint16: Codec = {
  typeName: 'uint16',
  minBytes: 2,
  fixedBytes: 2,
  size: fixedSize,
  write(target, at, value) {
    if (((value as number) & 0xffff) !== value) throw invalidValue('uint16', value);
    putInt16(target, at, value as number);
    return at + 2;
  },
  read(reader) {
    if (reader.end - reader.at < 2) throw short(reader, 2);
    const value = loadUint16(reader.source, reader.at);
    reader.at += 2;
    return value;
  },
};

const int32: Codec = {
  typeName: 'int32',
  minBytes: 4,
  fixedBytes: 4,
  size: fixedSize,
  write(target, at, value) {
    if (((value as number) | 0) !== value) throw invalidValue('int32', value);
    putInt32(target, at, value as number);
    return at + 4;
  },
  read(reader) {
    if (reader.end - reader.at < 4) throw short(reader, 4);
    const value = loadInt32(reader.source, reader.at);
    reader.at += 4;
    return value;
  },
};

const uint32: Codec = {
  typeName: 'uint32',
  minBytes: 4,
  fixedBytes: 4,
  size: fixedSize,
  write(target, at, value) {
    if ((value as number) >>> 0 !== value) throw invalidValue('uint32', value);
    putInt32(target, at, value as number);
    return at + 4;
  },
  read(reader) {
    if (reader.end - reader.at < 4) throw short(reader, 4);
    const value = loadInt32(reader.source, reader.at) >>> 0;
    reader.at += 4;
    return value;
  },
};

const int64: Codec = {
  typeName: 'int64',
  minBytes: 8,
  fixedBytes: 8,
  size: fixedSize,
  write(target, at, value) {
    if (!Number.isSafeInteger(value)) throw invalidValue('int64 (a safe integer)', value);
    putInt64(target, at, value as number);
    return at + 8;
  },
  read(reader) {
    if (reader.end - reader.at < 8) throw short(reader, 8);
    const low = loadInt32(reader.source, reader.at) >>> 0;
    const high = loadInt32(reader.source, reader.at + 4);
    // Exact whenever the result is a safe integer; anything else is rejected rather than silently rounded.
    const value = high * TWO_32 + low;
    if (!Number.isSafeInteger(value)) {
      throw new FieldFailure('INVALID_REQUEST', `int64 at offset ${reader.at} is outside the safe integer range (|v| < 2^53)`);
    }
    reader.at += 8;
    return value;
  },
};

const bool: Codec = {
  typeName: 'bool',
  minBytes: 1,
  fixedBytes: 1,
  size: fixedSize,
  write(target, at, value) {
    if (value !== true && value !== false) throw invalidValue('boolean', value);
    target[at] = value ? 1 : 0;
    return at + 1;
  },
  read(reader) {
    if (reader.end - reader.at < 1) throw short(reader, 1);
    const byte = reader.source[reader.at]!;
    if (byte > 1) throw new FieldFailure('INVALID_REQUEST', `invalid bool ${byte} at offset ${reader.at} (must be 0 or 1)`);
    reader.at++;
    return byte === 1;
  },
};

const string: Codec = {
  typeName: 'string',
  minBytes: 2,
  fixedBytes: -1,
  size(value) {
    if (typeof value !== 'string') throw invalidValue('string', value);
    const length = utf8Length(value);
    if (length > 0xffff) throw new FieldFailure('INVALID_ARGUMENT', `string of ${length} UTF-8 bytes is over the limit of 65535`);
    return 2 + length;
  },
  write(target, at, value) {
    const length = writeUtf8(target, at + 2, value as string);
    putInt16(target, at, length);
    return at + 2 + length;
  },
  read(reader) {
    if (reader.end - reader.at < 2) throw short(reader, 2);
    const length = loadUint16(reader.source, reader.at);
    reader.at += 2;
    if (reader.end - reader.at < length) throw short(reader, length);
    const start = reader.at;
    reader.at += length;
    return length === 0 ? '' : reader.source.toString('utf8', start, start + length);
  },
};

const nullableString: Codec = {
  typeName: 'nullableString',
  minBytes: 2,
  fixedBytes: -1,
  size(value) {
    if (value === null) return 2;
    if (typeof value !== 'string') throw invalidValue('string or null', value);
    const length = utf8Length(value);
    if (length > 0x7fff) throw new FieldFailure('INVALID_ARGUMENT', `nullable string of ${length} UTF-8 bytes is over the limit of 32767`);
    return 2 + length;
  },
  write(target, at, value) {
    if (value === null) {
      putInt16(target, at, -1);
      return at + 2;
    }
    const length = writeUtf8(target, at + 2, value as string);
    putInt16(target, at, length);
    return at + 2 + length;
  },
  read(reader) {
    if (reader.end - reader.at < 2) throw short(reader, 2);
    const length = (loadUint16(reader.source, reader.at) << 16) >> 16;
    if (length === -1) {
      reader.at += 2;
      return null;
    }
    if (length < 0) throw new FieldFailure('INVALID_REQUEST', `invalid nullable string length ${length} at offset ${reader.at}`);
    reader.at += 2;
    if (reader.end - reader.at < length) throw short(reader, length);
    const start = reader.at;
    reader.at += length;
    return length === 0 ? '' : reader.source.toString('utf8', start, start + length);
  },
};

const bytes: Codec = {
  typeName: 'bytes',
  minBytes: 4,
  fixedBytes: -1,
  size(value) {
    if (!(value instanceof Uint8Array)) throw invalidValue('Uint8Array', value);
    return 4 + value.byteLength;
  },
  write(target, at, value) {
    const length = (value as Uint8Array).byteLength;
    putInt32(target, at, length);
    copyBytes(target, at + 4, value as Uint8Array);
    return at + 4 + length;
  },
  read(reader) {
    if (reader.end - reader.at < 4) throw short(reader, 4);
    const length = loadInt32(reader.source, reader.at) >>> 0;
    reader.at += 4;
    if (reader.end - reader.at < length) throw short(reader, length);
    const start = reader.at;
    reader.at += length;
    return reader.source.subarray(start, start + length);
  },
};

const nullableBytes: Codec = {
  typeName: 'nullableBytes',
  minBytes: 4,
  fixedBytes: -1,
  size(value) {
    if (value === null) return 4;
    if (!(value instanceof Uint8Array)) throw invalidValue('Uint8Array or null', value);
    if (value.byteLength > 0x7fffffff) throw new FieldFailure('INVALID_ARGUMENT', `nullable bytes of ${value.byteLength} bytes are over the limit of 2^31-1`);
    return 4 + value.byteLength;
  },
  write(target, at, value) {
    if (value === null) {
      putInt32(target, at, -1);
      return at + 4;
    }
    const length = (value as Uint8Array).byteLength;
    putInt32(target, at, length);
    copyBytes(target, at + 4, value as Uint8Array);
    return at + 4 + length;
  },
  read(reader) {
    if (reader.end - reader.at < 4) throw short(reader, 4);
    const length = loadInt32(reader.source, reader.at);
    if (length === -1) {
      reader.at += 4;
      return null;
    }
    if (length < 0) throw new FieldFailure('INVALID_REQUEST', `invalid nullable bytes length ${length} at offset ${reader.at}`);
    reader.at += 4;
    if (reader.end - reader.at < length) throw short(reader, length);
    const start = reader.at;
    reader.at += length;
    return reader.source.subarray(start, start + length);
  },
};

function recordsLength(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength;
  if (!Array.isArray(value)) throw invalidValue('Uint8Array or an array of Uint8Array', value);
  let total = 0;
  for (let index = 0; index < value.length; index++) {
    const part: unknown = value[index];
    if (!(part instanceof Uint8Array)) throw annotate(invalidValue('Uint8Array', part), `[${index}]`);
    total += part.byteLength;
  }
  return total;
}

const records: Codec = {
  typeName: 'records',
  minBytes: 4,
  fixedBytes: -1,
  size(value) {
    const length = recordsLength(value);
    if (length > 0xffffffff) throw new FieldFailure('INVALID_ARGUMENT', `records of ${length} bytes are over the limit of 2^32-1`);
    return 4 + length;
  },
  write(target, at, value) {
    if (value instanceof Uint8Array) {
      putInt32(target, at, value.byteLength);
      target.set(value, at + 4);
      return at + 4 + value.byteLength;
    }
    const parts = value as readonly Uint8Array[];
    let cursor = at + 4;
    for (let index = 0; index < parts.length; index++) {
      const part = parts[index]!;
      target.set(part, cursor);
      cursor += part.byteLength;
    }
    putInt32(target, at, cursor - at - 4);
    return cursor;
  },
  read(reader) {
    if (reader.end - reader.at < 4) throw short(reader, 4);
    const length = loadInt32(reader.source, reader.at) >>> 0;
    reader.at += 4;
    if (reader.end - reader.at < length) throw short(reader, length);
    const start = reader.at;
    reader.at += length;
    return reader.source.subarray(start, start + length);
  },
};

const primitives: Readonly<Record<string, Codec>> = {
  int8,
  int16,
  int32,
  int64,
  uint8,
  uint16,
  uint32,
  bool,
  string,
  nullableString,
  bytes,
  nullableBytes,
  records,
};

// ---- arrays and structs ----
//
// Arrays and structs are where a schema interpreter loses its speed: one shared loop that reads `object[names[i]]`
// and calls `codecs[i].read` sees every struct's property names and every field's codec, so V8's inline caches at
// those sites go megamorphic. So each struct and array gets its own small functions, generated from the schema once
// at module load with `new Function`. Field codecs are passed in as arguments, never spliced in as text, and field
// names are checked identifiers, so the generated text is fixed by the schema alone. Each generated function has its
// own property-access and call sites, which stay monomorphic, and decoded structs are object literals with a fixed
// property order, so all decoded structs of one kind share one shape. This cuts the cost of decoding a Produce
// request by about 40%. Where code generation from strings is disabled (`--disallow-code-generation-from-strings`,
// some sandboxes), the generic closures below do the same work; tests run both.

type SizeFunction = (value: unknown) => number;
type WriteFunction = (target: Buffer, at: number, value: unknown) => number;
type ReadFunction = (reader: Reader) => unknown;

const codeGeneration = ((): boolean => {
  try {
    return new Function('return true')() === true;
  } catch {
    return false;
  }
})();

/** Whether struct and array codecs were compiled to specialised functions (false: generic closures). */
export const codecsGenerated = codeGeneration;

/** Compiles `body` with `scope`'s values bound to its names; null where code generation is disabled. */
function generate<T>(scope: Readonly<Record<string, unknown>>, body: string): T | null {
  if (!codeGeneration) return null;
  const names = Object.keys(scope);
  return new Function(...names, `'use strict';\n${body}`)(...names.map((name) => scope[name])) as T;
}

function tooMany(reader: Reader, count: number, elementMinBytes: number): FieldFailure {
  return new FieldFailure(
    'INVALID_REQUEST',
    `array count ${count} needs at least ${count * elementMinBytes} bytes at offset ${reader.at}, have ${reader.end - reader.at}`,
  );
}

function notAnArray(elementTypeName: string, value: unknown): FieldFailure {
  return invalidValue(`an array of ${elementTypeName}`, value);
}

function notAnObject(typeName: string, value: unknown): FieldFailure {
  return invalidValue(`a ${typeName} object`, value);
}

function arrayCodec(element: Codec): Codec {
  if (element.minBytes < 1) throw new Error(`schema: array elements of type ${element.typeName} may be empty, so counts could not be bounded`);
  const elementFixed = element.fixedBytes;
  const elementMin = element.minBytes;
  const elementName = element.typeName;
  const scope = {
    elementSize: element.size,
    elementWrite: element.write,
    elementRead: element.read,
    elementFixed,
    elementMin,
    elementName,
    annotate,
    notAnArray,
    short,
    tooMany,
    loadInt32,
    putInt32,
  };
  const size =
    generate<SizeFunction>(
      scope,
      `return function size(value) {
  if (!Array.isArray(value)) throw notAnArray(elementName, value);
  const count = value.length;
  if (elementFixed >= 0) return 4 + count * elementFixed;
  let total = 4;
  let index = 0;
  try {
    for (; index < count; index++) total += elementSize(value[index]);
  } catch (error) {
    throw annotate(error, '[' + index + ']');
  }
  return total;
};`,
    ) ??
    ((value) => {
      if (!Array.isArray(value)) throw notAnArray(elementName, value);
      const count = value.length;
      if (elementFixed >= 0) return 4 + count * elementFixed;
      let total = 4;
      let index = 0;
      try {
        for (; index < count; index++) total += element.size(value[index]);
      } catch (error) {
        throw annotate(error, `[${index}]`);
      }
      return total;
    });
  const write =
    generate<WriteFunction>(
      scope,
      `return function write(target, at, value) {
  const count = value.length;
  putInt32(target, at, count);
  let cursor = at + 4;
  let index = 0;
  try {
    for (; index < count; index++) cursor = elementWrite(target, cursor, value[index]);
  } catch (error) {
    throw annotate(error, '[' + index + ']');
  }
  return cursor;
};`,
    ) ??
    ((target, at, value) => {
      const items = value as readonly unknown[];
      const count = items.length;
      putInt32(target, at, count);
      let cursor = at + 4;
      let index = 0;
      try {
        for (; index < count; index++) cursor = element.write(target, cursor, items[index]);
      } catch (error) {
        throw annotate(error, `[${index}]`);
      }
      return cursor;
    });
  const read =
    generate<ReadFunction>(
      scope,
      `return function read(reader) {
  if (reader.end - reader.at < 4) throw short(reader, 4);
  const count = loadInt32(reader.source, reader.at) >>> 0;
  reader.at += 4;
  if (count * elementMin > reader.end - reader.at) throw tooMany(reader, count, elementMin);
  const items = [];
  let index = 0;
  try {
    for (; index < count; index++) items.push(elementRead(reader));
  } catch (error) {
    throw annotate(error, '[' + index + ']');
  }
  return items;
};`,
    ) ??
    ((reader) => {
      if (reader.end - reader.at < 4) throw short(reader, 4);
      const count = loadInt32(reader.source, reader.at) >>> 0;
      reader.at += 4;
      // Checked before anything is allocated: a huge count in a small frame fails here.
      if (count * elementMin > reader.end - reader.at) throw tooMany(reader, count, elementMin);
      const items: unknown[] = [];
      let index = 0;
      try {
        for (; index < count; index++) items.push(element.read(reader));
      } catch (error) {
        throw annotate(error, `[${index}]`);
      }
      return items;
    });
  return { typeName: `[${elementName}]`, minBytes: 4, fixedBytes: -1, size, write, read };
}

function structCodec(typeName: string, fields: readonly { readonly name: string; readonly codec: Codec }[]): Codec {
  const names = fields.map((field) => field.name);
  const codecs = fields.map((field) => field.codec);
  const count = fields.length;
  // Fixed-size fields add a constant to the size; only the variable ones are visited by `size`.
  let fixedPart = 0;
  let minBytes = 0;
  const variable: number[] = [];
  fields.forEach((field, index) => {
    minBytes += field.codec.minBytes;
    if (field.codec.fixedBytes >= 0) fixedPart += field.codec.fixedBytes;
    else variable.push(index);
  });
  const segments = names.map((name) => `.${name}`);
  const scope: Record<string, unknown> = { annotate, notAnObject, typeName, segments, fixedPart };
  codecs.forEach((codec, index) => {
    scope[`size${index}`] = codec.size;
    scope[`write${index}`] = codec.write;
    scope[`read${index}`] = codec.read;
  });
  // In the generated text `index` names the field being handled, so a failure can say where it happened.
  const size =
    generate<SizeFunction>(
      scope,
      `return function size(value) {
  if (typeof value !== 'object' || value === null) throw notAnObject(typeName, value);
  let index = 0;
  try {
    let total = fixedPart;
${variable.map((index) => `    index = ${index}; total += size${index}(value.${names[index]});`).join('\n')}
    return total;
  } catch (error) {
    throw annotate(error, segments[index]);
  }
};`,
    ) ??
    ((value) => {
      if (typeof value !== 'object' || value === null) throw notAnObject(typeName, value);
      const object = value as Record<string, unknown>;
      let total = fixedPart;
      let index = 0;
      try {
        for (const fieldIndex of variable) {
          index = fieldIndex;
          total += codecs[fieldIndex]!.size(object[names[fieldIndex]!]);
        }
      } catch (error) {
        throw annotate(error, segments[index]!);
      }
      return total;
    });
  const write =
    generate<WriteFunction>(
      scope,
      `return function write(target, at, value) {
  if (typeof value !== 'object' || value === null) throw notAnObject(typeName, value);
  let index = 0;
  try {
${names.map((name, index) => `    index = ${index}; at = write${index}(target, at, value.${name});`).join('\n')}
    return at;
  } catch (error) {
    throw annotate(error, segments[index]);
  }
};`,
    ) ??
    ((target, at, value) => {
      if (typeof value !== 'object' || value === null) throw notAnObject(typeName, value);
      const object = value as Record<string, unknown>;
      let cursor = at;
      let index = 0;
      try {
        for (; index < count; index++) cursor = codecs[index]!.write(target, cursor, object[names[index]!]);
      } catch (error) {
        throw annotate(error, segments[index]!);
      }
      return cursor;
    });
  const read =
    generate<ReadFunction>(
      scope,
      `return function read(reader) {
  let index = 0;
  try {
${names.map((_, index) => `    index = ${index}; const value${index} = read${index}(reader);`).join('\n')}
    return { ${names.map((name, index) => `${name}: value${index}`).join(', ')} };
  } catch (error) {
    throw annotate(error, segments[index]);
  }
};`,
    ) ??
    ((reader) => {
      const object: Record<string, unknown> = {};
      let index = 0;
      try {
        for (; index < count; index++) object[names[index]!] = codecs[index]!.read(reader);
      } catch (error) {
        throw annotate(error, segments[index]!);
      }
      return object;
    });
  return { typeName, minBytes, fixedBytes: variable.length === 0 ? fixedPart : -1, size, write, read };
}

const structCodecs = new Map<string, Codec>();

function structCodecNamed(name: string, resolving: readonly string[]): Codec {
  const known = structCodecs.get(name);
  if (known !== undefined) return known;
  if (resolving.includes(name)) throw new Error(`schema: struct ${name} contains itself`);
  const fields = (structs as Readonly<Record<string, readonly FieldSpec[]>>)[name];
  if (fields === undefined) throw new Error(`schema: unknown struct ${name}`);
  const codec = structCodec(name, compileFields(fields, [...resolving, name]));
  structCodecs.set(name, codec);
  return codec;
}

function codecFor(type: FieldType, resolving: readonly string[]): Codec {
  if (typeof type === 'string') {
    const codec = primitives[type];
    if (codec === undefined) throw new Error(`schema: unknown type ${type}`);
    return codec;
  }
  if ('array' in type) return arrayCodec(codecFor(type.array, resolving));
  return structCodecNamed(type.struct, resolving);
}

function compileFields(fields: readonly FieldSpec[], resolving: readonly string[]): { name: string; codec: Codec }[] {
  const seen = new Set<string>();
  return fields.map((field) => {
    // Names become property names in generated code and in plain property stores: simple identifiers only, so
    // nothing like `__proto__` or text that would change the generated code can get in.
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(field.name) || seen.has(field.name)) throw new Error(`schema: bad or repeated field name ${field.name}`);
    seen.add(field.name);
    return { name: field.name, codec: codecFor(field.type, resolving) };
  });
}

interface CompiledApi {
  readonly key: number;
  readonly name: ApiName;
  readonly version: number;
  readonly request: Codec;
  readonly response: Codec;
}

const apisByName = new Map<string, CompiledApi>();
const apisByKey = new Map<number, CompiledApi>();
for (const api of apis as readonly (typeof apis)[number][]) {
  if (apisByKey.has(api.key) || apisByName.has(api.name)) throw new Error(`schema: repeated API key or name ${api.key} ${api.name}`);
  const compiled: CompiledApi = {
    key: api.key,
    name: api.name,
    version: api.version,
    request: structCodec(`${api.name}Request`, compileFields(api.request, [])),
    response: structCodec(`${api.name}Response`, compileFields(api.response, [])),
  };
  apisByName.set(api.name, compiled);
  apisByKey.set(api.key, compiled);
}

interface CompiledPush {
  readonly key: number;
  readonly name: PushName;
  readonly fields: Codec;
}

const pushesByName = new Map<string, CompiledPush>();
const pushesByKey = new Map<number, CompiledPush>();
for (const push of pushes as readonly (typeof pushes)[number][]) {
  if (pushesByKey.has(push.key) || pushesByName.has(push.name)) throw new Error(`schema: repeated push key or name ${push.key} ${push.name}`);
  const compiled: CompiledPush = { key: push.key, name: push.name, fields: structCodec(`${push.name}Push`, compileFields(push.fields, [])) };
  pushesByName.set(push.name, compiled);
  pushesByKey.set(push.key, compiled);
}

/** Bytes of a push frame header after the length field: kind and push key. */
export const PUSH_HEADER_BYTES = 3;

/** Encodes one push frame (broker to client, no correlation id), length prefix included. */
export function encodePush<N extends PushName>(name: N, body: PushOf<N>): Buffer {
  const push = pushesByName.get(name);
  if (push === undefined) throw new ProtocolError('INVALID_ARGUMENT', `unknown push ${JSON.stringify(name)}`);
  try {
    const bodyBytes = push.fields.fixedBytes >= 0 ? push.fields.fixedBytes : push.fields.size(body);
    const frame = allocateFrame(PUSH_HEADER_BYTES + bodyBytes);
    putInt32(frame, 0, PUSH_HEADER_BYTES + bodyBytes);
    frame[4] = FrameKind.Push;
    putInt16(frame, 5, push.key);
    const end = push.fields.write(frame, LENGTH_PREFIX_BYTES + PUSH_HEADER_BYTES, body);
    if (end !== frame.length) throw new Error(`${push.name}: encoded ${end} bytes into a frame sized ${frame.length}`);
    return frame;
  } catch (error) {
    throw toProtocolError(error, `${push.name} push`, null, null);
  }
}

/**
 * Decodes a push payload (the frame after its length field). Returns null for a push key this side does not know
 * (newer brokers may send pushes older clients ignore); throws ProtocolError INVALID_REQUEST for malformed fields.
 */
export function decodePush(payload: Uint8Array): DecodedPush | null {
  const source = asBuffer(payload);
  checkKind(source, FrameKind.Push, 'push');
  if (source.length < PUSH_HEADER_BYTES) throw new ProtocolError('INVALID_REQUEST', `push header: need ${PUSH_HEADER_BYTES} bytes at offset 0, have ${source.length}`);
  const key = (loadUint16(source, 1) << 16) >> 16;
  const push = pushesByKey.get(key);
  if (push === undefined) return null;
  const reader = new Reader(source, PUSH_HEADER_BYTES, source.length);
  let body: unknown;
  try {
    body = push.fields.read(reader);
  } catch (error) {
    throw toProtocolError(error, `${push.name} push`, null, null);
  }
  if (reader.at !== reader.end) throw new ProtocolError('INVALID_REQUEST', `${push.name} push: ${reader.end - reader.at} trailing bytes at offset ${reader.at}`);
  return { key, name: push.name, body } as DecodedPush;
}

/** The key of an API. */
export function apiKeyOf(name: ApiName): number {
  return compiledByName(name).key;
}

/** The name of an API key, or undefined when the schema has no such API. */
export function apiNameOf(key: number): ApiName | undefined {
  return apisByKey.get(key)?.name;
}

function compiledByName(name: string): CompiledApi {
  const api = apisByName.get(name);
  if (api === undefined) throw new ProtocolError('UNKNOWN_API', `unknown API ${JSON.stringify(name)}`);
  return api;
}

function checkCorrelationId(correlationId: number, api: CompiledApi): void {
  if ((correlationId | 0) !== correlationId) {
    throw new ProtocolError('INVALID_ARGUMENT', `${api.name}: correlation id must be an int32, got ${describe(correlationId)}`, { apiKey: api.key });
  }
}

/** Turns a FieldFailure into a ProtocolError naming the message and path; anything else is rethrown as it is. */
function toProtocolError(error: unknown, messageName: string, correlationId: number | null, apiKey: number | null): unknown {
  if (!(error instanceof FieldFailure)) return error;
  return new ProtocolError(error.code, `${messageName}${error.path}: ${error.detail}`, { correlationId, apiKey });
}

/** One buffer for a whole frame whose length field will say `payloadBytes`. */
function allocateFrame(payloadBytes: number): Buffer {
  if (payloadBytes > 0xffffffff) throw new FieldFailure('FRAME_TOO_LARGE', `frame of ${payloadBytes} bytes does not fit the 32-bit length field`);
  return Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + payloadBytes);
}

/** Encodes one request frame, length prefix included. */
export function encodeRequest<N extends ApiName>(name: N, correlationId: number, body: RequestOf<N>): Buffer {
  const api = compiledByName(name);
  checkCorrelationId(correlationId, api);
  try {
    const bodyBytes = api.request.fixedBytes >= 0 ? api.request.fixedBytes : api.request.size(body);
    const frame = allocateFrame(REQUEST_HEADER_BYTES + bodyBytes);
    putInt32(frame, 0, REQUEST_HEADER_BYTES + bodyBytes);
    frame[4] = FrameKind.Request;
    putInt16(frame, 5, api.key);
    putInt16(frame, 7, api.version);
    putInt32(frame, 9, correlationId);
    const end = api.request.write(frame, LENGTH_PREFIX_BYTES + REQUEST_HEADER_BYTES, body);
    if (end !== frame.length) throw new Error(`${api.name}: encoded ${end} bytes into a frame sized ${frame.length}`);
    return frame;
  } catch (error) {
    throw toProtocolError(error, api.name, correlationId, api.key);
  }
}

/** Encodes one successful response frame (error code 0, no error message), length prefix included. */
export function encodeResponse<N extends ApiName>(name: N, correlationId: number, body: ResponseOf<N>): Buffer {
  const api = compiledByName(name);
  checkCorrelationId(correlationId, api);
  try {
    const bodyBytes = api.response.fixedBytes >= 0 ? api.response.fixedBytes : api.response.size(body);
    const headerBytes = RESPONSE_HEADER_BYTES + 2;
    const frame = allocateFrame(headerBytes + bodyBytes);
    putInt32(frame, 0, headerBytes + bodyBytes);
    frame[4] = FrameKind.Response;
    putInt16(frame, 5, api.key);
    putInt32(frame, 7, correlationId);
    putInt16(frame, 11, 0);
    putInt16(frame, 13, -1);
    const end = api.response.write(frame, LENGTH_PREFIX_BYTES + headerBytes, body);
    if (end !== frame.length) throw new Error(`${api.name}: encoded ${end} bytes into a frame sized ${frame.length}`);
    return frame;
  } catch (error) {
    throw toProtocolError(error, `${api.name} response`, correlationId, api.key);
  }
}

/**
 * Like `encodeResponse`, but a trailing `records` field given as a list of buffers is not copied into the frame: the
 * result is the frame up to and including the records length, followed by the record buffers themselves, to be
 * written back to back (a writev). Fetch responses carry stored batches this way without copying them.
 */
export function encodeResponseParts<N extends ApiName>(name: N, correlationId: number, body: ResponseOf<N>): Buffer[] {
  const api = compiledByName(name);
  const fields = apis.find((spec) => spec.name === name)!.response;
  const last = fields[fields.length - 1];
  const value = last === undefined ? undefined : (body as Record<string, unknown>)[last.name];
  if (last?.type !== 'records' || !Array.isArray(value) || value.length === 0) return [encodeResponse(name, correlationId, body)];
  const parts = value as readonly Uint8Array[];
  let recordsBytes = 0;
  for (const part of parts) recordsBytes += part.byteLength;
  const head = encodeResponse(name, correlationId, { ...body, [last.name]: EMPTY_RECORDS } as ResponseOf<N>);
  const frameBytes = head.length - LENGTH_PREFIX_BYTES + recordsBytes;
  if (frameBytes > 0xffffffff) throw new ProtocolError('INVALID_ARGUMENT', `${api.name} response: records of ${recordsBytes} bytes are over the frame limit`, { correlationId, apiKey: api.key });
  putInt32(head, 0, frameBytes);
  putInt32(head, head.length - 4, recordsBytes);
  return [head, ...(parts as Buffer[])];
}

const EMPTY_RECORDS: readonly Uint8Array[] = [];

/** UTF-8 bytes of an error message, cut at a character boundary to fit a nullableString. */
function errorMessageBytes(message: string): Buffer {
  const encoded = Buffer.from(message, 'utf8');
  if (encoded.length <= MAX_ERROR_MESSAGE_BYTES) return encoded;
  let end = MAX_ERROR_MESSAGE_BYTES;
  while (end > 0 && (encoded[end]! & 0xc0) === 0x80) end--; // never cut inside a multi-byte character
  return encoded.subarray(0, end);
}

/**
 * Encodes an error response: the frame header, a non-zero error code and a message (cut to 32,767 UTF-8 bytes), with
 * no response fields. `apiKey` is a number so a broker can answer requests for APIs it does not know.
 */
export function encodeErrorResponse(apiKey: number, correlationId: number, errorCode: number, message: string | null): Buffer {
  if ((apiKey << 16) >> 16 !== apiKey) throw new ProtocolError('INVALID_ARGUMENT', `error response: API key must be an int16, got ${describe(apiKey)}`);
  if ((correlationId | 0) !== correlationId) {
    throw new ProtocolError('INVALID_ARGUMENT', `error response: correlation id must be an int32, got ${describe(correlationId)}`);
  }
  if ((errorCode << 16) >> 16 !== errorCode || errorCode === 0) {
    throw new ProtocolError('INVALID_ARGUMENT', `error response: error code must be a non-zero int16, got ${describe(errorCode)}`);
  }
  const text = message === null ? null : errorMessageBytes(message);
  const headerBytes = RESPONSE_HEADER_BYTES + 2 + (text?.length ?? 0);
  const frame = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + headerBytes);
  putInt32(frame, 0, headerBytes);
  frame[4] = FrameKind.Response;
  putInt16(frame, 5, apiKey);
  putInt32(frame, 7, correlationId);
  putInt16(frame, 11, errorCode);
  if (text === null) putInt16(frame, 13, -1);
  else {
    putInt16(frame, 13, text.length);
    frame.set(text, 15);
  }
  return frame;
}

function asBuffer(payload: Uint8Array): Buffer {
  return Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

function checkKind(payload: Buffer, expected: number, what: string): void {
  if (payload.length < 1) throw new ProtocolError('INVALID_REQUEST', `${what}.kind: need 1 bytes at offset 0, have 0`);
  if (payload[0] !== expected) {
    const kind = payload[0]!;
    const known = Object.entries(FrameKind).find(([, value]) => value === kind)?.[0];
    throw new ProtocolError('INVALID_REQUEST', `${what}.kind: expected ${expected}, got ${kind}${known === undefined ? ' (unknown kind)' : ` (${known})`}`);
  }
}

/**
 * Decodes a request payload (the frame after its length field, starting with the kind byte). Throws ProtocolError:
 * INVALID_REQUEST for a wrong kind, short or malformed fields and trailing bytes; UNKNOWN_API; UNSUPPORTED_VERSION.
 * Once the header is read, the error carries the correlation id and API key so the broker can answer it.
 */
export function decodeRequest(payload: Uint8Array): DecodedRequest {
  const source = asBuffer(payload);
  checkKind(source, FrameKind.Request, 'request');
  if (source.length < REQUEST_HEADER_BYTES) {
    throw new ProtocolError('INVALID_REQUEST', `request header: need ${REQUEST_HEADER_BYTES} bytes at offset 0, have ${source.length}`);
  }
  const apiKey = (loadUint16(source, 1) << 16) >> 16;
  const apiVersion = (loadUint16(source, 3) << 16) >> 16;
  const correlationId = loadInt32(source, 5);
  const api = apisByKey.get(apiKey);
  if (api === undefined) throw new ProtocolError('UNKNOWN_API', `unknown API key ${apiKey}`, { correlationId, apiKey });
  if (apiVersion !== api.version) {
    throw new ProtocolError('UNSUPPORTED_VERSION', `${api.name} version ${apiVersion} is not supported (this side speaks version ${api.version})`, {
      correlationId,
      apiKey,
    });
  }
  const reader = new Reader(source, REQUEST_HEADER_BYTES, source.length);
  let body: unknown;
  try {
    body = api.request.read(reader);
  } catch (error) {
    throw toProtocolError(error, api.name, correlationId, apiKey);
  }
  if (reader.at !== reader.end) {
    throw new ProtocolError('INVALID_REQUEST', `${api.name}: ${reader.end - reader.at} trailing bytes at offset ${reader.at}`, { correlationId, apiKey });
  }
  return { apiKey, name: api.name, apiVersion, correlationId, body } as DecodedRequest;
}

/**
 * Decodes a response payload (the frame after its length field). `body` is null when `errorCode` is not 0. Throws
 * ProtocolError (INVALID_REQUEST, UNKNOWN_API) as decodeRequest does; a failure after the header carries the
 * correlation id, so a client can fail that one request before closing the connection.
 */
export function decodeResponse(payload: Uint8Array): DecodedResponse {
  const source = asBuffer(payload);
  checkKind(source, FrameKind.Response, 'response');
  if (source.length < RESPONSE_HEADER_BYTES) {
    throw new ProtocolError('INVALID_REQUEST', `response header: need ${RESPONSE_HEADER_BYTES} bytes at offset 0, have ${source.length}`);
  }
  const apiKey = (loadUint16(source, 1) << 16) >> 16;
  const correlationId = loadInt32(source, 3);
  const errorCode = (loadUint16(source, 7) << 16) >> 16;
  const api = apisByKey.get(apiKey);
  if (api === undefined) throw new ProtocolError('UNKNOWN_API', `response for unknown API key ${apiKey}`, { correlationId, apiKey });
  const reader = new Reader(source, RESPONSE_HEADER_BYTES, source.length);
  let errorMessage: string | null;
  let body: unknown = null;
  try {
    errorMessage = nullableString.read(reader) as string | null;
  } catch (error) {
    throw toProtocolError(annotate(error, '.errorMessage'), `${api.name} response`, correlationId, apiKey);
  }
  if (errorCode === 0) {
    try {
      body = api.response.read(reader);
    } catch (error) {
      throw toProtocolError(error, `${api.name} response`, correlationId, apiKey);
    }
  }
  if (reader.at !== reader.end) {
    throw new ProtocolError('INVALID_REQUEST', `${api.name} response: ${reader.end - reader.at} trailing bytes at offset ${reader.at}`, {
      correlationId,
      apiKey,
    });
  }
  return { apiKey, name: api.name, correlationId, errorCode, errorMessage, body } as DecodedResponse;
}
