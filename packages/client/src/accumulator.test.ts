import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Accumulator, SEQUENCE_MODULUS, type AccumulatorOptions, type PartitionQueue, type PendingMessage } from './accumulator.js';

function message(bytes: number): PendingMessage {
  return {
    message: { id: null, key: null, tag: null, headers: [], timestamp: -1, body: Buffer.alloc(0) },
    bytes,
    idBytes: null,
    keyBytes: null,
    resolve: () => {},
    reject: () => {},
  };
}

function setup(options: Partial<AccumulatorOptions> = {}): { accumulator: Accumulator; queue: PartitionQueue; woken: PartitionQueue[] } {
  const woken: PartitionQueue[] = [];
  const accumulator = new Accumulator({ lingerMs: 1000, maxBatchBytes: 1000, maxBatchMessages: 10, ...options }, (queue) => woken.push(queue));
  return { accumulator, queue: accumulator.queueOf(accumulator.topic('t'), 0), woken };
}

/** How far sequence `later` lies after `earlier`, modulo the sequence space. */
function sequenceDistance(earlier: number, later: number): number {
  return (((later - earlier) % SEQUENCE_MODULUS) + SEQUENCE_MODULUS) % SEQUENCE_MODULUS;
}

const tick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('client: producer batching', () => {
  it('client: batching keeps a batch open until linger expires', async () => {
    const { accumulator, queue, woken } = setup({ lingerMs: 30 });
    accumulator.append(queue, message(10), 2, true);
    accumulator.append(queue, message(10), 2, true);
    assert.equal(accumulator.hasSendable(queue), false);
    assert.equal(accumulator.takeSendable(queue), null);
    await sleep(10);
    assert.equal(woken.length, 0);
    await sleep(40);
    assert.deepEqual(woken, [queue]);
    const batch = accumulator.takeSendable(queue)!;
    assert.equal(batch.count, 2);
    assert.equal(batch.bytes, 20);
    assert.equal(queue.open, null);
  });

  it('client: batching with linger 0 sends what one tick produced as one batch', async () => {
    const { accumulator, queue, woken } = setup({ lingerMs: 0 });
    for (let index = 0; index < 5; index++) accumulator.append(queue, message(1), 2, true);
    assert.equal(accumulator.hasSendable(queue), false);
    await tick();
    assert.deepEqual(woken, [queue]);
    assert.equal(accumulator.takeSendable(queue)!.count, 5);
  });

  it('client: batching closes a batch at maxBatchMessages and wakes the sender at once', () => {
    const { accumulator, queue, woken } = setup({ maxBatchMessages: 3 });
    for (let index = 0; index < 7; index++) accumulator.append(queue, message(1), 2, true);
    assert.equal(woken.length, 2);
    assert.deepEqual(
      queue.ready.map((batch) => batch.count),
      [3, 3],
    );
    assert.equal(queue.open!.count, 1);
    accumulator.clearTimers();
  });

  it('client: batching closes a batch before it would exceed maxBatchBytes', () => {
    const { accumulator, queue } = setup({ maxBatchBytes: 100 });
    accumulator.append(queue, message(60), 2, true);
    accumulator.append(queue, message(30), 2, true);
    accumulator.append(queue, message(30), 2, true); // 120 > 100: closes the first batch
    assert.deepEqual(
      queue.ready.map((batch) => batch.bytes),
      [90],
    );
    accumulator.append(queue, message(70), 2, true); // reaches 100: closes at once
    assert.deepEqual(
      queue.ready.map((batch) => batch.bytes),
      [90, 100],
    );
    assert.equal(queue.open, null);
  });

  it('client: batching gives a message larger than maxBatchBytes a batch of its own', () => {
    const { accumulator, queue } = setup({ maxBatchBytes: 100 });
    accumulator.append(queue, message(10), 2, true);
    accumulator.append(queue, message(500), 2, true);
    assert.deepEqual(
      queue.ready.map((batch) => [batch.count, batch.bytes]),
      [
        [1, 10],
        [1, 500],
      ],
    );
  });

  it('client: batching starts a new batch when the acks level changes', () => {
    const { accumulator, queue } = setup();
    accumulator.append(queue, message(1), 2, true);
    accumulator.append(queue, message(1), 0, false);
    accumulator.append(queue, message(1), 0, false);
    accumulator.append(queue, message(1), 1, true);
    assert.deepEqual(
      queue.ready.map((batch) => [batch.acks, batch.count]),
      [
        [2, 1],
        [0, 2],
      ],
    );
    assert.equal(queue.open!.acks, 1);
    accumulator.clearTimers();
  });

  it('client: batching numbers idempotent batches in closing order and skips the others', () => {
    const { accumulator, queue } = setup({ maxBatchMessages: 2 });
    for (let index = 0; index < 4; index++) accumulator.append(queue, message(1), 2, true);
    accumulator.append(queue, message(1), 0, false);
    accumulator.close(queue);
    accumulator.append(queue, message(1), 2, true);
    accumulator.close(queue);
    assert.deepEqual(
      queue.ready.map((batch) => batch.sequence),
      [0, 2, -1, 4],
    );
    assert.equal(queue.nextSequence, 5);
    accumulator.renumber(queue, queue.ready.slice(1), 0);
    assert.deepEqual(
      queue.ready.map((batch) => batch.sequence),
      [0, 0, -1, 2],
    );
    assert.equal(queue.nextSequence, 3);
  });

  it('client: batching wraps sequences at 2^31 like the broker', () => {
    const { accumulator, queue } = setup({ maxBatchMessages: 3 });
    queue.nextSequence = SEQUENCE_MODULUS - 2;
    for (let index = 0; index < 6; index++) accumulator.append(queue, message(1), 2, true);
    assert.deepEqual(
      queue.ready.map((batch) => batch.sequence),
      [SEQUENCE_MODULUS - 2, 1],
    );
    assert.equal(queue.nextSequence, 4);
    assert.equal(sequenceDistance(SEQUENCE_MODULUS - 2, 1), 3);
  });

  it('client: batching treats every open batch as due while flushing', () => {
    const { accumulator, queue } = setup({ lingerMs: 60_000 });
    accumulator.append(queue, message(1), 2, true);
    assert.equal(accumulator.hasSendable(queue), false);
    accumulator.flushing++;
    assert.equal(accumulator.hasSendable(queue), true);
    assert.equal(accumulator.takeSendable(queue)!.count, 1);
    accumulator.flushing--;
    accumulator.clearTimers();
  });

  it('client: batching keeps a due batch open (and growing) until the sender takes it', async () => {
    const { accumulator, queue } = setup({ lingerMs: 5 });
    accumulator.append(queue, message(1), 2, true);
    await sleep(20);
    assert.equal(queue.openDue, true);
    accumulator.append(queue, message(1), 2, true);
    assert.equal(accumulator.takeSendable(queue)!.count, 2);
  });
});
