import type { StructOf } from 'weir-protocol';
import type { ConsumedMessage } from './consumer.js';

/** A decoded byte field as a Buffer view (no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Wire headers (a list with an isString flag per value) as the record consumers get. */
export function decodeHeaderList(list: readonly StructOf<'Header', 'decode'>[]): Record<string, string | Buffer> {
  const headers: Record<string, string | Buffer> = {};
  for (const header of list) {
    const value = asBuffer(header.value);
    const decoded = header.isString ? value.toString('utf8') : value;
    // A header named __proto__ must stay a plain property, not replace the object's prototype.
    if (header.name === '__proto__') Object.defineProperty(headers, header.name, { value: decoded, enumerable: true, writable: true, configurable: true });
    else headers[header.name] = decoded;
  }
  return headers;
}

/** The message fields every wire struct that carries a message has (FoundMessage, Delivery). */
export interface WireMessage {
  readonly id: Uint8Array;
  readonly key: Uint8Array | null;
  readonly tag: string | null;
  readonly headers: readonly StructOf<'Header', 'decode'>[];
  readonly timestamp: number;
  readonly storeTimestamp: number;
  readonly body: Uint8Array;
}

/** A wire message as the plain ConsumedMessage an application reads. */
export function consumedMessageOf(topic: string, partition: number, offset: number, wire: WireMessage): ConsumedMessage {
  const idBytes = asBuffer(wire.id);
  return {
    topic,
    partition,
    offset,
    id: idBytes.toString('hex'),
    idBytes,
    key: wire.key === null ? null : asBuffer(wire.key),
    tag: wire.tag,
    headers: wire.headers.length === 0 ? {} : decodeHeaderList(wire.headers),
    timestamp: wire.timestamp,
    storeTimestamp: wire.storeTimestamp,
    body: asBuffer(wire.body),
  };
}
