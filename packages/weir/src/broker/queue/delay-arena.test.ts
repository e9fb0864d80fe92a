import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageArena } from './delay-arena.js';

function message(index: number, bodyBytes = 10): { timestamp: number; id: Buffer; key: Buffer | null; tag: Buffer | null; headers: Buffer; body: Buffer } {
  return {
    timestamp: 1_700_000_000_000 + index,
    id: Buffer.from(`id-${index}`),
    key: index % 2 === 0 ? null : Buffer.from(`key-${index}`),
    tag: index % 3 === 0 ? Buffer.from('tagged') : null,
    headers: Buffer.from([1, 0, 2, 0, 0x61, 0x62, 0, 1, 0, 0, 0, 0x63]),
    body: Buffer.alloc(bodyBytes, index & 0xff),
  };
}

describe('delay arena', () => {
  it('delay arena: a message reads back as it was put, also after later puts fill more chunks', () => {
    const arena = new MessageArena(256);
    const slots = Array.from({ length: 50 }, (_, index) => arena.put(message(index, index * 3)));
    assert.ok(slots.every((slot) => slot >= 0));
    for (const [index, slot] of slots.entries()) {
      const expected = message(index, index * 3);
      const got = arena.read(slot);
      assert.equal(got.timestamp, expected.timestamp);
      assert.deepEqual(got.id, expected.id);
      assert.deepEqual(got.key, expected.key);
      assert.equal(got.tag, expected.tag === null ? null : expected.tag.toString());
      assert.deepEqual(got.headers, expected.headers);
      assert.deepEqual(got.body, expected.body);
    }
  });

  it('delay arena: a chunk goes once all its messages are released; a large message gets a chunk of its own', () => {
    const arena = new MessageArena(1024);
    assert.equal(arena.bytes, 0);
    const small = [arena.put(message(0)), arena.put(message(1))];
    assert.equal(arena.bytes, 1024);
    const large = arena.put(message(2, 5000));
    assert.equal(arena.bytes, 1024 + MessageArena.recordBytes(message(2, 5000)));
    const view = arena.read(small[0]!).body;
    arena.release(small[0]!);
    assert.equal(arena.bytes, 1024 + MessageArena.recordBytes(message(2, 5000)), 'the chunk still holds a live message');
    arena.release(small[1]!);
    assert.equal(arena.bytes, MessageArena.recordBytes(message(2, 5000)));
    assert.deepEqual(view, message(0).body, 'a view handed out stays valid after its chunk is dropped');
    assert.throws(() => arena.read(small[0]!), /not live/);
    arena.release(large);
    assert.equal(arena.bytes, 0);
  });

  it('delay arena: fields over their length fields are refused (-1), not truncated', () => {
    const arena = new MessageArena(1024);
    assert.equal(arena.put({ ...message(0), id: Buffer.alloc(256) }), -1);
    assert.equal(arena.put({ ...message(0), tag: Buffer.alloc(256) }), -1);
    assert.equal(arena.put({ ...message(0), key: Buffer.alloc(0xffff) }), -1);
    assert.equal(arena.bytes, 0);
    assert.throws(() => new MessageArena(32), RangeError);
  });
});
