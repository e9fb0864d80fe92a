import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AMQP_METHODS_PATH, renderAmqpMethods } from '../../../../../../scripts/gen-amqp-codec.js';
import {
  AmqpSyntaxError,
  classes,
  decodeMethod,
  encodeMethod,
  encodeMethodFrame,
  Field,
  methodHasContent,
  methodKey,
  methodPayloadSize,
  methods,
  methodSpecById,
  methodSpecByName,
  ReplyCode,
  type AmqpMethod,
} from './index.js';
import { anyMethodArb, methodArb } from './test-support.js';

/** Hex bytes; whitespace is ignored, and so is everything from `#` to the end of a line. */
const hex = (text: string): Buffer => Buffer.from(text.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');

function syntaxError(replyCode: number, pattern: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof AmqpSyntaxError, `expected AmqpSyntaxError, got ${String(error)}`);
    assert.equal(error.replyCode, replyCode);
    assert.match(error.message, pattern);
    return true;
  };
}

describe('amqp codec: methods.generated.ts', () => {
  it('is what scripts/gen-amqp-codec.ts renders from spec.ts', () => {
    assert.ok(
      readFileSync(AMQP_METHODS_PATH, 'utf8') === renderAmqpMethods(),
      'methods.generated.ts differs from the schema: run `node --import tsx scripts/gen-amqp-codec.ts`',
    );
  });
});

describe('amqp codec: spec', () => {
  it('has unique ids and names, and the classes the broker speaks', () => {
    assert.deepEqual(
      classes.map((amqp) => `${amqp.id} ${amqp.name}`),
      ['10 connection', '20 channel', '40 exchange', '50 queue', '60 basic', '85 confirm', '90 tx'],
    );
    assert.equal(new Set(methods.map((m) => methodKey(m.classId, m.methodId))).size, methods.length);
    assert.equal(new Set(methods.map((m) => m.name)).size, methods.length);
    assert.equal(methods.length, 64);
    for (const method of methods) {
      assert.equal(methodSpecById(method.classId, method.methodId), method);
      assert.equal(methodSpecByName(method.name), method);
      for (const response of method.responses) assert.ok(methodSpecByName(response), `${method.name} → ${response}`);
    }
  });

  it('marks exactly the four content-bearing methods', () => {
    assert.deepEqual(
      methods.filter((m) => m.content).map((m) => m.name),
      ['basic.publish', 'basic.return', 'basic.deliver', 'basic.get-ok'],
    );
    for (const method of methods) assert.equal(methodHasContent(method.classId, method.methodId), method.content);
    assert.equal(methodHasContent(60, 99), false);
  });
});

describe('amqp codec: known method encodings', () => {
  it('connection.start, computed by hand', () => {
    const start: AmqpMethod = {
      method: 'connection.start',
      versionMajor: 0,
      versionMinor: 9,
      serverProperties: new Map([['product', Field.string('Weir')]]),
      mechanisms: Buffer.from('PLAIN'),
      locales: Buffer.from('en_US'),
    };
    const payload = hex(`
      000a 000a                      # class 10, method 10
      00 09                          # version 0-9
      00000011                       # table of 17 bytes:
        07 70726f64756374            #   "product"
        53 00000004 57656972         #   S "Weir"
      00000005 504c41494e            # mechanisms "PLAIN"
      00000005 656e5f5553            # locales "en_US"
    `);
    assert.equal(encodeMethod(start).toString('hex'), payload.toString('hex'));
    assert.deepEqual(decodeMethod(payload), start);
    assert.equal(encodeMethodFrame(0, start).toString('hex'), `010000${'0000002d'}${payload.toString('hex')}ce`);
  });

  it('basic.publish: reserved ticket written as zero, bits packed low bit first', () => {
    const frame = encodeMethodFrame(1, { method: 'basic.publish', exchange: 'amq.direct', routingKey: 'key', mandatory: true, immediate: false });
    assert.equal(frame.toString('hex'), '01' + '0001' + '00000016' + '003c0028' + '0000' + '0a616d712e646972656374' + '036b6579' + '01' + 'ce');
    const both = encodeMethod({ method: 'basic.publish', exchange: '', routingKey: '', mandatory: true, immediate: true });
    assert.equal(both.toString('hex'), '003c0028' + '0000' + '00' + '00' + '03');
  });

  it('queue.declare-ok and basic.ack', () => {
    assert.deepEqual(decodeMethod(hex('0032000b 02 7131 00000003 00000001')), { method: 'queue.declare-ok', queue: 'q1', messageCount: 3, consumerCount: 1 });
    assert.deepEqual(decodeMethod(hex('003c0050 0000000100000002 01')), { method: 'basic.ack', deliveryTag: 2 ** 32 + 2, multiple: true });
  });

  it('exchange.declare: five bits in one octet, then the table', () => {
    const declare: AmqpMethod = {
      method: 'exchange.declare',
      exchange: 'x',
      type: 'topic',
      passive: false,
      durable: true,
      autoDelete: false,
      internal: true,
      noWait: true,
      arguments: new Map([['alternate-exchange', Field.string('ae')]]),
    };
    const bytes = encodeMethod(declare);
    const table = '0000001a' + '12' + Buffer.from('alternate-exchange').toString('hex') + '53' + '00000002' + '6165';
    assert.equal(bytes.toString('hex'), '0028000a' + '0000' + '0178' + '05746f706963' + '1a' + table);
    assert.deepEqual(decodeMethod(bytes), declare);
  });

  it('reads reserved fields whatever they hold (old clients send 0-8 values)', () => {
    // connection.open with capabilities "x" and insist set, as a 0-8-era client might send.
    assert.deepEqual(decodeMethod(hex('000a0028 01 2f 01 78 01')), { method: 'connection.open', virtualHost: '/' });
    // channel.open-ok with a non-empty channel-id longstr.
    assert.deepEqual(decodeMethod(hex('0014000b 00000002 6869')), { method: 'channel.open-ok' });
  });

  it('delivery tags up to 2^53 - 1 decode, larger ones are a syntax error', () => {
    assert.deepEqual(decodeMethod(hex('003c0050 001fffffffffffff 00')), { method: 'basic.ack', deliveryTag: Number.MAX_SAFE_INTEGER, multiple: false });
    assert.throws(() => decodeMethod(hex('003c0050 0020000000000000 00')), syntaxError(502, /basic\.ack delivery-tag: longlong 9007199254740992 is above 2\^53 - 1/));
  });
});

describe('amqp codec: every method round-trips', () => {
  for (const spec of methods) {
    it(spec.name, () => {
      fc.assert(
        fc.property(methodArb(spec), (method) => {
          const bytes = encodeMethod(method);
          assert.equal(bytes.length, methodPayloadSize(method));
          assert.equal(bytes.readUInt16BE(0), spec.classId);
          assert.equal(bytes.readUInt16BE(2), spec.methodId);
          const decoded = decodeMethod(bytes);
          assert.deepEqual(decoded, method);
          assert.deepEqual(encodeMethod(decoded), bytes);
        }),
        { seed: 0x5eed + spec.classId * 1000 + spec.methodId, numRuns: 60 },
      );
    });
  }
});

describe('amqp codec: decode errors', () => {
  it('names the method and field that runs past the end of the frame', () => {
    const publish = encodeMethod({ method: 'basic.publish', exchange: 'ex', routingKey: 'routing', mandatory: false, immediate: false });
    for (let length = 4; length < publish.length; length++) {
      assert.throws(() => decodeMethod(publish.subarray(0, length)), (error: unknown) => {
        assert.ok(error instanceof AmqpSyntaxError);
        assert.equal(error.replyCode, ReplyCode.SYNTAX_ERROR);
        assert.equal(error.classId, 60);
        assert.equal(error.methodId, 40);
        assert.match(error.message, /^basic\.publish (reserved-1|exchange|routing-key|mandatory): .* runs past the end of the frame/);
        return true;
      });
    }
    const truncated = Buffer.concat([hex('003c0028 0000 02 6578'), Buffer.from([200, 0x61])]);
    assert.throws(() => decodeMethod(truncated), syntaxError(502, /^basic\.publish routing-key: shortstr length 200 runs past the end of the frame \(1 bytes left\)$/));
  });

  it('rejects bytes after the last field', () => {
    assert.throws(() => decodeMethod(hex('005a000a 00')), syntaxError(502, /^tx\.select: 1 bytes after the last field$/));
  });

  it('rejects a payload too short for its ids', () => {
    assert.throws(() => decodeMethod(hex('003c')), syntaxError(502, /no room for its class-id and method-id/));
  });

  it('answers unknown classes and methods with 540 NOT_IMPLEMENTED, naming the ids', () => {
    assert.throws(() => decodeMethod(hex('001e000a 00')), (error: unknown) => {
      assert.ok(error instanceof AmqpSyntaxError);
      assert.equal(error.replyCode, ReplyCode.NOT_IMPLEMENTED);
      assert.equal(error.classId, 30);
      assert.equal(error.methodId, 10);
      assert.match(error.message, /no class 30 \(method 10\)/);
      return true;
    });
    assert.throws(() => decodeMethod(hex('003c0063')), syntaxError(540, /basic \(class 60\) has no method 99/));
  });
});

describe('amqp codec: encode errors', () => {
  it('refuses shortstr over 255 UTF-8 bytes, naming the field', () => {
    assert.throws(
      () => encodeMethod({ method: 'basic.consume-ok', consumerTag: 'é'.repeat(128) }),
      (error: unknown) => error instanceof RangeError && /basic\.consume-ok consumer-tag: shortstr of 256 UTF-8 bytes is longer than 255/.test(error.message),
    );
    assert.equal(encodeMethod({ method: 'basic.consume-ok', consumerTag: 'x'.repeat(255) }).length, 4 + 256);
  });

  it('refuses numbers outside their field', () => {
    assert.throws(() => encodeMethod({ method: 'connection.tune', channelMax: 65536, frameMax: 0, heartbeat: 0 }), /connection\.tune channel-max: 65536 is not an integer in \[0, 65535\]/);
    assert.throws(() => encodeMethod({ method: 'basic.ack', deliveryTag: -1, multiple: false }), RangeError);
    assert.throws(() => encodeMethod({ method: 'basic.ack', deliveryTag: 1.5, multiple: false }), RangeError);
    assert.throws(() => encodeMethod({ method: 'nope' } as unknown as AmqpMethod), /unknown AMQP method "nope"/);
  });

  it('encodes a random mix of methods back to back through one decoder', () => {
    fc.assert(
      fc.property(fc.array(anyMethodArb, { maxLength: 10 }), (list) => {
        for (const method of list) assert.deepEqual(decodeMethod(encodeMethod(method)), method);
      }),
      { seed: 91, numRuns: 50 },
    );
  });
});
