import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../core/clock.js';
import { type ErrorCode, isWeirError } from '../core/errors.js';
import { DiskMessageStore } from '../storage/disk-message-store.js';
import { MemoryMessageStore } from '../storage/memory-message-store.js';
import type { MessageStore } from '../storage/message-store.js';
import { decodeMessages, type StoredMessage } from '../storage/record-batch.js';
import { BrokerCore, type BrokerCoreOptions } from './broker-core.js';
import { ManualScheduler } from './scheduler.js';

/** Shared helpers of the broker tests (not a test file itself). */

export interface TestBroker {
  broker: BrokerCore;
  store: MessageStore;
  clock: ManualClock;
  scheduler: ManualScheduler;
}

/** A broker over a MemoryMessageStore with a manual clock and scheduler. */
export async function memoryBroker(options: Partial<BrokerCoreOptions> = {}): Promise<TestBroker> {
  const clock = new ManualClock();
  const scheduler = new ManualScheduler(clock);
  const store = options.store ?? new MemoryMessageStore(clock);
  const broker = await BrokerCore.open({ clock, scheduler, ...options, store });
  return { broker, store, clock, scheduler };
}

/** A temporary data directory for DiskMessageStore tests, removed by `cleanup`. */
export async function tempDirectory(): Promise<{ dataDir: string; cleanup: () => Promise<void> }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'weir-broker-'));
  return { dataDir, cleanup: () => rm(dataDir, { recursive: true, force: true }) };
}

export function openDiskStore(dataDir: string, clock: ManualClock): Promise<DiskMessageStore> {
  return DiskMessageStore.open({ dataDir, clock, segmentBytes: 1 << 20, checkpointIntervalMs: 0, retentionIntervalMs: 0 });
}

/** Lets pending promise continuations and I/O callbacks run. */
export async function settle(turns = 3): Promise<void> {
  for (let turn = 0; turn < turns; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isWeirError(error, code), `expected ${code}, got ${error instanceof Error ? `${(error as { code?: string }).code ?? error.name}: ${error.message}` : String(error)}`);
    return true;
  });
}

export function throwsWith(work: () => unknown, code: ErrorCode): void {
  assert.throws(work, (error: unknown) => {
    assert.ok(isWeirError(error, code), `expected ${code}, got ${String(error)}`);
    return true;
  });
}

/** Decodes fetched batches, keeping the messages at or after `fromOffset`. */
export function decodeBatches(batches: readonly Buffer[], fromOffset = 0): StoredMessage[] {
  const messages: StoredMessage[] = [];
  for (const batch of batches) decodeMessages(batch, 0, 0, fromOffset, Infinity, messages);
  return messages;
}

/** Whether a promise has settled by now (after letting continuations run). */
export async function isSettled(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  await settle();
  return settled;
}
