import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.js';
import { ErrorCode, isWeirError } from '../core/errors.js';
import { segmentFileName } from './commit-log.js';
import { crc32c } from './crc.js';
import { DiskMessageStore, type DiskMessageStoreOptions } from './disk-message-store.js';
import { FaultFileSystem } from './io/fault-file-system.js';
import { prepareMessage, RECORD_HEADER_BYTES } from './record-batch.js';
import { HookedFileSystem, pause } from './test-support.js';

function open(fs: HookedFileSystem | FaultFileSystem, options: Partial<DiskMessageStoreOptions> = {}): Promise<DiskMessageStore> {
  return DiskMessageStore.open({ dataDir: '/data', fs, checkpointIntervalMs: 0, retentionIntervalMs: 0, ...options });
}

describe('storage: disk message store', () => {
  it('storage: QueueInfo.bytes counts the visible messages only, not appends still waiting for their sync', async () => {
    const fs = new HookedFileSystem(new FaultFileSystem());
    const store = await open(fs);
    const queue = await store.createQueue('q');
    await store.append(queue.id, [{ body: 'first' }]);
    const visible = store.queue('q')!.bytes;
    assert.equal(visible, prepareMessage({ body: 'first' }).encodedBytes);

    const release = fs.hold('datasync');
    let written = false;
    const pending = store.append(queue.id, [{ body: 'x'.repeat(2000) }], { onWritten: () => (written = true) });
    await pause(20);
    assert.ok(written, 'the batch is in the file');
    assert.deepEqual(
      { endOffset: store.queue('q')!.endOffset, bytes: store.queue('q')!.bytes },
      { endOffset: 1, bytes: visible },
      'an unsynced append is neither readable nor counted',
    );
    release();
    await pending;
    assert.equal(store.queue('q')!.bytes, visible + prepareMessage({ body: 'x'.repeat(2000) }).encodedBytes);
    await store.close();
  });

  it('storage: the checkpoint timer queues at most one checkpoint behind a slow maintenance task', async () => {
    const clock = new ManualClock();
    const fs = new HookedFileSystem(new FaultFileSystem());
    const store = await open(fs, { clock, checkpointIntervalMs: 1 });
    await store.createQueue('doomed');
    let checkpoints = 0;
    const spied = store as unknown as { checkpoint: () => Promise<void> };
    const checkpoint = spied.checkpoint.bind(store);
    spied.checkpoint = () => {
      checkpoints++;
      return checkpoint();
    };
    // Deleting a queue removes its directory as maintenance: held, it keeps the timer's checkpoints waiting.
    const release = fs.hold('removeTree');
    const deleting = store.deleteQueue('doomed');
    clock.advance(10);
    await pause(40);
    release();
    await deleting;
    await pause(5);
    assert.equal(checkpoints, 1, `one checkpoint ran after ~40 ticks, not ${checkpoints}`);
    await store.close();
  });

  it('storage: recovery marks a batch that passed its checksum but does not parse as damaged, and goes on', async () => {
    const fs = new FaultFileSystem();
    const store = await open(fs);
    const queue = await store.createQueue('q');
    await store.append(queue.id, [{ key: 'k', body: 'before' }]);
    const bad = await store.append(queue.id, [{ id: 'abc', key: 'k', body: 'bad' }]);
    await store.append(queue.id, [{ key: 'k', body: 'after' }]);
    await store.abandon();

    // The id length of the middle batch's message runs far past it, yet the CRC matches (a writer's bug, say).
    const segment = `/data/commitlog/${segmentFileName(0)}`;
    const log = fs.readFileSync(segment)!;
    const batch = log.subarray(bad.position);
    batch[RECORD_HEADER_BYTES + 12] = 200;
    batch.writeUInt32LE(crc32c(batch.subarray(8, batch.readUInt32LE(0))), 4);
    fs.writeFileSync(segment, log);

    const reopened = await open(fs);
    const info = reopened.queue('q')!;
    assert.equal(info.endOffset, 3);
    assert.equal(info.damaged, true);
    assert.equal((await reopened.read(info.id, 0, { maxMessages: 1 })).messages[0]!.body.toString(), 'before');
    await assert.rejects(reopened.read(info.id, 1), (error) => isWeirError(error, ErrorCode.DataDamaged));
    assert.equal((await reopened.read(info.id, 2)).messages[0]!.body.toString(), 'after');
    await reopened.close();
  });
});
