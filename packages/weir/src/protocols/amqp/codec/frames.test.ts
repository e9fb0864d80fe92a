import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  AmqpFrameError,
  decodeContentHeader,
  decodeMethod,
  basicDeliverSize,
  encodeBasicDeliver,
  encodeContentFrames,
  encodeContentHeader,
  encodeFrame,
  encodeMethodFrame,
  encodeMethodWithContent,
  Field,
  FRAME_END,
  FrameParser,
  FrameType,
  heartbeatFrame,
  parseProtocolHeader,
  PROTOCOL_HEADER,
  putBasicDeliver,
  ReplyCode,
  type Frame,
} from './index.js';

function frameError(pattern: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof AmqpFrameError, `expected AmqpFrameError, got ${String(error)}`);
    assert.equal(error.replyCode, ReplyCode.FRAME_ERROR);
    assert.match(error.message, pattern);
    return true;
  };
}

function drain(parser: FrameParser): Frame[] {
  const frames: Frame[] = [];
  for (let frame = parser.next(); frame !== null; frame = parser.next()) frames.push(frame);
  return frames;
}

/** Frames as comparable plain values. */
function plain(frames: Frame[]): { type: number; channel: number; payload: string }[] {
  return frames.map((frame) => ({ type: frame.type, channel: frame.channel, payload: frame.payload.toString('hex') }));
}

const properties = encodeContentHeader(60, 3, { contentType: 'text/plain', headers: new Map([['k', Field.string('v')]]) }).subarray(12);
const sample: Buffer[] = [
  encodeMethodFrame(0, { method: 'connection.tune-ok', channelMax: 2047, frameMax: 131072, heartbeat: 60 }),
  encodeMethodFrame(1, { method: 'basic.publish', exchange: 'amq.topic', routingKey: 'a.b', mandatory: false, immediate: false }),
  ...encodeContentFrames(1, 60, properties, Buffer.from('abc'), 0),
  heartbeatFrame(),
  encodeFrame(FrameType.Body, 7, Buffer.alloc(0)),
];
const stream = Buffer.concat(sample);
const expected = [
  { type: 1, channel: 0, payload: sample[0]!.subarray(7, -1).toString('hex') },
  { type: 1, channel: 1, payload: sample[1]!.subarray(7, -1).toString('hex') },
  { type: 2, channel: 1, payload: sample[2]!.subarray(7, -1).toString('hex') },
  { type: 3, channel: 1, payload: '616263' },
  { type: 8, channel: 0, payload: '' },
  { type: 3, channel: 7, payload: '' },
];

describe('amqp codec: FrameParser', () => {
  it('reads many frames from one chunk, as views of it', () => {
    const parser = new FrameParser({ maxFrameSize: 4096 });
    parser.push(stream);
    const frames = drain(parser);
    assert.deepEqual(plain(frames), expected);
    for (const frame of frames) assert.equal(frame.payload.buffer, stream.buffer);
    assert.equal(parser.bufferedBytes, 0);
  });

  it('reads the same frames however the stream is cut', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const parser = new FrameParser({ maxFrameSize: 4096 });
      const frames: Frame[] = [];
      parser.push(stream.subarray(0, cut));
      frames.push(...drain(parser));
      parser.push(stream.subarray(cut));
      frames.push(...drain(parser));
      assert.deepEqual(plain(frames), expected, `cut at ${cut}`);
    }
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 12 }), (cuts) => {
        const points = [0, ...cuts.sort((a, b) => a - b), stream.length];
        const parser = new FrameParser({ maxFrameSize: 4096 });
        const frames: Frame[] = [];
        for (let i = 1; i < points.length; i++) {
          parser.push(stream.subarray(points[i - 1], points[i]));
          frames.push(...drain(parser));
        }
        assert.deepEqual(plain(frames), expected);
      }),
      { seed: 5, numRuns: 300 },
    );
  });

  it('advance gives in place what next gives as frames, however the stream is cut (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 12 }), (cuts) => {
        const points = [0, ...cuts.sort((a, b) => a - b), stream.length];
        const parser = new FrameParser({ maxFrameSize: 4096 });
        const frames: Array<{ type: number; channel: number; payload: string }> = [];
        for (let i = 1; i < points.length; i++) {
          parser.push(stream.subarray(points[i - 1], points[i]));
          while (parser.advance()) {
            frames.push({ type: parser.frameType, channel: parser.frameChannel, payload: parser.payloadBuf.toString('hex', parser.payloadStart, parser.payloadEnd) });
          }
        }
        assert.deepEqual(frames, expected);
      }),
      { seed: 6, numRuns: 300 },
    );
  });

  it('takes chunks pushed before the frames before them were read', () => {
    const parser = new FrameParser({ maxFrameSize: 4096 });
    for (let at = 0; at < stream.length; at += 5) parser.push(stream.subarray(at, at + 5));
    assert.deepEqual(plain(drain(parser)), expected);
  });

  it('fails on a missing frame-end, and keeps failing', () => {
    const bad = Buffer.from(sample[1]!);
    bad[bad.length - 1] = 0x00;
    const parser = new FrameParser({ maxFrameSize: 4096 });
    parser.push(Buffer.concat([sample[0]!, bad, sample[0]!]));
    assert.equal(parser.next()?.channel, 0);
    assert.throws(() => parser.next(), frameError(/frame-end octet is 0x00, not 0xce \(type 1, channel 1, 21 payload bytes\)/));
    parser.push(sample[0]!);
    assert.throws(() => parser.next(), frameError(/frame-end octet/));
    assert.equal(parser.bufferedBytes, 0);
  });

  it('refuses an oversized frame from its header alone, before buffering any of it', () => {
    const parser = new FrameParser({ maxFrameSize: 4096 });
    parser.push(Buffer.from([1, 0, 1, 0, 0, 0x10, 0x01]));
    assert.throws(() => parser.next(), frameError(/frame of 4097 payload bytes on channel 1 is over frame-max 4096/));
    const huge = new FrameParser({ maxFrameSize: 131072 });
    huge.push(Buffer.from([3, 0, 1, 0xff, 0xff, 0xff, 0xff]));
    assert.throws(() => huge.next(), frameError(/4294967295 payload bytes/));
  });

  it('accepts payloads up to frame-max (RabbitMQ tolerates the 8 bytes clients forget) and holds at most frame-max + 8', () => {
    const max = 4096;
    const frame = encodeFrame(FrameType.Body, 1, Buffer.alloc(max, 7));
    const parser = new FrameParser({ maxFrameSize: max });
    let frames: Frame[] = [];
    for (const byte of frame) {
      parser.push(Buffer.from([byte]));
      frames = frames.concat(drain(parser));
      assert.ok(parser.bufferedBytes <= max + 8);
    }
    assert.equal(frames.length, 1);
    assert.equal(frames[0]!.payload.length, max);
  });

  it('applies a changed maxFrameSize from the next header; 0 means no limit', () => {
    const parser = new FrameParser({ maxFrameSize: 0 });
    parser.push(encodeFrame(FrameType.Body, 1, Buffer.alloc(100_000)));
    assert.equal(parser.next()?.payload.length, 100_000);
    parser.maxFrameSize = 50_000;
    assert.equal(parser.maxFrameSize, 50_000);
    parser.push(encodeFrame(FrameType.Body, 1, Buffer.alloc(60_000)));
    assert.throws(() => parser.next(), frameError(/over frame-max 50000/));
    assert.throws(() => new FrameParser({ maxFrameSize: -1 }), RangeError);
  });

  it('rejects unknown frame types and heartbeats with a payload with 501, as RabbitMQ does', () => {
    const parser = new FrameParser({ maxFrameSize: 4096 });
    parser.push(encodeFrame(4, 0, Buffer.alloc(0)));
    assert.throws(() => parser.next(), frameError(/unknown frame type 4 on channel 0/));
    const heartbeat = new FrameParser({ maxFrameSize: 4096 });
    heartbeat.push(encodeFrame(FrameType.Heartbeat, 0, Buffer.from([1])));
    assert.throws(() => heartbeat.next(), frameError(/heartbeat frame with 1 payload bytes/));
  });
});

describe('amqp codec: protocol header', () => {
  it('accepts AMQP 0-9-1 and nothing else', () => {
    assert.equal(PROTOCOL_HEADER.toString('hex'), '414d515000000901');
    assert.deepEqual(parseProtocolHeader(Buffer.from('AMQP\x00\x00\x09\x01extra', 'latin1')), { ok: true });
    assert.deepEqual(parseProtocolHeader(Buffer.from('AMQP\x01\x01\x00\x0a', 'latin1')), { ok: false, reason: 'protocol header asks for AMQP 1-1-0-10; only 0-0-9-1 is spoken' });
    const http = parseProtocolHeader(Buffer.from('GET / HTTP/1.1'));
    assert.equal(http.ok, false);
    assert.match((http as { reason: string }).reason, /not an AMQP protocol header \(first bytes 474554202f204854\)/);
    assert.throws(() => parseProtocolHeader(Buffer.from('AMQP')), RangeError);
  });
});

describe('amqp codec: frame encoding', () => {
  it('frames a payload: type, channel, size, payload, 0xce', () => {
    assert.equal(encodeFrame(FrameType.Body, 0x0102, Buffer.from('hi')).toString('hex'), '03' + '0102' + '00000002' + '6869' + 'ce');
    assert.equal(heartbeatFrame().toString('hex'), '0800000000000' + '0ce');
    assert.throws(() => encodeFrame(1, 65536, Buffer.alloc(0)), /frame channel/);
  });

  it('splits a body so no frame exceeds frameMax, and sends no body frame for an empty body', () => {
    const body = Buffer.from(Array.from({ length: 10_000 }, (_, i) => i % 251));
    const frames = encodeContentFrames(3, 60, properties, body, 4096);
    assert.deepEqual(
      frames.map((frame) => frame.length),
      [8 + 12 + properties.length, 4096, 4096, 10_000 - 2 * 4088 + 8],
    );
    const parser = new FrameParser({ maxFrameSize: 4096 });
    for (const frame of frames) parser.push(frame);
    const [header, ...bodies] = drain(parser);
    assert.equal(header!.type, FrameType.Header);
    assert.equal(decodeContentHeader(header!.payload).bodySize, 10_000);
    assert.deepEqual(Buffer.concat(bodies.map((frame) => frame.payload)), body);
    assert.ok(bodies.every((frame) => frame.type === FrameType.Body && frame.channel === 3));

    assert.equal(encodeContentFrames(3, 60, properties, Buffer.alloc(0), 4096).length, 1);
    assert.equal(encodeContentFrames(3, 60, properties, body, 0).length, 2);
    const exact = encodeContentFrames(3, 60, properties, Buffer.alloc(4088), 4096);
    assert.deepEqual(exact.map((frame) => frame.length).slice(1), [4096]);
  });

  it('refuses a frameMax that cannot hold the header or a byte of body', () => {
    assert.throws(() => encodeContentFrames(1, 60, Buffer.alloc(5000), Buffer.alloc(1), 4096), /content header frame of 5020 bytes is over frameMax 4096/);
    assert.throws(() => encodeContentFrames(1, 60, properties, Buffer.alloc(1), 8), /frameMax 8 must be 0 \(no limit\) or an integer above 8/);
  });

  it('writes basic.deliver, header and body frames into one buffer, as the generic encoders would', () => {
    const body = Buffer.alloc(9000, 0x61);
    const deliver = encodeBasicDeliver(5, 'ctag-1', 2 ** 40 + 3, true, 'amq.fanout', 'rk', properties, body, 4096);
    const generic = Buffer.concat([
      encodeMethodFrame(5, { method: 'basic.deliver', consumerTag: 'ctag-1', deliveryTag: 2 ** 40 + 3, redelivered: true, exchange: 'amq.fanout', routingKey: 'rk' }),
      ...encodeContentFrames(5, 60, properties, body, 4096),
    ]);
    assert.deepEqual(deliver, generic);

    const parser = new FrameParser({ maxFrameSize: 4096 });
    parser.push(deliver);
    const [method, header, ...bodies] = drain(parser);
    assert.deepEqual(decodeMethod(method!.payload), {
      method: 'basic.deliver',
      consumerTag: 'ctag-1',
      deliveryTag: 2 ** 40 + 3,
      redelivered: true,
      exchange: 'amq.fanout',
      routingKey: 'rk',
    });
    assert.deepEqual(decodeContentHeader(header!.payload).rawProperties, properties);
    assert.deepEqual(Buffer.concat(bodies.map((frame) => frame.payload)), body);
    assert.equal(deliver[deliver.length - 1], FRAME_END);
  });

  it('writes several deliveries back to back into one buffer, each as encodeBasicDeliver would', () => {
    const deliveries = [
      { tag: 7, redelivered: false, exchange: '', routingKey: 'queue-ü', body: Buffer.from('first') },
      { tag: 8, redelivered: true, exchange: 'amq.direct', routingKey: 'rk', body: Buffer.alloc(9000, 0x62) },
      { tag: 9, redelivered: false, exchange: 'x', routingKey: '', body: Buffer.alloc(0) },
    ];
    const sizes = deliveries.map((d) => basicDeliverSize(3, 'ctag', d.tag, d.exchange, d.routingKey, properties, d.body, 4096));
    const out = Buffer.alloc(sizes.reduce((sum, size) => sum + size, 0), 0xee);
    let at = 0;
    for (const d of deliveries) at = putBasicDeliver(out, at, 3, 'ctag', d.tag, d.redelivered, d.exchange, d.routingKey, properties, d.body, 4096);
    assert.equal(at, out.length);
    assert.deepEqual(out, Buffer.concat(deliveries.map((d) => encodeBasicDeliver(3, 'ctag', d.tag, d.redelivered, d.exchange, d.routingKey, properties, d.body, 4096))));
    assert.throws(() => basicDeliverSize(1, 't', -1, '', '', properties, Buffer.alloc(0), 0), /basic\.deliver delivery-tag/);
    assert.throws(() => basicDeliverSize(1, 't', 1, 'e'.repeat(256), '', properties, Buffer.alloc(0), 0), /basic\.deliver exchange: shortstr of 256/);
  });

  it('validates basic.deliver arguments', () => {
    assert.throws(() => encodeBasicDeliver(1, 't'.repeat(256), 1, false, '', '', properties, Buffer.alloc(0), 0), /basic\.deliver consumer-tag: shortstr of 256/);
    assert.throws(() => encodeBasicDeliver(1, 't', -1, false, '', '', properties, Buffer.alloc(0), 0), /basic\.deliver delivery-tag/);
    assert.throws(() => encodeBasicDeliver(70_000, 't', 1, false, '', '', properties, Buffer.alloc(0), 0), /frame channel/);
  });

  it('writes other content-bearing methods with their content in one buffer', () => {
    const getOk = { method: 'basic.get-ok', deliveryTag: 1, redelivered: false, exchange: '', routingKey: 'q', messageCount: 4 } as const;
    assert.deepEqual(
      encodeMethodWithContent(2, getOk, properties, Buffer.from('xyz'), 4096),
      Buffer.concat([encodeMethodFrame(2, getOk), ...encodeContentFrames(2, 60, properties, Buffer.from('xyz'), 4096)]),
    );
    assert.throws(() => encodeMethodWithContent(2, { method: 'basic.ack', deliveryTag: 1, multiple: false }, properties, Buffer.alloc(0), 0), /basic\.ack carries no content/);
  });
});
