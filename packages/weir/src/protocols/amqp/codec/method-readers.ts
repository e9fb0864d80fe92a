import type { BasicAck, BasicPublish } from './methods.generated.js';
import { Cursor, decodeText, expectEnd, readLonglong, readOctet, sameBytes, skip, skipShortstr } from './wire.js';

/**
 * Readers of the two methods that come with every message — basic.publish in front of each published one, basic.ack
 * for each delivered one — which decode into one reused method object instead of a new one (and new strings) per
 * message. Each accepts and refuses exactly what decodeMethod does (a property test holds them together); the object
 * a read returns is overwritten by the next read, so callers copy what they keep.
 */

/** The class-id and method-id of basic.publish (spec §1.8.3.7), as the first four bytes of its payload read. */
export const BASIC_PUBLISH_KEY = 0x003c0028;
/** The same of basic.ack (spec §1.8.3.13). */
export const BASIC_ACK_KEY = 0x003c0050;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const EMPTY = Buffer.alloc(0);

/**
 * A shortstr kept as text while the next one read is the same bytes: a publisher mostly sends to one exchange with one
 * routing key, and comparing a few bytes costs less than a new string per message.
 */
class RecentShortstr {
  private bytes = Buffer.alloc(0);
  private text = '';

  /** readShortstr, with its checks and errors. */
  read(c: Cursor, where: string): string {
    const start = skipShortstr(c, where);
    const buf = c.buf;
    if (sameBytes(buf, start, c.at, this.bytes)) return this.text;
    this.bytes = Buffer.from(buf.subarray(start, c.at));
    this.text = decodeText(buf, start, c.at);
    return this.text;
  }
}

/** basic.publish, with the exchange and routing key strings reused while their bytes repeat. */
export class BasicPublishReader {
  private readonly method: Mutable<BasicPublish> = { method: 'basic.publish', exchange: '', routingKey: '', mandatory: false, immediate: false };
  private readonly cursor = new Cursor(EMPTY);
  private readonly exchange = new RecentShortstr();
  private readonly routingKey = new RecentShortstr();

  /** The basic.publish whose payload (class-id and method-id first) is `buf[start, end)`. */
  read(buf: Buffer, start: number, end: number): BasicPublish {
    const c = this.cursor;
    c.reset(buf, start + 4, end, 60, 40);
    skip(c, 2, 'basic.publish reserved-1', 'short');
    const method = this.method;
    method.exchange = this.exchange.read(c, 'basic.publish exchange');
    method.routingKey = this.routingKey.read(c, 'basic.publish routing-key');
    const bits = readOctet(c, 'basic.publish mandatory');
    expectEnd(c, 'basic.publish');
    method.mandatory = (bits & 1) !== 0;
    method.immediate = (bits & 2) !== 0;
    c.buf = EMPTY;
    return method;
  }
}

export class BasicAckReader {
  private readonly method: Mutable<BasicAck> = { method: 'basic.ack', deliveryTag: 0, multiple: false };
  private readonly cursor = new Cursor(EMPTY);

  /** The basic.ack whose payload (class-id and method-id first) is `buf[start, end)`. */
  read(buf: Buffer, start: number, end: number): BasicAck {
    const c = this.cursor;
    c.reset(buf, start + 4, end, 60, 80);
    const deliveryTag = readLonglong(c, 'basic.ack delivery-tag');
    const bits = readOctet(c, 'basic.ack multiple');
    expectEnd(c, 'basic.ack');
    c.buf = EMPTY;
    const method = this.method;
    method.deliveryTag = deliveryTag;
    method.multiple = (bits & 1) !== 0;
    return method;
  }
}
