import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConsumeQueue, DAMAGED_POSITION, ENTRY_BYTES } from './consume-queue.js';
import { HandleCache } from './handle-cache.js';
import { FaultFileSystem } from './io/fault-file-system.js';

async function openQueue(entriesPerFile = 8): Promise<ConsumeQueue> {
  const fs = new FaultFileSystem();
  return ConsumeQueue.open(fs, new HandleCache(fs, 16), '/q', entriesPerFile, 0);
}

/** Appends entries for batches at `positions` (one message each). */
function appendAt(queue: ConsumeQueue, positions: readonly number[]): void {
  for (const position of positions) queue.append(position, 100, 0, 1, 0);
}

describe('storage: consume queue', () => {
  it('storage: countBelow counts only entries below the position, also when a flush wrote entries past it', async () => {
    const queue = await openQueue();
    const positions = Array.from({ length: 20 }, (_, index) => index * 100);
    appendAt(queue, positions.slice(0, 13));
    // A background flush writes every entry, including those of batches at or past the position a checkpoint records.
    await queue.flush(false);
    appendAt(queue, positions.slice(13));
    for (const position of [0, 1, 100, 450, 800, 1200, 1250, 1300, 1301, 1999, 2000, 5000]) {
      const expected = positions.filter((at) => at < position).length;
      assert.equal(await queue.countBelow(position), expected, `below ${position}`);
    }
  });

  it('storage: countBelow counts entries of damaged batches as below, wherever the files end', async () => {
    // Recovery adds damaged entries below the log's end at open, so every later checkpoint lies past what precedes them.
    const queue = await openQueue();
    appendAt(queue, [0, 100, DAMAGED_POSITION, DAMAGED_POSITION, 300, 400]);
    assert.equal(await queue.countBelow(300), 4);
    await queue.flush(false);
    assert.equal(await queue.countBelow(300), 4);
    assert.equal(await queue.countBelow(350), 5);
    assert.equal(await queue.countBelow(200), 4);
  });

  it('storage: a flush gives back the memory a burst took, down to what is still unflushed', async () => {
    const queue = await openQueue(1 << 20);
    const idle = queue.memoryBytes;
    assert.equal(idle, 16 * ENTRY_BYTES);
    appendAt(queue, Array.from({ length: 5000 }, (_, index) => index));
    assert.ok(queue.memoryBytes >= 5000 * ENTRY_BYTES);
    await queue.flush(false);
    assert.equal(queue.unflushedEntries, 0);
    assert.equal(queue.memoryBytes, idle);
    assert.equal((await queue.entry(4999)).position, 4999, 'flushed entries read back from the file');
    appendAt(queue, [5000, 5001]);
    assert.equal((await queue.entry(5001)).position, 5001);
  });

  it('storage: entries appended while a flush writes stay in memory, in order, in a tail sized for them', async () => {
    const queue = await openQueue(1 << 20);
    appendAt(queue, Array.from({ length: 3000 }, (_, index) => index));
    const flushing = queue.flush(false);
    appendAt(queue, Array.from({ length: 40 }, (_, index) => 3000 + index));
    await flushing;
    assert.equal(queue.unflushedEntries, 40);
    assert.equal(queue.memoryBytes, 64 * ENTRY_BYTES, 'the next power of two above 40 entries');
    for (const offset of [0, 2999, 3000, 3039]) assert.equal((await queue.entry(offset)).position, offset);
  });
});
