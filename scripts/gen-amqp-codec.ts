/**
 * Writes packages/weir/src/protocols/amqp/codec/methods.generated.ts from the AMQP 0-9-1 schema (codec/spec.ts).
 * Run: node --import tsx scripts/gen-amqp-codec.ts
 * codec/methods.test.ts fails when the checked-in file differs from what this renders.
 *
 * Each method gets an interface, a decoder and an encoder (size + write) of straight-line field reads and writes, so
 * nothing interprets the schema at run time. Consecutive bits share octets, low bit first (spec §4.2.5.2).
 */
import { writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { methodKey, methods, type FieldSpec, type FieldType, type MethodSpec } from '../packages/weir/src/protocols/amqp/codec/spec.js';

export const AMQP_METHODS_PATH = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'packages/weir/src/protocols/amqp/codec/methods.generated.ts');

const tsTypes: Record<FieldType, string> = {
  octet: 'number',
  short: 'number',
  long: 'number',
  longlong: 'number',
  timestamp: 'bigint',
  shortstr: 'string',
  longstr: 'Buffer',
  bit: 'boolean',
  table: 'FieldTable',
};

const readers: Record<Exclude<FieldType, 'bit'>, string> = {
  octet: 'readOctet',
  short: 'readShort',
  long: 'readLong',
  longlong: 'readLonglong',
  timestamp: 'readTimestamp',
  shortstr: 'readShortstr',
  longstr: 'readLongstr',
  table: 'readTable',
};

/** Wire size of fixed-width types, and of reserved strings, which are always written empty. */
const fixedSizes: Partial<Record<FieldType, number>> = { octet: 1, short: 2, long: 4, longlong: 8, timestamp: 8 };
const reservedSizes: Record<FieldType, number> = { octet: 1, short: 2, long: 4, longlong: 8, timestamp: 8, shortstr: 1, longstr: 4, table: 4, bit: 0 };
const maxima: Partial<Record<FieldType, string>> = { octet: '0xff', short: '0xffff', long: '0xffff_ffff', longlong: 'Number.MAX_SAFE_INTEGER' };

/** A run of up to 8 consecutive bits, sharing one octet. */
interface BitGroup {
  readonly kind: 'bits';
  readonly bits: FieldSpec[];
}
type Slot = { readonly kind: 'field'; readonly field: FieldSpec } | BitGroup;

function slots(fields: readonly FieldSpec[]): Slot[] {
  const out: Slot[] = [];
  let group: BitGroup | null = null;
  for (const field of fields) {
    if (field.type !== 'bit') {
      group = null;
      out.push({ kind: 'field', field });
      continue;
    }
    if (group === null || group.bits.length === 8) {
      group = { kind: 'bits', bits: [] };
      out.push(group);
    }
    group.bits.push(field);
  }
  return out;
}

function pascalCase(name: string): string {
  return name
    .split(/[.-]/)
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}

function hex(key: number): string {
  return `0x${key.toString(16).padStart(8, '0')}`;
}

/** A local variable for a field: its name, unless that is not a legal binding in strict mode. */
function local(field: FieldSpec): string {
  return field.name === 'arguments' ? 'args' : field.name;
}

function where(method: MethodSpec, field: FieldSpec): string {
  return `'${method.name} ${field.specName}'`;
}

function direction(method: MethodSpec): string {
  if (method.acceptedBy.length === 2) return 'either peer sends it';
  return method.acceptedBy[0] === 'server' ? 'client → server' : 'server → client';
}

function renderInterface(method: MethodSpec): string[] {
  const notes = [`${method.name} (${method.classId}/${method.methodId}), ${direction(method)}`];
  if (method.content) notes.push('followed by content');
  if (method.responses.length > 0) notes.push(`answered by ${method.responses.join(' or ')}`);
  const lines = [`/** ${notes.join('; ')}. */`, `export interface ${pascalCase(method.name)} {`, `  readonly method: '${method.name}';`];
  for (const field of method.fields) if (!field.reserved) lines.push(`  readonly ${field.name}: ${tsTypes[field.type]};`);
  lines.push('}');
  return lines;
}

function renderDecoder(method: MethodSpec): string[] {
  const name = pascalCase(method.name);
  const lines = [`function decode${name}(c: Cursor): ${name} {`];
  let bitGroups = 0;
  const values: string[] = [];
  for (const slot of slots(method.fields)) {
    if (slot.kind === 'bits') {
      const first = slot.bits[0]!;
      if (slot.bits.every((bit) => bit.reserved)) {
        lines.push(`  skip(c, 1, ${where(method, first)}, 'bit octet');`);
        continue;
      }
      const octet = `bits${++bitGroups}`;
      lines.push(`  const ${octet} = readOctet(c, ${where(method, first)});`);
      slot.bits.forEach((bit, index) => {
        if (!bit.reserved) values.push(`${bit.name}: (${octet} & ${1 << index}) !== 0`);
      });
      continue;
    }
    const { field } = slot;
    if (field.reserved) {
      if (field.type === 'shortstr') lines.push(`  skipShortstr(c, ${where(method, field)});`);
      else if (field.type === 'longstr') lines.push(`  skipLongstr(c, ${where(method, field)});`);
      else lines.push(`  skip(c, ${reservedSizes[field.type]}, ${where(method, field)}, '${field.type}');`);
      continue;
    }
    lines.push(`  const ${local(field)} = ${readers[field.type as Exclude<FieldType, 'bit'>]}(c, ${where(method, field)});`);
    values.push(local(field) === field.name ? field.name : `${field.name}: ${local(field)}`);
  }
  lines.push(`  expectEnd(c, '${method.name}');`);
  const single = `  return { method: '${method.name}'${values.map((value) => `, ${value}`).join('')} };`;
  if (single.length <= 140) lines.push(single);
  else lines.push('  return {', `    method: '${method.name}',`, ...values.map((value) => `    ${value},`), '  };');
  lines.push('}');
  return lines;
}

function renderSizer(method: MethodSpec): string[] {
  const name = pascalCase(method.name);
  const checks: string[] = [];
  const terms: string[] = [];
  let fixed = 4;
  for (const slot of slots(method.fields)) {
    if (slot.kind === 'bits') {
      fixed += 1;
      continue;
    }
    const { field } = slot;
    const w = where(method, field);
    if (field.reserved) {
      fixed += reservedSizes[field.type];
      continue;
    }
    const maximum = maxima[field.type];
    if (maximum !== undefined) checks.push(`  checkUint(m.${field.name}, ${maximum}, ${w});`);
    if (field.type === 'timestamp') checks.push(`  checkTimestamp(m.${field.name}, ${w});`);
    const size = fixedSizes[field.type];
    if (size !== undefined) fixed += size;
    else if (field.type === 'shortstr') terms.push(`shortstrSize(m.${field.name}, ${w})`);
    else if (field.type === 'table') terms.push(`tableSize(m.${field.name}, ${w})`);
    else if (field.type === 'longstr') {
      checks.push(`  checkBytes(m.${field.name}, ${w});`);
      terms.push(`4 + m.${field.name}.length`);
    }
  }
  const used = checks.length > 0 || terms.length > 0;
  const sum = `  return ${[String(fixed), ...terms].join(' + ')};`;
  const result = sum.length <= 140 ? [sum] : [`  return (`, `    ${fixed} +`, ...terms.map((term, index) => `    ${term}${index === terms.length - 1 ? '' : ' +'}`), '  );'];
  return [`function size${name}(${used ? 'm' : '_m'}: ${name}): number {`, ...checks, ...result, '}'];
}

function renderWriter(method: MethodSpec): string[] {
  const name = pascalCase(method.name);
  const body: string[] = [`  at = putLong(buf, at, ${hex(methodKey(method.classId, method.methodId))});`];
  for (const slot of slots(method.fields)) {
    if (slot.kind === 'bits') {
      const set = slot.bits.flatMap((bit, index) => (bit.reserved ? [] : [`(m.${bit.name} ? ${1 << index} : 0)`]));
      const reserved = slot.bits.filter((bit) => bit.reserved).map((bit) => bit.specName);
      body.push(`  at = putOctet(buf, at, ${set.length === 0 ? '0' : set.join(' | ')});${reserved.length > 0 ? ` // ${reserved.join(', ')}` : ''}`);
      continue;
    }
    const { field } = slot;
    if (field.reserved) {
      const put = { octet: 'putOctet', short: 'putShort', long: 'putLong', shortstr: 'putOctet', longstr: 'putLong', table: 'putLong' }[field.type as string];
      if (put === undefined) throw new Error(`gen-amqp-codec: no writer for a reserved ${field.type}`);
      body.push(`  at = ${put}(buf, at, 0); // ${field.specName}`);
      continue;
    }
    const put = {
      octet: 'putOctet',
      short: 'putShort',
      long: 'putLong',
      longlong: 'putLonglong',
      timestamp: 'putTimestamp',
      shortstr: 'putShortstr',
      longstr: 'putLongstr',
      table: 'putTable',
    }[field.type as Exclude<FieldType, 'bit'>];
    body.push(`  at = ${put}(buf, at, m.${field.name});`);
  }
  const last = body.pop()!;
  body.push(last.replace(/^ {2}at = (.*);( \/\/.*)?$/, '  return $1;$2'));
  const usesM = body.some((line) => line.includes('m.'));
  return [`function put${name}(buf: Buffer, at: number, ${usesM ? 'm' : '_m'}: ${name}): number {`, ...body, '}'];
}

/** Renders methods.generated.ts. Pure: the same schema always gives the same text. */
export function renderAmqpMethods(): string {
  const out: string[] = [];
  for (const method of methods) out.push(...renderInterface(method), '');

  out.push('/** Every method of the schema; `method` tells them apart. */', 'export type AmqpMethod =');
  methods.forEach((method, index) => out.push(`  | ${pascalCase(method.name)}${index === methods.length - 1 ? ';' : ''}`));
  out.push('', "export type AmqpMethodName = AmqpMethod['method'];", '', '/** Method name → method type: `AmqpMethodMap[\'basic.ack\']` is `BasicAck`. */');
  out.push('export interface AmqpMethodMap {');
  for (const method of methods) out.push(`  '${method.name}': ${pascalCase(method.name)};`);
  out.push('}', '');

  out.push(
    '/** Whether the method is followed by a content header and body (spec §2.3.5.2); false for unknown ids. */',
    'export function methodHasContent(classId: number, methodId: number): boolean {',
    '  switch (classId * 0x10000 + methodId) {',
  );
  for (const method of methods.filter((m) => m.content)) out.push(`    case ${hex(methodKey(method.classId, method.methodId))}: // ${method.name}`);
  out.push('      return true;', '    default:', '      return false;', '  }', '}', '');

  out.push(
    '/**',
    ' * Decodes a method frame\'s payload, `buf[start, end)`: `[class-id:short][method-id:short][arguments]`. Longstr',
    ' * arguments and byte strings inside tables are views of `buf`, not copies.',
    ' */',
    'export function decodeMethod(buf: Buffer, start = 0, end = buf.length): AmqpMethod {',
    '  if (end - start < 4) {',
    '    throw new AmqpSyntaxError(`method frame payload of ${end - start} bytes has no room for its class-id and method-id`);',
    '  }',
    '  const c = new Cursor(buf, start + 4, end);',
    '  c.classId = (buf[start]! << 8) | buf[start + 1]!;',
    '  c.methodId = (buf[start + 2]! << 8) | buf[start + 3]!;',
    '  switch (c.classId * 0x10000 + c.methodId) {',
  );
  for (const method of methods) out.push(`    case ${hex(methodKey(method.classId, method.methodId))}:`, `      return decode${pascalCase(method.name)}(c);`);
  out.push('    default:', '      throw unknownMethod(c.classId, c.methodId);', '  }', '}', '');
  out.push(
    '/**',
    ' * 540 NOT_IMPLEMENTED: the spec\'s code for "functionality that is not implemented in the server", which covers both',
    ' * the classes 0-9-1 dropped (access, file, stream, dtx, tunnel) and ids no version defines. RabbitMQ offers no code',
    ' * to copy: its generated lookup_method_name exits with {unknown_method_id, Id}, not with an AMQP error.',
    ' */',
    'function unknownMethod(classId: number, methodId: number): AmqpSyntaxError {',
    '  const amqpClass = classSpecById(classId);',
    '  const what = amqpClass === undefined ? `no class ${classId} (method ${methodId})` : `${amqpClass.name} (class ${classId}) has no method ${methodId}`;',
    '  return new AmqpSyntaxError(`unknown method: ${what}`, ReplyCode.NOT_IMPLEMENTED, classId, methodId);',
    '}',
    '',
  );

  out.push(
    '/** Bytes `encodeMethod` will produce for `method`; validates every argument (throws RangeError/TypeError). */',
    'export function methodPayloadSize(method: AmqpMethod): number {',
    '  switch (method.method) {',
  );
  for (const method of methods) out.push(`    case '${method.name}':`, `      return size${pascalCase(method.name)}(method);`);
  out.push('    default:', '      throw unknownMethodName(method);', '  }', '}', '');

  out.push(
    '/** Writes a method `methodPayloadSize` has validated at `at`; returns the offset after it. */',
    'export function putMethodPayload(buf: Buffer, at: number, method: AmqpMethod): number {',
    '  switch (method.method) {',
  );
  for (const method of methods) out.push(`    case '${method.name}':`, `      return put${pascalCase(method.name)}(buf, at, method);`);
  out.push('    default:', '      throw unknownMethodName(method);', '  }', '}', '');
  out.push(
    'function unknownMethodName(method: never): TypeError {',
    '  return new TypeError(`unknown AMQP method ${JSON.stringify((method as { method?: unknown }).method)}`);',
    '}',
    '',
    '/** A method frame\'s payload. */',
    'export function encodeMethod(method: AmqpMethod): Buffer {',
    '  const buf = Buffer.allocUnsafe(methodPayloadSize(method));',
    '  putMethodPayload(buf, 0, method);',
    '  return buf;',
    '}',
    '',
  );

  for (const method of methods) out.push(...renderDecoder(method), '', ...renderSizer(method), '', ...renderWriter(method), '');
  out.pop();
  const body = out.join('\n');
  return [...header(body), body, ''].join('\n');
}

const wireImports = [
  'checkBytes',
  'checkTimestamp',
  'checkUint',
  'Cursor',
  'expectEnd',
  'putLong',
  'putLongstr',
  'putLonglong',
  'putOctet',
  'putShort',
  'putShortstr',
  'putTimestamp',
  'readLong',
  'readLongstr',
  'readLonglong',
  'readOctet',
  'readShort',
  'readShortstr',
  'readTimestamp',
  'shortstrSize',
  'skip',
  'skipLongstr',
  'skipShortstr',
];

/** The file's header and imports: only the wire helpers the body calls, so the file stays free of unused imports. */
function header(body: string): string[] {
  const used = wireImports.filter((name) => new RegExp(`\\b${name}\\b`).test(body));
  return [
    '// Generated from spec.ts by scripts/gen-amqp-codec.ts; do not edit by hand.',
    '// Regenerate with: node --import tsx scripts/gen-amqp-codec.ts',
    '',
    "import { AmqpSyntaxError, ReplyCode } from './errors.js';",
    "import { putTable, readTable, tableSize, type FieldTable } from './field-table.js';",
    "import { classSpecById } from './spec.js';",
    'import {',
    ...used.map((name) => `  ${name},`),
    "} from './wire.js';",
    '',
  ];
}

function isMain(): boolean {
  const entry = process.argv[1];
  return entry !== undefined && import.meta.url === pathToFileURL(resolve(entry)).href;
}

if (isMain()) {
  writeFileSync(AMQP_METHODS_PATH, renderAmqpMethods());
  console.log(`wrote ${AMQP_METHODS_PATH}`);
}
