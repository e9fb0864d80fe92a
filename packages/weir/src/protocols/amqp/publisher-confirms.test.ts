import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { PublisherConfirms } from './publisher-confirms.js';

/** Records what a client would see: every answered tag, how, and whether it came under a `multiple` ack. */
class RecordingSink {
  readonly answers = new Map<number, 'ack' | 'nack'>();
  private highestMultiple = 0;

  ack(deliveryTag: number, multiple: boolean): void {
    if (!multiple) return this.answer(deliveryTag, 'ack');
    // A multiple ack answers every tag up to it that was not answered yet (RabbitMQ's confirms extension).
    for (let tag = this.highestMultiple + 1; tag <= deliveryTag; tag++) if (!this.answers.has(tag)) this.answers.set(tag, 'ack');
    this.highestMultiple = deliveryTag;
  }

  nack(deliveryTag: number, multiple: boolean): void {
    assert.equal(multiple, false, 'nacks are sent one by one');
    this.answer(deliveryTag, 'nack');
  }

  private answer(tag: number, how: 'ack' | 'nack'): void {
    assert.ok(!this.answers.has(tag), `tag ${tag} answered twice`);
    assert.ok(tag > this.highestMultiple, `tag ${tag} answered alone after a multiple ack covered it`);
    this.answers.set(tag, how);
  }
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('PublisherConfirms', () => {
  it('answers every publish once, acked when all its appends succeeded and nacked otherwise, in any settle order (property)', async () => {
    const publish = fc.record({ appends: fc.integer({ min: 0, max: 3 }), failures: fc.integer({ min: 0, max: 3 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(publish, { maxLength: 3000 }), fc.integer({ min: 1, max: 500 }), fc.integer(), async (publishes, round, seed) => {
        const sink = new RecordingSink();
        const confirms = new PublisherConfirms(sink);
        // Each append outcome, shuffled by the seed, settled `round` at a time with a flush between rounds.
        const outcomes: Array<{ tag: number; ok: boolean }> = [];
        for (const { appends, failures } of publishes) {
          const tag = confirms.next(appends);
          for (let index = 0; index < appends; index++) outcomes.push({ tag, ok: index >= failures });
        }
        let state = seed;
        for (let index = outcomes.length - 1; index > 0; index--) {
          state = (Math.imul(state, 1103515245) + 12345) | 0;
          const other = (state >>> 1) % (index + 1);
          [outcomes[index], outcomes[other]] = [outcomes[other]!, outcomes[index]!];
        }
        for (let start = 0; start < outcomes.length; start += round) {
          for (const { tag, ok } of outcomes.slice(start, start + round)) confirms.settled(tag, ok);
          await settle();
        }
        await settle();
        assert.equal(confirms.outstanding, 0);
        assert.equal(sink.answers.size, publishes.length);
        publishes.forEach(({ appends, failures }, index) => {
          assert.equal(sink.answers.get(index + 1), failures > 0 && appends > 0 ? 'nack' : 'ack', `tag ${index + 1}`);
        });
      }),
      { numRuns: 60 },
    );
  });

  it('covers a completed prefix with one multiple ack', async () => {
    const sent: Array<[number, boolean]> = [];
    const confirms = new PublisherConfirms({ ack: (tag, multiple) => sent.push([tag, multiple]), nack: () => assert.fail('no nack expected') });
    for (let index = 0; index < 5000; index++) confirms.next(1);
    for (let tag = 1; tag <= 5000; tag++) confirms.settled(tag, true);
    assert.equal(confirms.outstanding, 5000);
    await settle();
    assert.deepEqual(sent, [[5000, true]]);
    assert.equal(confirms.outstanding, 0);
  });

  it('ignores a settle for a tag it never numbered or already answered', async () => {
    const sent: Array<[number, boolean]> = [];
    const confirms = new PublisherConfirms({ ack: (tag, multiple) => sent.push([tag, multiple]), nack: () => assert.fail('no nack expected') });
    const tag = confirms.next(1);
    confirms.settled(tag + 1, false);
    confirms.settled(0, false);
    confirms.settled(tag, true);
    await settle();
    confirms.settled(tag, false);
    await settle();
    assert.deepEqual(sent, [[1, false]]);
  });
});
