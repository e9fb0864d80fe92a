import { invalidArgument } from './errors.js';
import { type Binding, EXCHANGE_TYPES, type ExchangeDefinition, type ExchangeType } from './types.js';
import { checkArguments, describeValue, setOwn, textOf } from './values.js';

/**
 * Exchanges and bindings as plain JSON, for the metadata store and for `definitions export|import`, with RabbitMQ's
 * definitions field names (the caller adds `vhost`). Reading applies RabbitMQ's import defaults: durable, not
 * auto-delete, not internal, no arguments, routing key ''. Unknown fields (vhost, properties_key, …) are ignored.
 *
 * Argument values keep their meaning through JSON: byte strings holding UTF-8 become strings and safe-integer
 * bigints numbers (equal values, see values.ts). What JSON cannot hold is written as a one-key object — {"$bytes":
 * base64}, {"$bigint": digits}, {"$number": "NaN" | "Infinity" | "-Infinity"}, {"$date": milliseconds or null} —
 * and a plain object that happens to look like one of these is wrapped as {"$object": …}, so reading gives back
 * equal values.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface ExchangeJson {
  name: string;
  type: ExchangeType;
  durable: boolean;
  auto_delete: boolean;
  internal: boolean;
  arguments: Record<string, JsonValue>;
}

export interface BindingJson {
  source: string;
  destination: string;
  destination_type: 'queue' | 'exchange';
  routing_key: string;
  arguments: Record<string, JsonValue>;
}

const TAGS = new Set(['$bytes', '$bigint', '$number', '$date', '$object']);

/** The alternate exchange is written as RabbitMQ writes it, as the 'alternate-exchange' argument. */
export function exchangeToJson(definition: ExchangeDefinition): ExchangeJson {
  const args = argumentsToJson(definition.arguments);
  if (definition.alternateExchange !== null) args['alternate-exchange'] = definition.alternateExchange;
  return {
    name: definition.name,
    type: definition.type,
    durable: definition.durable,
    auto_delete: definition.autoDelete,
    internal: definition.internal,
    arguments: args,
  };
}

/** Throws INVALID_ARGUMENT when `value` is not an exchange in this form; names are checked when declared. */
export function exchangeFromJson(value: unknown): ExchangeDefinition {
  const json = objectOf(value, 'exchange');
  const name = stringField(json, 'name', 'exchange', undefined);
  const type = json['type'];
  if (!(EXCHANGE_TYPES as readonly unknown[]).includes(type)) throw invalidArgument(`exchange '${name}': unknown type ${describeValue(type)}`);
  const args = argumentsFromJson(json['arguments'], `exchange '${name}' arguments`);
  const alternate = args['alternate-exchange'];
  const alternateExchange = alternate === undefined ? null : textOf(alternate);
  if (alternateExchange === null && alternate !== undefined) throw invalidArgument(`exchange '${name}': alternate-exchange must be a string`);
  return {
    name,
    type: type as ExchangeType,
    durable: booleanField(json, 'durable', name, true),
    autoDelete: booleanField(json, 'auto_delete', name, false),
    internal: booleanField(json, 'internal', name, false),
    alternateExchange,
    arguments: args,
  };
}

export function bindingToJson(binding: Binding): BindingJson {
  return {
    source: binding.source,
    destination: binding.destination,
    destination_type: binding.destinationKind,
    routing_key: binding.routingKey,
    arguments: argumentsToJson(binding.arguments),
  };
}

/** Throws INVALID_ARGUMENT when `value` is not a binding in this form. */
export function bindingFromJson(value: unknown): Binding {
  const json = objectOf(value, 'binding');
  const source = stringField(json, 'source', 'binding', undefined);
  const destination = stringField(json, 'destination', 'binding', undefined);
  const kind = json['destination_type'];
  if (kind !== 'queue' && kind !== 'exchange') throw invalidArgument(`binding destination_type must be 'queue' or 'exchange', not ${describeValue(kind)}`);
  return {
    source,
    destination,
    destinationKind: kind,
    routingKey: stringField(json, 'routing_key', 'binding', ''),
    arguments: argumentsFromJson(json['arguments'], 'binding arguments'),
  };
}

function objectOf(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidArgument(`${what} must be a JSON object`);
  return value as Record<string, unknown>;
}

function stringField(json: Record<string, unknown>, field: string, what: string, fallback: string | undefined): string {
  const value = json[field] ?? fallback;
  if (typeof value !== 'string') throw invalidArgument(`${what} ${field} must be a string`);
  return value;
}

function booleanField(json: Record<string, unknown>, field: string, name: string, fallback: boolean): boolean {
  const value = json[field] ?? fallback;
  if (typeof value !== 'boolean') throw invalidArgument(`exchange '${name}': ${field} must be a boolean`);
  return value;
}

function argumentsToJson(args: Record<string, unknown>): Record<string, JsonValue> {
  checkArguments(args, 'arguments');
  return objectToJson(args);
}

function objectToJson(record: object): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [key, item] of Object.entries(record)) setOwn(out, key, toJson(item));
  return out;
}

function toJson(value: unknown): JsonValue {
  switch (typeof value) {
    case 'undefined':
      return null;
    case 'boolean':
    case 'string':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : { $number: String(value) };
    case 'bigint':
      return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : { $bigint: String(value) };
    default:
      break;
  }
  if (value === null) return null;
  if (value instanceof Uint8Array) return textOf(value) ?? { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (value instanceof Date) {
    const time = value.getTime();
    return { $date: Number.isNaN(time) ? null : time };
  }
  if (Array.isArray(value)) return value.map(toJson);
  const object = objectToJson(value as object);
  return looksTagged(object) ? { $object: object } : object;
}

function looksTagged(json: Record<string, unknown>): boolean {
  const keys = Object.keys(json);
  return keys.length === 1 && TAGS.has(keys[0]!);
}

function argumentsFromJson(value: unknown, what: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  const json = objectOf(value, what);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(json)) setOwn(out, key, fromJson(item, `${what}.${key}`, 0));
  return out;
}

const MAX_DEPTH = 32;

function fromJson(value: unknown, path: string, depth: number): unknown {
  if (value === null || typeof value === 'boolean' || typeof value === 'string' || typeof value === 'number') return value;
  if (typeof value !== 'object' || depth >= MAX_DEPTH) throw invalidArgument(`${path} is not a JSON value this store wrote`);
  if (Array.isArray(value)) return value.map((item, index) => fromJson(item, `${path}[${index}]`, depth + 1));
  const json = value as Record<string, unknown>;
  if (looksTagged(json)) return fromTagged(json, path, depth);
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(json)) setOwn(out, key, fromJson(item, `${path}.${key}`, depth + 1));
  return out;
}

function fromTagged(json: Record<string, unknown>, path: string, depth: number): unknown {
  const [tag, body] = Object.entries(json)[0]!;
  const bad = (): never => {
    throw invalidArgument(`${path}: ${describeValue(body)} is not a valid ${tag}`);
  };
  switch (tag) {
    case '$bytes':
      return typeof body === 'string' ? Buffer.from(body, 'base64') : bad();
    case '$bigint':
      return typeof body === 'string' && /^-?\d+$/.test(body) ? BigInt(body) : bad();
    case '$number':
      return body === 'NaN' || body === 'Infinity' || body === '-Infinity' ? Number(body) : bad();
    case '$date':
      return body === null ? new Date(Number.NaN) : typeof body === 'number' ? new Date(body) : bad();
    default: {
      // '$object': a plain object that only looks like a tag.
      if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad();
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(body)) setOwn(out, key, fromJson(item, `${path}.${key}`, depth + 1));
      return out;
    }
  }
}
