import { decodeHeaders, encodedHeader } from '../../storage/record-batch.js';

const NONE = Buffer.alloc(0);

/**
 * The headers of one stored message at a time, as the read-ahead looks at them: one by one straight from the encoded
 * list (the dispatcher wants two of them), or decoded in full the first time something asks through `decodedHeader`
 * (a filter that reads headers, which may ask for many). One instance serves message after message (`of`), so a
 * lookup allocates no closure per message.
 */
export class StoredHeaders {
  private encoded: Buffer = NONE;
  private decoded: Readonly<Record<string, string | Buffer>> | undefined;

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
}
