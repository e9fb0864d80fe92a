import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DeliveryOutbox } from './delivery-outbox.js';
import type { Delivery } from './shared-subscription.js';

function delivery(offset: number, bodyBytes: number): Delivery {
  return { partition: 0, offset, deliveryCount: 1, topic: 't', message: { offset, body: Buffer.alloc(bodyBytes) } } as unknown as Delivery;
}

/** A socket that takes `capacity` writes, then reports full until drained by the test. */
class FakeSocket {
  written: number[][] = [];
  writesLeft: number;
  drainWaiters: Array<() => void> = [];
  events: string[] = [];

  constructor(private readonly capacity: number) {
    this.writesLeft = capacity;
  }

  write(deliveries: readonly Delivery[], from: number, to: number): boolean {
    assert.equal(this.drainWaiters.length, 0, 'nothing is written while waiting for a drain');
    assert.ok(to > from, 'every write carries at least one delivery');
    this.written.push(deliveries.slice(from, to).map((entry) => entry.offset));
    this.writesLeft--;
    return this.writesLeft > 0;
  }

  whenWritable(resume: () => void): void {
    this.drainWaiters.push(resume);
  }

  drain(): void {
    this.writesLeft = this.capacity;
    for (const resume of this.drainWaiters.splice(0)) resume();
  }
}

function outboxOn(socket: FakeSocket): DeliveryOutbox {
  return new DeliveryOutbox({
    write: (deliveries, from, to) => socket.write(deliveries, from, to),
    whenWritable: (resume) => socket.whenWritable(resume),
    paused: () => socket.events.push('paused'),
    resumed: () => socket.events.push('resumed'),
  });
}

describe('DeliveryOutbox', () => {
  it('broker: writes slices of about 64 KiB of bodies, in order', () => {
    const socket = new FakeSocket(1000);
    const outbox = outboxOn(socket);
    outbox.add(Array.from({ length: 10 }, (_, index) => delivery(index, 20_000)));
    // 4 × 20,000 reach 64 KiB: a slice ends with the body that crosses it.
    assert.deepEqual(socket.written, [
      [0, 1, 2, 3],
      [4, 5, 6, 7],
      [8, 9],
    ]);
    assert.deepEqual(socket.events, []);
  });

  it('broker: a full socket pauses the consumer; after the drain the rest goes out, then it resumes', () => {
    const socket = new FakeSocket(1);
    const outbox = outboxOn(socket);
    outbox.add(Array.from({ length: 6 }, (_, index) => delivery(index, 40_000)));
    assert.deepEqual(socket.written, [[0, 1]]);
    assert.deepEqual(socket.events, ['paused']);
    outbox.add([delivery(6, 10)]);
    assert.deepEqual(socket.written, [[0, 1]], 'nothing more while waiting');
    // Every write fills this socket: each drain lets one slice out, and the drain after the last resumes.
    socket.drain();
    socket.drain();
    socket.drain();
    assert.deepEqual(socket.written, [[0, 1], [2, 3], [4, 5], [6]]);
    assert.deepEqual(socket.events, ['paused']);
    socket.drain();
    assert.deepEqual(socket.events, ['paused', 'resumed']);
  });

  it('broker: clear forgets what is not written; the drain then only resumes', () => {
    const socket = new FakeSocket(1);
    const outbox = outboxOn(socket);
    outbox.add(Array.from({ length: 4 }, (_, index) => delivery(index, 40_000)));
    outbox.clear();
    socket.drain();
    assert.deepEqual(socket.written, [[0, 1]]);
    assert.deepEqual(socket.events, ['paused', 'resumed']);
  });

  it('broker: every delivery is written once, in order, whatever the batches and the socket do (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.integer({ min: 0, max: 70_000 }), { minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.boolean(), { maxLength: 20 }),
        (batches, capacity, drains) => {
          const socket = new FakeSocket(capacity);
          const outbox = outboxOn(socket);
          let offset = 0;
          const expected: number[] = [];
          for (const [index, sizes] of batches.entries()) {
            outbox.add(sizes.map((size) => delivery(offset++, size)));
            for (let i = offset - sizes.length; i < offset; i++) expected.push(i);
            if (drains[index]) socket.drain();
          }
          while (socket.drainWaiters.length > 0) socket.drain();
          assert.deepEqual(socket.written.flat(), expected);
          const pauses = socket.events.filter((event) => event === 'paused').length;
          assert.equal(socket.events.filter((event) => event === 'resumed').length, pauses, 'every pause ends in a resume');
        },
      ),
      { numRuns: 300 },
    );
  });
});
