import { decodeHeaders, encodedHeader, encodedHeaderValues } from '../../storage/record-batch.js';
import { attributesOf, DELIVERY_ATTRIBUTE_HEADERS, type DeliveryAttributes } from './message-attributes.js';

const NONE = Buffer.alloc(0);
const ATTRIBUTE_NAMES = DELIVERY_ATTRIBUTE_HEADERS.map((name) => Buffer.from(name, 'utf8'));

/**
 * The headers of one stored message at a time, as the read-ahead looks at them: one by one straight from the encoded
 * list (the dispatcher wants two of them, found in one walk by `attributes`), or decoded in full the first time
 * something asks through `decodedHeader` (a filter that reads headers, which may ask for many). One instance serves
 * message after message (`of`), so a lookup allocates no closure per message.
 */
export class StoredHeaders {
  private encoded: Buffer = NONE;
  private decoded: Readonly<Record<string, string | Buffer>> | undefined;
  private readonly attributeValues: Array<string | Buffer | undefined> = [undefined, undefined];

  /** Looks at `encoded` from now on. */
  of(encoded: Buffer): this {
    this.encoded = encoded;
    this.decoded = undefined;
    return this;
  }

  /** One header, without decoding the others (unless they were decoded already). */
  readonly header = (name: string): string | Buffer | undefined => {
    if (this.encoded.length === 0) return undefined;
    return this.decoded !== undefined ? this.decoded[name] : encodedHeader(this.encoded, name);
  };

  /** One header, decoding the whole list the first time: for callers that look up many. */
  readonly decodedHeader = (name: string): string | Buffer | undefined => {
    if (this.encoded.length === 0) return undefined;
    this.decoded ??= decodeHeaders(this.encoded);
    return this.decoded[name];
  };

  /** The message's delivery attributes (priority, expiry). */
  attributes(): DeliveryAttributes {
    if (this.decoded !== undefined) return attributesOf(this.decoded[DELIVERY_ATTRIBUTE_HEADERS[0]], this.decoded[DELIVERY_ATTRIBUTE_HEADERS[1]]);
    encodedHeaderValues(this.encoded, ATTRIBUTE_NAMES, this.attributeValues);
    return attributesOf(this.attributeValues[0], this.attributeValues[1]);
  }
}
