import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock.js';
import { DiskMessageStore } from './disk-message-store.js';
import { MemoryMessageStore } from './memory-message-store.js';
import { runMessageStoreConformance } from './message-store.conformance.js';

runMessageStoreConformance({
  name: 'memory',
  clock: () => new ManualClock(),
  open: async (clock) => new MemoryMessageStore(clock),
});

let directory = '';
const diskOptions = (clock: ManualClock) => ({
  dataDir: directory,
  clock,
  segmentBytes: 64 * 1024,
  consumeQueueEntriesPerFile: 64,
  checkpointIntervalMs: 0,
  retentionIntervalMs: 0,
});

runMessageStoreConformance({
  name: 'disk',
  clock: () => new ManualClock(),
  open: async (clock) => {
    directory = await mkdtemp(join(tmpdir(), 'weir-store-'));
    return DiskMessageStore.open(diskOptions(clock));
  },
  reopen: async (store, clock) => {
    await store.close();
    return DiskMessageStore.open(diskOptions(clock));
  },
  dataFileCount: async () => (await readdir(join(directory, 'commitlog'))).length,
  cleanup: async () => {
    await rm(directory, { recursive: true, force: true });
  },
});
