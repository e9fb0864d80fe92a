import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, isWeirError } from '../core/errors.js';
import { DiskMessageStore } from './disk-message-store.js';
import { FaultFileSystem } from './io/fault-file-system.js';
import type { FileSystem } from './io/file-system.js';
import type { MessageStore } from './message-store.js';
import { HookedFileSystem, pause } from './test-support.js';

const open = (fs: FileSystem) =>
  DiskMessageStore.open({ dataDir: '/data', fs, segmentBytes: 4096, checkpointIntervalMs: 0, retentionIntervalMs: 0 });

async function bodies(store: MessageStore, name: string): Promise<string[]> {
  const queue = store.queue(name)!;
  return (await store.read(queue.id, queue.startOffset)).messages.map((message) => message.body.toString());
}

describe('storage: failed writes', () => {
  it('storage: a failed write rejects its appends, and a retry from the rejection handler lands at the good end', async () => {
    const fs = new FaultFileSystem();
    const store = await open(fs);
    const queue = await store.createQueue('q');
    await store.append(queue.id, [{ body: 'a' }]);
    fs.failNextWrite('ENOSPC');
    let retried: Promise<unknown> | null = null;
    await assert.rejects(
      store.append(queue.id, [{ body: 'b' }]).catch((error: unknown) => {
        retried = store.append(queue.id, [{ body: 'b-retry' }]);
        throw error;
      }),
      (error) => isWeirError(error, ErrorCode.StorageIo) && error.retriable,
    );
    const retry = (await (retried as unknown as Promise<{ baseOffset: number }>));
    assert.equal(retry.baseOffset, 1);
    const next = await store.append(queue.id, [{ body: 'c' }]);
    assert.equal(next.baseOffset, 2);
    assert.deepEqual(await bodies(store, 'q'), ['a', 'b-retry', 'c']);
    await store.close();
    const reopened = await open(fs);
    assert.deepEqual(await bodies(reopened, 'q'), ['a', 'b-retry', 'c']);
    await reopened.close();
  });

  it('storage: a full disk fails appends without losing acknowledged ones, and service resumes once space is freed', async () => {
    const fs = new FaultFileSystem();
    const store = await open(fs);
    const queue = await store.createQueue('q');
    const acknowledged: string[] = [];
    for (let index = 0; index < 20; index++) {
      await store.append(queue.id, [{ body: `before-${index}` }]);
      acknowledged.push(`before-${index}`);
    }
    fs.setDiskCapacity(fs.usedBytes() + 200);
    let failures = 0;
    for (let index = 0; index < 20; index++) {
      try {
        await store.append(queue.id, [{ body: `during-${index}-${'x'.repeat(100)}` }]);
        acknowledged.push(`during-${index}-${'x'.repeat(100)}`);
      } catch (error) {
        assert.ok(isWeirError(error, ErrorCode.StorageIo), `expected STORAGE_IO, got ${String(error)}`);
        failures++;
      }
    }
    assert.ok(failures > 0, 'the disk filled up');
    assert.deepEqual(await bodies(store, 'q'), acknowledged);
    fs.setDiskCapacity(null);
    await store.append(queue.id, [{ body: 'after' }]);
    acknowledged.push('after');
    assert.deepEqual(await bodies(store, 'q'), acknowledged);
    await store.close();
    const reopened = await open(fs);
    assert.deepEqual(await bodies(reopened, 'q'), acknowledged);
    await reopened.close();
  });

  it('storage: onWritten fires once the batch is written, before a sync append resolves', async () => {
    const fs = new HookedFileSystem(new FaultFileSystem());
    const store = await open(fs);
    const queue = await store.createQueue('q');
    const events: string[] = [];
    // With the fdatasync held back, the append can only be written: onWritten must not wait for the sync.
    const release = fs.hold('datasync');
    const done = store.append(queue.id, [{ body: 'x' }], { onWritten: (result) => events.push(`written ${result.baseOffset}`) }).then(() => events.push('resolved'));
    await pause(20);
    assert.deepEqual(events, ['written 0'], 'written while the append still waits for its sync');
    release();
    await done;
    assert.deepEqual(events, ['written 0', 'resolved']);
    await store.close();
  });
});
