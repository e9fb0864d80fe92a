/**
 * Storage benchmark: what the disk can do (the ceilings), then what DiskMessageStore makes of it.
 *
 *   npm run bench -- storage            full run (a few minutes)
 *   npm run bench -- storage --quick    smoke run (seconds)
 *   npm run bench -- storage --help     flags
 *
 * Scenarios:
 * 1. ceilings, on the filesystem of the data directories: sequential 1 MiB writes + one fdatasync; 4 KiB
 *    write + fdatasync loop (syncs/s); 256 KiB write + fdatasync loop (a group-commit-sized append, MB/s).
 * 2. durable append (flushPolicy 'sync'): 256 concurrent appenders, one message per append, 100 B and 1 KiB bodies,
 *    1 queue and 10,000 queues (round-robin), fixed duration after a warm-up.
 * 3. sequential read of a backlog of 100 B records in one queue, after closing and reopening the store.
 *
 * MB means 10^6 bytes throughout. Every scenario gets its own data directory under os.tmpdir(), removed afterwards.
 */
import { randomFillSync } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../packages/weir/src/core/logger.js';
import { DiskMessageStore } from '../packages/weir/src/storage/disk-message-store.js';
import type { MessageInput } from '../packages/weir/src/storage/record-batch.js';
import {
  Flags,
  commitInfo,
  describeMachine,
  formatBytes,
  formatNumber,
  GcMeter,
  LatencyHistogram,
  machineInfo,
  MB,
  MiB,
  KiB,
  now,
  type Suite,
  UsageError,
  withTempDir,
  publishReport,
  resultTable,
  type ResultRow,
  type Target,
  targetTable,
} from './report.js';

interface Parameters {
  quick: boolean;
  /** Bytes written by the sequential-write ceiling. */
  sequentialWriteBytes: number;
  /** Seconds each fdatasync-loop ceiling runs. */
  syncLoopSeconds: number;
  appenders: number;
  bodySizes: number[];
  /** Queue counts of the durable-append scenarios. */
  queueCounts: number[];
  warmupSeconds: number;
  durationSeconds: number;
  /** The store's checkpoint interval; undefined keeps its default (what users get). */
  checkpointIntervalMs: number | undefined;
  backlogRecords: number;
  backlogBodyBytes: number;
  backlogBatchMessages: number;
  readMaxMessages: number;
  readMaxBytes: number;
  /** Substrings of scenario ids to run; null runs everything. */
  only: string[] | null;
}

interface Result extends ResultRow {
  id: string;
  details: Record<string, unknown>;
}

const USAGE = `usage: npm run bench -- storage [flags]

  --quick              smoke run: small sizes, 1 s per append scenario
  --duration <s>       seconds each durable-append scenario is measured (default 5; quick 1)
  --backlog <n>        records in the read backlog (default 10,000,000; quick 200,000)
  --queues <n>         queue count of the many-queue append scenarios (default 10,000; quick 1,000)
  --only <ids>         comma-separated substrings of scenario ids to run, e.g. --only append-1k-10000q
  --help               this text

scenario ids: ceiling-seq-write, ceiling-sync-4k, ceiling-sync-256k,
              append-100b-1q, append-100b-<n>q, append-1k-1q, append-1k-<n>q, read-backlog`;

function parseArgs(args: readonly string[]): Parameters | null {
  const flags = Flags.parse(args, { switches: ['quick'], values: ['duration', 'backlog', 'queues', 'only'], usage: USAGE });
  if (flags === null) return null;
  const quick = flags.has('quick');
  const number = (name: string, fallback: number, integer: boolean): number => flags.number(name, fallback, integer);
  // Quick runs use 1,000 queues: creating 10,000 (and checkpointing them on close) alone takes ~8 s per scenario.
  const manyQueues = number('queues', quick ? 1_000 : 10_000, true);
  const only = flags.get('only');
  return {
    quick,
    sequentialWriteBytes: quick ? 64 * MiB : 1024 * MiB,
    syncLoopSeconds: quick ? 0.5 : 3,
    appenders: 256,
    bodySizes: [100, 1024],
    queueCounts: manyQueues === 1 ? [1] : [1, manyQueues],
    warmupSeconds: quick ? 0.25 : 1,
    durationSeconds: number('duration', quick ? 1 : 5, false),
    checkpointIntervalMs: undefined,
    backlogRecords: number('backlog', quick ? 200_000 : 10_000_000, true),
    backlogBodyBytes: 100,
    backlogBatchMessages: 500,
    readMaxMessages: 10_000,
    readMaxBytes: 4 << 20,
    only: only === undefined ? null : only.split(',').map((part) => part.trim()).filter((part) => part.length > 0),
  };
}

function selected(params: Parameters, id: string): boolean {
  return params.only === null || params.only.some((part) => id.includes(part));
}

function randomBuffer(bytes: number): Buffer {
  return randomFillSync(Buffer.allocUnsafe(bytes));
}

function sizeLabel(bytes: number): string {
  return bytes >= KiB && bytes % KiB === 0 ? `${bytes / KiB}k` : `${bytes}b`;
}

function progress(text: string): void {
  process.stderr.write(`[storage] ${text}\n`);
}

/** The store logs nothing on the happy path; whatever it warns about during a run is worth seeing and counting. */
class BenchLogger implements Logger {
  warnings = 0;
  errors = 0;
  debug(): void {}
  info(): void {}
  warn(fields: object, message: string): void {
    this.warnings++;
    if (this.warnings <= 5) progress(`store warning: ${message} ${describeFields(fields)}`);
  }
  error(fields: object, message: string): void {
    this.errors++;
    if (this.errors <= 5) progress(`store error: ${message} ${describeFields(fields)}`);
  }
  get summary(): string {
    return this.warnings + this.errors === 0 ? '' : `; store logged ${this.warnings} warnings, ${this.errors} errors`;
  }
}

function describeFields(fields: object): string {
  return JSON.stringify(fields, (_key, value: unknown) => (value instanceof Error ? value.message : value));
}

function ms(value: number): string {
  return `${formatNumber(value, value >= 10 ? 0 : 1)} ms`;
}

function rssMiB(): number {
  return Math.round(process.memoryUsage.rss() / MiB);
}

// ---- 1. ceilings ----------------------------------------------------------------------------------------------------

async function writeAll(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buffer.byteLength) {
    const { bytesWritten } = await handle.write(buffer, done, buffer.byteLength - done, position + done);
    done += bytesWritten;
  }
}

async function sequentialWriteCeiling(params: Parameters): Promise<Result> {
  return withTempDir('ceiling', async (dir) => {
    const handle = await open(join(dir, 'sequential.dat'), 'w');
    try {
      const buffer = randomBuffer(MiB);
      const writes = Math.ceil(params.sequentialWriteBytes / MiB);
      const start = now();
      for (let index = 0; index < writes; index++) await writeAll(handle, buffer, index * MiB);
      const written = now();
      await handle.datasync();
      const seconds = now() - start;
      const writeSeconds = written - start;
      const datasyncSeconds = seconds - writeSeconds;
      const bytes = writes * MiB;
      return {
        id: 'ceiling-seq-write',
        scenario: 'ceiling: sequential write 1 MiB + 1 fdatasync',
        messages: writes,
        seconds,
        perSecond: writes / seconds,
        mbPerSecond: bytes / MB / seconds,
        notes: `${formatBytes(bytes)}; writes ${formatNumber(writeSeconds, 2)} s, final fdatasync ${formatNumber(datasyncSeconds, 2)} s`,
        details: { bytes, writeSeconds, datasyncSeconds },
      };
    } finally {
      await handle.close();
    }
  });
}

/** Appends `bytes`-sized writes, each followed by fdatasync, for `seconds`; the shape of a commit-log flush cycle. */
async function syncLoopCeiling(params: Parameters, bytes: number): Promise<Result> {
  return withTempDir('ceiling', async (dir) => {
    const handle = await open(join(dir, 'sync-loop.dat'), 'w');
    try {
      const buffer = randomBuffer(bytes);
      const latency = new LatencyHistogram();
      let operations = 0;
      const start = now();
      const deadline = start + params.syncLoopSeconds;
      let elapsed = 0;
      while (elapsed === 0 || now() < deadline) {
        const began = performance.now();
        await writeAll(handle, buffer, operations * bytes);
        await handle.datasync();
        latency.record((performance.now() - began) * 1000);
        operations++;
        elapsed = now() - start;
      }
      const seconds = now() - start;
      const lat = latency.summary();
      return {
        id: `ceiling-sync-${sizeLabel(bytes)}`,
        scenario: `ceiling: ${bytes / KiB} KiB write + fdatasync loop`,
        messages: operations,
        seconds,
        perSecond: operations / seconds,
        mbPerSecond: (operations * bytes) / MB / seconds,
        notes: `${formatNumber(operations / seconds)} fdatasync/s; write+sync p50 ${ms(lat.p50Ms)}, p99 ${ms(lat.p99Ms)}`,
        details: { writeBytes: bytes, latency: lat },
      };
    } finally {
      await handle.close();
    }
  });
}

// ---- 2. durable append ----------------------------------------------------------------------------------------------

/** Creates `count` queues with a bounded number of creations in flight (not part of any timed section). */
async function createQueues(store: DiskMessageStore, count: number): Promise<number[]> {
  const ids = new Array<number>(count);
  let next = 0;
  const width = String(count - 1).length;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      const info = await store.createQueue(`bench-${String(index).padStart(width, '0')}`);
      ids[index] = info.id;
    }
  };
  await Promise.all(Array.from({ length: Math.min(64, count) }, worker));
  if (new Set(ids).size !== count) throw new Error(`creating ${count} queues concurrently produced duplicate queue ids`);
  return ids;
}

async function durableAppend(params: Parameters, bodyBytes: number, queueCount: number): Promise<Result> {
  const id = `append-${sizeLabel(bodyBytes)}-${queueCount}q`;
  return withTempDir(id, async (dataDir) => {
    const logger = new BenchLogger();
    const store = await DiskMessageStore.open({ dataDir, ...(params.checkpointIntervalMs === undefined ? {} : { checkpointIntervalMs: params.checkpointIntervalMs }), retentionIntervalMs: 0, logger });
    let closed = false;
    try {
      const setupStart = now();
      const queueIds = await createQueues(store, queueCount);
      const setupSeconds = now() - setupStart;
      if (queueCount > 1) progress(`${id}: created ${formatNumber(queueCount)} queues in ${formatNumber(setupSeconds, 1)} s`);

      // One input array shared by every append: the store copies the body into its write buffer at the call.
      const messages: readonly MessageInput[] = [{ body: randomBuffer(bodyBytes) }];
      const latency = new LatencyHistogram();
      let completed = 0;
      let nextQueue = 0;
      let measuring = false;
      let stopping = false;
      let failure: unknown = null;
      const appender = async (): Promise<void> => {
        try {
          while (!stopping) {
            const queueId = queueIds[nextQueue]!;
            nextQueue = nextQueue + 1 === queueCount ? 0 : nextQueue + 1;
            const began = performance.now();
            await store.append(queueId, messages);
            completed++;
            if (measuring) latency.record((performance.now() - began) * 1000);
          }
        } catch (error) {
          failure ??= error;
          stopping = true;
        }
      };
      const loops = Array.from({ length: params.appenders }, appender);
      await sleep(params.warmupSeconds * 1000);
      const gcMeter = new GcMeter();
      gcMeter.start();
      const first = { time: now(), completed, position: store.stats.endPosition };
      measuring = true;
      await sleep(params.durationSeconds * 1000);
      const last = { time: now(), completed, position: store.stats.endPosition };
      const gcWindow = gcMeter.stop();
      measuring = false;
      stopping = true;
      await Promise.all(loops);
      if (failure !== null) throw failure;
      const gc = await gcWindow;

      const seconds = last.time - first.time;
      const count = last.completed - first.completed;
      const logBytes = last.position - first.position;
      const lat = latency.summary();
      const closeStart = now();
      closed = true;
      await store.close();
      const closeSeconds = now() - closeStart;
      return {
        id,
        scenario: `durable append ${bodyBytes} B, ${formatNumber(queueCount)} queue${queueCount === 1 ? '' : 's'}`,
        messages: count,
        seconds,
        perSecond: count / seconds,
        mbPerSecond: (count * bodyBytes) / MB / seconds,
        notes:
          `commit log ${formatNumber(logBytes / MB / seconds)} MB/s; ` +
          `append latency p50 ${ms(lat.p50Ms)}, p99 ${ms(lat.p99Ms)}, max ${ms(lat.maxMs)}; GC ${formatNumber(gc.share * 100, 0)}%` +
          (queueCount > 1 ? `; queue setup ${formatNumber(setupSeconds, 1)} s` : '') +
          logger.summary,
        details: {
          bodyBytes,
          queues: queueCount,
          appenders: params.appenders,
          bodyMBPerSecond: (count * bodyBytes) / MB / seconds,
          commitLogBytes: logBytes,
          commitLogMBPerSecond: logBytes / MB / seconds,
          latency: lat,
          gc,
          queueSetupSeconds: setupSeconds,
          closeSeconds,
          rssMiB: rssMiB(),
          storeWarnings: logger.warnings,
          storeErrors: logger.errors,
        },
      };
    } finally {
      if (!closed) await store.close();
    }
  });
}

// ---- 3. backlog read ------------------------------------------------------------------------------------------------

async function backlogRead(params: Parameters): Promise<Result> {
  return withTempDir('backlog', async (dataDir) => {
    const logger = new BenchLogger();
    const openStore = () => DiskMessageStore.open({ dataDir, ...(params.checkpointIntervalMs === undefined ? {} : { checkpointIntervalMs: params.checkpointIntervalMs }), retentionIntervalMs: 0, logger });
    const total = params.backlogRecords;
    const perBatch = params.backlogBatchMessages;
    const body = randomBuffer(params.backlogBodyBytes);
    const batch: readonly MessageInput[] = Array.from({ length: perBatch }, () => ({ body }));

    // Build (not timed): batches of 500 with flushPolicy 'none', a few appends in flight so the log writes stay large.
    let store = await openStore();
    let queueId: number;
    let buildSeconds: number;
    let closeSeconds: number;
    try {
      queueId = (await store.createQueue('backlog', { flushPolicy: 'none' })).id;
      const batches = Math.ceil(total / perBatch);
      let nextBatch = 0;
      let reported = 0;
      const buildStart = now();
      const builder = async () => {
        while (nextBatch < batches) {
          const index = nextBatch++;
          const count = Math.min(perBatch, total - index * perBatch);
          await store.append(queueId, count === perBatch ? batch : batch.slice(0, count));
          const done = Math.floor(((index + 1) * 10) / batches);
          if (done > reported && done < 10) {
            reported = done;
            progress(`backlog: ${done * 10}% (${formatNumber(now() - buildStart, 1)} s)`);
          }
        }
      };
      await Promise.all(Array.from({ length: 8 }, builder));
      buildSeconds = now() - buildStart;
      progress(`backlog: built ${formatNumber(total)} records (${formatBytes(store.stats.endPosition)} of commit log) in ${formatNumber(buildSeconds, 1)} s`);
      const closeStart = now();
      await store.close();
      closeSeconds = now() - closeStart;
    } catch (error) {
      await store.close().catch(() => {});
      throw error;
    }

    // Reopen so the reads go through the files (page cache), not the in-memory tails.
    const reopenStart = now();
    store = await openStore();
    const reopenSeconds = now() - reopenStart;
    try {
      const info = store.queueById(queueId);
      if (info === null) throw new Error('the backlog queue is missing after reopening the store');
      const logBytes = store.stats.endPosition - store.stats.startPosition;
      let offset = info.startOffset;
      let records = 0;
      let bodyBytes = 0;
      let reads = 0;
      let contiguous = true;
      const options = { maxMessages: params.readMaxMessages, maxBytes: params.readMaxBytes };
      const gcMeter = new GcMeter();
      gcMeter.start();
      const start = now();
      while (offset < info.endOffset) {
        const result = await store.read(queueId, offset, options);
        const messages = result.messages;
        if (messages.length === 0 || result.nextOffset <= offset) throw new Error(`read at offset ${offset} made no progress (endOffset ${info.endOffset})`);
        if (messages[0]!.offset !== offset || messages[messages.length - 1]!.offset !== result.nextOffset - 1) contiguous = false;
        for (let index = 0; index < messages.length; index++) bodyBytes += messages[index]!.body.byteLength;
        records += messages.length;
        reads++;
        offset = result.nextOffset;
      }
      const seconds = now() - start;
      const gc = await gcMeter.stop();
      const verified = records === total && info.endOffset === total && bodyBytes === total * params.backlogBodyBytes && contiguous;
      const check = verified
        ? `read ${formatNumber(records)} = written`
        : `MISMATCH: wrote ${total}, store endOffset ${info.endOffset}, read ${records} (${bodyBytes} body bytes, contiguous ${contiguous})`;
      return {
        id: 'read-backlog',
        scenario: `sequential read, backlog of ${formatNumber(total)} × ${params.backlogBodyBytes} B`,
        messages: records,
        seconds,
        perSecond: records / seconds,
        mbPerSecond: bodyBytes / MB / seconds,
        notes:
          `${check}; commit log ${formatNumber(logBytes / MB / seconds)} MB/s; ${formatNumber(reads)} reads; GC ${formatNumber(gc.share * 100, 0)}%; ` +
          `build ${formatNumber(buildSeconds, 1)} s (untimed), close ${formatNumber(closeSeconds, 1)} s, reopen ${formatNumber(reopenSeconds, 2)} s` +
          logger.summary,
        details: {
          recordsWritten: total,
          recordsRead: records,
          verified,
          bodyBytes,
          commitLogBytes: logBytes,
          commitLogMBPerSecond: logBytes / MB / seconds,
          reads,
          gc,
          buildSeconds,
          buildRecordsPerSecond: total / buildSeconds,
          closeSeconds,
          reopenSeconds,
          rssMiB: rssMiB(),
          storeWarnings: logger.warnings,
          storeErrors: logger.errors,
        },
      };
    } finally {
      await store.close();
    }
  });
}

// ---- targets and output ---------------------------------------------------------------------------------------------

function evaluateTargets(params: Parameters, results: readonly Result[]): Target[] {
  const byId = new Map(results.map((result) => [result.id, result]));
  const targets: Target[] = [];
  const percent = (ratio: number) => `${formatNumber(ratio * 100, 1)}%`;

  const ceiling = byId.get('ceiling-sync-256k');
  for (const queues of params.queueCounts) {
    const append = byId.get(`append-1k-${queues}q`);
    const name = `durable 1 KiB append, ${formatNumber(queues)} queue${queues === 1 ? '' : 's'}: body MB/s vs ceiling (c)`;
    if (ceiling === undefined || append === undefined) {
      targets.push({ name, requirement: '≥ 50% of the 256 KiB write+fdatasync MB/s', actual: 'not run', met: null });
      continue;
    }
    const ratio = append.mbPerSecond / ceiling.mbPerSecond;
    const logRatio = (append.details.commitLogMBPerSecond as number) / ceiling.mbPerSecond;
    targets.push({
      name,
      requirement: `≥ 50% of ${formatNumber(ceiling.mbPerSecond)} MB/s`,
      actual: `${formatNumber(append.mbPerSecond)} MB/s = ${percent(ratio)} (commit-log bytes: ${percent(logRatio)})`,
      met: ratio >= 0.5,
    });
  }

  const many = params.queueCounts.find((count) => count > 1);
  if (many !== undefined) {
    for (const size of params.bodySizes) {
      const one = byId.get(`append-${sizeLabel(size)}-1q`);
      const spread = byId.get(`append-${sizeLabel(size)}-${many}q`);
      const name = `${formatNumber(many)}-queue vs 1-queue durable append rate, ${size} B`;
      if (one === undefined || spread === undefined) {
        targets.push({ name, requirement: '≥ 80%', actual: 'not run', met: null });
        continue;
      }
      const ratio = spread.perSecond / one.perSecond;
      targets.push({ name, requirement: '≥ 80%', actual: `${formatNumber(spread.perSecond)} vs ${formatNumber(one.perSecond)} msg/s = ${percent(ratio)}`, met: ratio >= 0.8 });
    }
  }

  const read = byId.get('read-backlog');
  targets.push({
    name: 'backlog sequential read',
    requirement: '≥ 1,000,000 records/s',
    actual: read === undefined ? 'not run' : `${formatNumber(read.perSecond)} records/s${read.details.verified ? '' : ' (count MISMATCH)'}`,
    met: read === undefined ? null : read.perSecond >= 1_000_000 && read.details.verified === true,
  });
  return targets;
}

async function run(args: readonly string[]): Promise<void> {
  const params = parseArgs(args);
  if (params === null) {
    console.log(USAGE);
    return;
  }
  const machine = machineInfo(os.tmpdir());
  const commit = commitInfo();
  progress(describeMachine(machine, commit).replaceAll('\n', '\n[storage] '));
  const startedAt = new Date();

  const scenarios: Array<{ id: string; run: () => Promise<Result> }> = [
    { id: 'ceiling-seq-write', run: () => sequentialWriteCeiling(params) },
    { id: 'ceiling-sync-4k', run: () => syncLoopCeiling(params, 4 * KiB) },
    { id: 'ceiling-sync-256k', run: () => syncLoopCeiling(params, 256 * KiB) },
  ];
  for (const bodyBytes of params.bodySizes) {
    for (const queues of params.queueCounts) {
      scenarios.push({ id: `append-${sizeLabel(bodyBytes)}-${queues}q`, run: () => durableAppend(params, bodyBytes, queues) });
    }
  }
  scenarios.push({ id: 'read-backlog', run: () => backlogRead(params) });

  const results: Result[] = [];
  for (const scenario of scenarios) {
    if (!selected(params, scenario.id)) continue;
    progress(`${scenario.id} …`);
    const result = await scenario.run();
    progress(`${scenario.id}: ${formatNumber(result.perSecond)} /s, ${formatNumber(result.mbPerSecond, 1)} MB/s`);
    results.push(result);
  }
  if (results.length === 0) throw new UsageError(`--only ${params.only?.join(',')} matched no scenario; ids: ${scenarios.map((scenario) => scenario.id).join(', ')}`);

  const targets = evaluateTargets(params, results);
  const report = {
    suite: 'storage',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    units: { mbPerSecond: 'MB = 10^6 bytes', perSecond: 'messages (ceilings: write operations) per second' },
    parameters: params,
    machine,
    commit,
    results,
    targets,
  };
  const path = await publishReport('storage', report, machine, commit);
  console.log(resultTable(results));
  console.log();
  console.log(targetTable(targets));
  console.log(`\nreport: ${path}`);
}

export const storageSuite: Suite = { run };
