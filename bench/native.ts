/**
 * Native-protocol benchmark: a real broker (`weir serve`) in a child process of its own, clients over TCP on loopback.
 *
 *   npm run bench -- native                       full run (about two minutes)
 *   npm run bench -- native --quick               smoke run (about 25 s)
 *   npm run bench -- native --profile --only produce-100b-1p,consume
 *                                                 the same scenarios with the broker under --cpu-prof, plus a summary
 *   npm run bench -- native --help                flags
 *
 * Scenarios (each with a fresh broker and data directory):
 * 1. produce: durable acks (the client default) to a topic of 8 partitions with flush policy `sync`, default linger,
 *    keyless messages (sticky round-robin), 100 B and 1 KiB bodies, 1 and 4 producers. Each producer keeps a window
 *    of up to 10,000 unacknowledged `send` promises, so batches fill. Measured: acknowledgements per second after a
 *    warm-up; afterwards the topic's stored message count is checked against the acknowledgements.
 * 2. consume: 2,000,000 × 100 B messages (quick: 200,000) are produced into 8 partitions, the broker is restarted
 *    on the same data (so a profile holds nothing but the read), then one consumer without a group reads all of them
 *    with `for await`, checking count, bytes and per-partition order.
 * 3. latency: a producer sends at a fixed rate; message i is due at t0 + i / rate and carries that intended time
 *    (process.hrtime, one monotonic clock for all threads) in its body. A long-polling consumer records receive time
 *    − intended time in an HDR histogram, so a stalled sender or broker shows up as latency instead of silently
 *    lowering the rate (no coordinated omission). The producer uses linger 0 (a latency-minded setting); one extra
 *    row at 10k msg/s uses the default linger (5 ms) for comparison.
 * 4. resources: the broker's RSS and CPU are sampled from /proc every 250 ms; each row reports the broker's CPU and the
 *    clients' CPU (this process, all threads) over the measured window, the broker's RSS at the end and its peak, and
 *    how busy each client thread's event loop was (and its GC share).
 *
 * Every producer and consumer runs in a worker_thread of this process with its own client and connection (its own
 * event loop, as separate applications would have); the main thread only orchestrates and samples. By default the
 * broker and the clients run compiled (packages/{weir,client,protocol}/dist, built with `tsc -b` first): through tsx
 * the broker takes ~0.3 s longer to start with ~30 MiB more RSS, and tsx's keepNames wraps every closure in __name(),
 * which costs the clients several percent per message. `--code src` runs the sources instead.
 *
 * MB means 10^6 bytes of message bodies throughout.
 */
import { randomFillSync } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { WeirClient, type Acks, type ProducerMessage } from 'weir-client';
import { RECORD_BATCH_HEADER_BYTES } from 'weir-protocol';
import { type BrokerStop, BrokerProcess, buildBroker, type Code, startBrokerSuite, mark, type Mark, newHistogram, resourceNotes, resources, type Resources } from './broker-process.js';
import {
  expectGo,
  expectMessage,
  latencySummary,
  type LatencySummary,
  monotonicNs,
  serveWorker,
  signalReady,
  STOP_SLOT,
  threadMeter,
  workerInbox,
  type WorkerIdentity,
  type WorkerInput,
  WorkerPool,
} from './client-workers.js';
import { messagesPerBatch, prebuiltBatch } from './prebuilt-batch.js';
import { runSchedule, stampedBody, type ScheduledGo, scheduledGo, type SendLag } from './schedule.js';
import {
  Flags,
  errorText,
  formatMs,
  formatPercent,
  type CpuProfile,
  formatBytes,
  formatNumber,
  formatProfileSummary,
  formatTable,
  KiB,
  MB,
  MiB,
  now,
  type ProfileSummary,
  repoRoot,
  summarizeCpuProfile,
  type Suite,
  today,
  UsageError,
  withTempDir,
  publishReport,
  resultTable,
  type ResultRow,
  type Target,
  targetTable,
} from './report.js';

// ---- parameters -----------------------------------------------------------------------------------------------------

interface Parameters {
  quick: boolean;
  partitions: number;
  bodySizes: number[];
  producerCounts: number[];
  warmupSeconds: number;
  durationSeconds: number;
  /** Unacknowledged `send` promises each throughput producer keeps outstanding. */
  window: number;
  /** Messages per `send` call (1: one promise per message, the common use). */
  perSend: number;
  consumeMessages: number;
  consumeBodyBytes: number;
  latencyRates: number[];
  latencyWarmupSeconds: number;
  latencySeconds: number;
  latencyBodyBytes: number;
  /** Linger of the latency producer; the extra comparison row uses the client default. */
  latencyLingerMs: number;
  code: Code;
  profile: boolean;
  sampleIntervalMs: number;
  only: string[] | null;
}

const USAGE = `usage: npm run bench -- native [flags]

  --quick              smoke run: 1 s per scenario, 200,000-message backlog, latency at 1k and 10k msg/s only
  --duration <s>       measured seconds per produce and latency scenario (default 5; quick 1)
  --messages <n>       backlog of the consume scenario (default 2,000,000; quick 200,000)
  --window <n>         unacknowledged sends per producer (default 10,000)
  --per-send <n>       messages per send() call in the produce scenarios (default 1)
  --rates <list>       latency scenario rates in msg/s, comma-separated (default 1000,10000,50000; quick 1000,10000)
  --linger <ms>        linger of the latency producer (default 0; the latency-10k-linger5 row always uses 5)
  --code dist|src      run the broker and clients compiled (default; built first with tsc -b) or from their
                       TypeScript sources through tsx (slower: tsx wraps every closure in __name())
  --profile            run each broker (and each client thread) under --cpu-prof; print the top self-time
                       functions per scenario (profiles are kept in bench-results/<date>/native-profiles/)
  --only <ids>         comma-separated substrings of scenario ids to run, e.g. --only produce-100b,consume
  --help               this text

scenario ids: produce-100b-1p, produce-100b-4p, produce-1k-1p, produce-1k-4p, produce-100b-wire,
              consume-100b, consume-100b-wire, latency-1k, latency-10k, latency-50k, latency-10k-linger5
              (the -wire rows bypass Producer/Consumer: pre-built batches and raw Fetches on the client's
              Connection, to show what the broker takes when the client costs little)`;

const VALUE_FLAGS = ['duration', 'messages', 'window', 'per-send', 'rates', 'linger', 'code', 'only'];

function parseArgs(args: readonly string[]): Parameters | null {
  const flags = Flags.parse(args, { switches: ['quick', 'profile'], values: VALUE_FLAGS, usage: USAGE });
  if (flags === null) return null;
  const quick = flags.has('quick');
  const number = (name: string, fallback: number, integer: boolean): number => flags.number(name, fallback, integer);
  const code = flags.get('code') ?? 'dist';
  if (code !== 'dist' && code !== 'src') throw new UsageError(`--code must be dist or src, not "${code}"`);
  const rates = flags.get('rates');
  const lingerText = flags.get('linger') ?? '0';
  const lingerMs = Number(lingerText);
  if (!Number.isFinite(lingerMs) || lingerMs < 0) throw new UsageError(`--linger must be a non-negative number of milliseconds, not "${lingerText}"`);
  const only = flags.get('only');
  return {
    quick,
    partitions: 8,
    bodySizes: [100, 1024],
    producerCounts: [1, 4],
    warmupSeconds: quick ? 0.5 : 1,
    durationSeconds: number('duration', quick ? 1 : 5, false),
    window: number('window', 10_000, true),
    perSend: number('per-send', 1, true),
    consumeMessages: number('messages', quick ? 200_000 : 2_000_000, true),
    consumeBodyBytes: 100,
    latencyRates: rates === undefined ? (quick ? [1_000, 10_000] : [1_000, 10_000, 50_000]) : rates.split(',').map((part) => Flags.positive('rates', part.trim(), true)),
    latencyWarmupSeconds: quick ? 0.5 : 1,
    latencySeconds: number('duration', quick ? 1 : 5, false),
    latencyBodyBytes: 100,
    latencyLingerMs: lingerMs,
    code,
    profile: flags.has('profile'),
    sampleIntervalMs: 250,
    only: only === undefined ? null : only.split(',').map((part) => part.trim()).filter((part) => part.length > 0),
  };
}

function selected(params: Parameters, id: string): boolean {
  return params.only === null || params.only.some((part) => id.includes(part));
}

// ---- small helpers --------------------------------------------------------------------------------------------------

function progress(text: string): void {
  process.stderr.write(`[native] ${text}\n`);
}

function sizeLabel(bytes: number): string {
  return bytes >= KiB && bytes % KiB === 0 ? `${bytes / KiB}k` : `${bytes}b`;
}

function rateLabel(rate: number): string {
  return rate >= 1000 && rate % 1000 === 0 ? `${rate / 1000}k` : String(rate);
}

// ---- clients in worker threads --------------------------------------------------------------------------------------

const WORKER_ROLE = 'weir-bench-native-client';

/** Int32 counters per worker (after the pool's stop flag). */
const SLOT = {
  /** Messages acknowledged (producer) or received (consumer). */
  done: 0,
  failed: 1,
  sent: 2,
} as const;

interface WorkerBase extends WorkerIdentity {
  /** `dist`: the worker runs without the development condition, so weir-client and weir-protocol load compiled. */
  code: Code;
  broker: string;
  topic: string;
}

interface ProducerConfig extends WorkerBase {
  kind: 'producer';
  bodyBytes: number;
  acks: Acks;
  /** null: the client default. */
  lingerMs: number | null;
  /**
   * `throughput`: `send` as fast as the window allows; `paced`: `send` message i at t0 + i / rate; `wire`: no
   * Producer, but the client's Connection sending idempotent Produce requests of pre-built batches (the size the
   * Producer's defaults make), round-robin over the partitions: what the broker can take when the client is cheap.
   */
  mode: 'throughput' | 'paced' | 'wire';
  window: number;
  perSend: number;
  /** Throughput mode: stop after this many messages (null: until told to stop). */
  limit: number | null;
  rate: number;
}

interface ConsumerConfig extends WorkerBase {
  kind: 'consumer';
  /**
   * `drain`: read `expected` messages as fast as possible with `for await`; `latency`: record receive − intended send
   * time; `wire`: no Consumer, but Fetch requests on the client's Connection (one in flight per partition, 1 MiB
   * each, as the Consumer's defaults), counting messages from the batch headers: the broker's read capacity.
   */
  mode: 'drain' | 'latency' | 'wire';
  expected: number;
}

type WorkerConfig = ProducerConfig | ConsumerConfig;

interface WorkerStats {
  /** Messages acknowledged (producer) or received (consumer). */
  done: number;
  sent: number;
  failed: number;
  firstError: string | null;
  /** Seconds from `go` to the end of the work, measured in the worker. */
  seconds: number;
  /** Event-loop utilisation of the worker from `go` to the end of the work (1: never idle). */
  elu: number;
  /** Share of that time in garbage-collection pauses. */
  gcShare: number;
  /** Paced producer: how late `send` was called relative to the schedule (the load generator's own lag). */
  sendLag: SendLag | null;
  /**
   * Paced producer, messages intended inside the window: intended send time → acknowledgement (durable append), the
   * produce half of the end-to-end latency.
   */
  ackLatency: LatencySummary | null;
  /** Paced producer: messages that were due by the stop but not sent. */
  behind: number;
  /** Draining consumer: body bytes read and whether every partition's offsets came in order without gaps. */
  bytes: number;
  inOrder: boolean;
  /** Latency consumer. */
  latency: LatencySummary | null;
  inWindow: number;
  drainSeconds: number;
  /** Producer: seconds its final flush took (acknowledgements still owed when it stopped sending). */
  flushSeconds: number;
}

type ToWorker = ScheduledGo | { type: 'finish'; expected: number };

/** Random bytes for message bodies. */
function randomBody(bytes: number): Buffer {
  return randomFillSync(Buffer.allocUnsafe(bytes));
}

function emptyStats(): WorkerStats {
  return { done: 0, sent: 0, failed: 0, firstError: null, seconds: 0, elu: 0, gcShare: 0, sendLag: null, ackLatency: null, behind: 0, bytes: 0, inOrder: true, latency: null, inWindow: 0, drainSeconds: 0, flushSeconds: 0 };
}

/** Runs in a worker thread: one client, one producer or consumer, driven by the main thread's messages. */
async function clientWorker(config: WorkerConfig): Promise<WorkerStats> {
  const receive = workerInbox<ToWorker>();
  const counters = new Int32Array(config.counters);
  const client = new WeirClient({ brokers: [config.broker], clientId: `bench-${config.kind}-${config.index}` });
  try {
    const stats = config.kind === 'producer' ? await runProducer(config, client, counters, receive) : await runConsumer(config, client, counters, receive);
    await client.close();
    return stats;
  } catch (error) {
    client.abort();
    throw error;
  }
}

async function runProducer(config: ProducerConfig, client: WeirClient, counters: Int32Array, receive: () => Promise<ToWorker>): Promise<WorkerStats> {
  const { base } = config;
  const producer = client.producer({ acks: config.acks, ...(config.lingerMs === null ? {} : { lingerMs: config.lingerMs }) });
  const stats = emptyStats();
  let outstanding = 0;
  let wake: (() => void) | null = null;
  const stopped = (): boolean => Atomics.load(counters, STOP_SLOT) !== 0;
  const settled = (count: number): void => {
    outstanding -= count;
    if (wake !== null && outstanding + config.perSend <= config.window) {
      const resume = wake;
      wake = null;
      resume();
    }
  };
  const onAck = (count: number) => (): void => {
    Atomics.add(counters, base + SLOT.done, count);
    settled(count);
  };
  const onFail = (count: number) => (error: unknown): void => {
    stats.firstError ??= errorText(error);
    Atomics.add(counters, base + SLOT.failed, count);
    settled(count);
  };
  // Connect and learn the partition count before the clock starts; InitProducer follows with the first batch.
  await client.metadata.partitionCount(config.topic);
  signalReady();
  const go = await expectGo(receive);
  const t0 = go.t0;
  let sent = 0;

  const meter = threadMeter();
  if (config.mode === 'wire') {
    sent = await wireProduce(config, client, counters, stopped, stats);
  } else if (config.mode === 'throughput') {
    const body = randomBody(config.bodyBytes);
    const one: ProducerMessage = { body };
    const many: ProducerMessage[] = Array.from({ length: config.perSend }, () => ({ body }));
    const ackFull = onAck(config.perSend);
    const failFull = onFail(config.perSend);
    const limit = config.limit ?? Infinity;
    while (!stopped() && sent < limit) {
      if (outstanding + config.perSend > config.window) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      const count = Math.min(config.perSend, limit - sent);
      if (count === 1) producer.send(config.topic, one).then(ackFull, failFull);
      else if (count === config.perSend) producer.send(config.topic, many).then(ackFull, failFull);
      else producer.send(config.topic, many.slice(0, count)).then(onAck(count), onFail(count));
      outstanding += count;
      sent += count;
      Atomics.store(counters, base + SLOT.sent, sent);
    }
  } else {
    // Paced (schedule.ts): each message carries its intended send time, so lateness of this loop counts as latency too.
    const template = randomBody(config.bodyBytes);
    const acked = newHistogram();
    const windowStartNs = Number(go.windowStart - t0);
    const windowEndNs = Number(go.windowEnd - t0);
    const ack = onAck(1);
    const fail = onFail(1);
    const schedule = await runSchedule({
      t0,
      rate: config.rate,
      // 0.25 s past the window, so the window's last messages meet the same load as the rest.
      stopAtNs: Number(go.windowEnd - t0) + 0.25e9,
      send(i, intendedNs) {
        const body = stampedBody(template, t0 + BigInt(intendedNs), i);
        const sending = producer.send(config.topic, { body });
        if (intendedNs >= windowStartNs && intendedNs < windowEndNs) {
          sending.then(() => {
            acked.recordValue(Math.max(1, Math.round((Number(monotonicNs() - t0) - intendedNs) / 1000)));
            ack();
          }, fail);
        } else {
          sending.then(ack, fail);
        }
        outstanding++;
      },
      progress: (count) => Atomics.store(counters, base + SLOT.sent, count),
      stopped,
    });
    sent = schedule.sent;
    stats.behind = schedule.behind;
    stats.sendLag = schedule.sendLag;
    stats.ackLatency = latencySummary(acked);
  }
  const flushStart = now();
  await producer.flush();
  stats.flushSeconds = now() - flushStart;
  const load = await meter.stop();
  return { ...stats, sent, done: Atomics.load(counters, base + SLOT.done), failed: Atomics.load(counters, base + SLOT.failed), ...load };
}

/**
 * The `wire` producer: InitProducer, then idempotent, durable Produce requests of one pre-built batch (prebuilt-batch.ts),
 * partitions in turn, at most `window` messages unacknowledged.
 */
async function wireProduce(config: ProducerConfig, client: WeirClient, counters: Int32Array, stopped: () => boolean, stats: WorkerStats): Promise<number> {
  const { base } = config;
  const connection = await client.connection();
  const partitions = await client.metadata.partitionCount(config.topic);
  const { producerId, producerEpoch } = await connection.request('InitProducer', { producerId: -1 });
  const messages = prebuiltBatch(config.bodyBytes);
  const perBatch = messages.length;
  const sequences = new Array<number>(partitions).fill(0);
  const window = Math.max(config.window, perBatch);
  let outstanding = 0;
  let sent = 0;
  let partition = 0;
  let wake: (() => void) | null = null;
  const settled = (): void => {
    outstanding -= perBatch;
    const resume = wake;
    wake = null;
    resume?.();
  };
  const ack = (): void => {
    Atomics.add(counters, base + SLOT.done, perBatch);
    settled();
  };
  const partial = (count: number): void => {
    Atomics.add(counters, base + SLOT.done, count);
    settled();
  };
  const fail = (error: unknown): void => {
    stats.firstError ??= errorText(error);
    Atomics.add(counters, base + SLOT.failed, perBatch);
    settled();
  };
  const limit = config.limit ?? Infinity;
  while (!stopped() && sent < limit) {
    if (outstanding + perBatch > window) {
      await new Promise<void>((resolve) => (wake = resolve));
      continue;
    }
    const count = Math.min(perBatch, limit - sent);
    const baseSequence = sequences[partition]!;
    sequences[partition] = (baseSequence + count) % 2 ** 31;
    const batch = count === perBatch ? messages : messages.slice(0, count);
    connection
      .request('Produce', { topic: config.topic, partition, acks: 2, producerId, producerEpoch, baseSequence, messages: batch })
      .then(count === perBatch ? ack : () => partial(count), fail);
    partition = (partition + 1) % partitions;
    outstanding += perBatch;
    sent += count;
    Atomics.store(counters, base + SLOT.sent, sent);
  }
  while (outstanding > 0) await new Promise<void>((resolve) => (wake = resolve));
  return sent;
}

/**
 * The `wire` consumer: Fetch requests (1 MiB, no waiting) on the client's Connection, one in flight per partition,
 * until every partition's end offset is reached; messages are counted from the batch headers, nothing is decoded.
 */
async function wireConsume(config: ConsumerConfig, client: WeirClient, counters: Int32Array): Promise<number> {
  const { base } = config;
  const connection = await client.connection();
  const description = await client.metadata.describe(config.topic, true);
  let received = 0;
  await Promise.all(
    description.partitions.map(async ({ partition, startOffset, endOffset }) => {
      let position = startOffset;
      while (position < endOffset) {
        const response = await connection.request('Fetch', { topic: config.topic, partition, offset: position, maxBytes: 1024 * 1024, minBytes: 1, maxWaitMs: 0 });
        const records = response.records;
        let at = 0;
        const before = position;
        while (records.length - at >= RECORD_BATCH_HEADER_BYTES) {
          const length = records.readUInt32LE(at);
          if (length < RECORD_BATCH_HEADER_BYTES || at + length > records.length) break;
          const count = records.readUInt16LE(at + 10);
          const baseOffset = Number(records.readBigUInt64LE(at + 16));
          const end = baseOffset + count;
          if (end > position) {
            const from = Math.max(baseOffset, position);
            received += end - from;
            position = end;
          }
          at += length;
        }
        if (position === before) throw new Error(`a Fetch of partition ${partition} at offset ${position} returned nothing below the end offset ${endOffset}`);
        Atomics.store(counters, base + SLOT.done, received);
      }
    }),
  );
  return received;
}

async function runConsumer(config: ConsumerConfig, client: WeirClient, counters: Int32Array, receive: () => Promise<ToWorker>): Promise<WorkerStats> {
  const { base } = config;
  const stats = emptyStats();
  await client.metadata.partitionCount(config.topic); // connect before the clock starts
  const consumer = client.consumer({ from: 'earliest' });
  if (config.mode === 'latency') await consumer.subscribe(config.topic);
  if (config.mode === 'wire') await client.connection();
  signalReady();
  const go = await expectGo(receive);

  if (config.mode === 'wire') {
    const meter = threadMeter();
    const received = await wireConsume(config, client, counters);
    const load = await meter.stop();
    await consumer.close();
    return { ...stats, done: received, ...load };
  }

  if (config.mode === 'drain') {
    const meter = threadMeter();
    await consumer.subscribe(config.topic);
    const nextOffset = new Map<number, number>();
    let received = 0;
    for await (const message of consumer) {
      received++;
      stats.bytes += message.body.byteLength;
      if (message.offset !== (nextOffset.get(message.partition) ?? 0)) stats.inOrder = false;
      nextOffset.set(message.partition, message.offset + 1);
      if ((received & 0x3ff) === 0) Atomics.store(counters, base + SLOT.done, received);
      if (received >= config.expected) break;
    }
    Atomics.store(counters, base + SLOT.done, received);
    const load = await meter.stop();
    await consumer.close();
    return { ...stats, done: received, ...load };
  }

  // Latency: record receive − intended send time for messages intended inside the window; read until told how many
  // were sent and all of them arrived (or 10 s passed).
  const histogram = newHistogram();
  const { windowStart, windowEnd } = go;
  let received = 0;
  let expected = Infinity;
  /** Wakes the drain below once `expected` arrived; nothing to wake before it waits. */
  let finished = (): void => {};
  const meter = threadMeter();
  const reading = (async () => {
    for await (const message of consumer) {
      const arrived = monotonicNs();
      received++;
      Atomics.store(counters, base + SLOT.done, received);
      const intended = message.body.readBigInt64LE(0);
      if (intended >= windowStart && intended < windowEnd) {
        stats.inWindow++;
        histogram.recordValue(Math.max(1, Number((arrived - intended) / 1000n)));
      }
      if (received >= expected) finished();
    }
  })();
  const finish = await expectMessage(receive, 'finish');
  expected = finish.expected;
  const drainStart = now();
  if (received < expected) {
    await new Promise<void>((resolve) => {
      finished = resolve;
      setTimeout(resolve, 10_000);
    });
  }
  stats.drainSeconds = now() - drainStart;
  await consumer.close();
  await reading;
  const load = await meter.stop();
  return { ...stats, done: received, latency: latencySummary(histogram), ...load };
}

type ClientPool = WorkerPool<WorkerConfig, WorkerStats, ToWorker>;

/** `profileDir`: run every worker under --cpu-prof, writing there (one file per thread, named by thread id). */
async function startClients(configs: ReadonlyArray<WorkerInput<WorkerConfig>>, profileDir: string | null = null): Promise<ClientPool> {
  if (profileDir !== null) await mkdir(profileDir, { recursive: true });
  return WorkerPool.start<WorkerConfig, WorkerStats, ToWorker>(
    {
      module: import.meta.url,
      role: WORKER_ROLE,
      slotsPerWorker: 3,
      stopSlot: true,
      name: (config) => `${config.kind} ${config.index}`,
      // Compiled code: no development condition, so weir-client and weir-protocol resolve to their dist folders.
      execArgv: (config) => [...(config.code === 'dist' ? [] : ['--conditions=development']), ...(profileDir === null ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir])],
      resultsTimeoutMs: 180_000,
    },
    configs,
  );
}

/** Summaries of the CPU profiles a pool's workers wrote to `profileDir` (after results() or terminate()), labelled by role. */
async function clientProfiles(pool: ClientPool, profileDir: string | null): Promise<ClientProfile[]> {
  if (profileDir === null) return [];
  const files = readdirSync(profileDir).filter((file) => file.endsWith('.cpuprofile'));
  const profiles: ClientProfile[] = [];
  for (const { threadId, config } of pool.threads) {
    // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: this process's file of that thread, not an earlier run's.
    const file = files.find((name) => name.split('.')[3] === String(process.pid) && name.split('.')[4] === String(threadId));
    if (file === undefined) continue;
    const path = join(profileDir, file);
    const profile = JSON.parse(await readFile(path, 'utf8')) as CpuProfile;
    profiles.push({ thread: `${config.kind} ${config.index} (${config.mode})`, summary: summarizeCpuProfile(profile, { root: repoRoot, top: 15, file: relative(repoRoot, path) }) });
  }
  return profiles;
}

interface ClientProfile {
  thread: string;
  summary: ProfileSummary;
}

function sumStats(stats: readonly WorkerStats[]): { sent: number; done: number; failed: number; firstError: string | null; elu: string; gc: string } {
  return {
    sent: stats.reduce((sum, entry) => sum + entry.sent, 0),
    done: stats.reduce((sum, entry) => sum + entry.done, 0),
    failed: stats.reduce((sum, entry) => sum + entry.failed, 0),
    firstError: stats.find((entry) => entry.firstError !== null)?.firstError ?? null,
    elu: stats.map((entry) => formatPercent(entry.elu)).join('/'),
    gc: stats.map((entry) => formatPercent(entry.gcShare)).join('/'),
  };
}

// ---- results --------------------------------------------------------------------------------------------------------

interface Result extends ResultRow {
  id: string;
  /** The broker ran under --cpu-prof: its figures carry the profiler's overhead. */
  profiled: boolean;
  resources: Resources;
  latency: (LatencySummary & { rate: number; sustained: boolean; lingerMs: number | null }) | null;
  profile: ProfileSummary | null;
  /** With --profile: the client threads' profiles (producers, consumers). */
  clientProfiles: ClientProfile[];
  details: Record<string, unknown>;
}

interface Context {
  params: Parameters;
  /** Where profiles go (with --profile). */
  profileRoot: string;
}

async function startBroker(context: Context, id: string, dataDir: string, profiled: boolean): Promise<BrokerProcess> {
  let profileDir: string | null = null;
  if (profiled) {
    profileDir = join(context.profileRoot, id);
    await mkdir(profileDir, { recursive: true });
  }
  const broker = await BrokerProcess.start({ code: context.params.code, dataDir, label: id, profileDir, sampleIntervalMs: context.params.sampleIntervalMs, log: progress });
  progress(`${id}: broker pid ${broker.pid} on port ${broker.port}, started in ${formatNumber(broker.startSeconds, 2)} s${profiled ? ' (under --cpu-prof)' : ''}`);
  return broker;
}

function clientProfileDir(context: Context, id: string): string | null {
  return context.params.profile ? join(context.profileRoot, id, 'clients') : null;
}

async function profileOf(stop: BrokerStop, id: string): Promise<ProfileSummary | null> {
  if (stop.profilePath === null) {
    progress(`${id}: no .cpuprofile was written (the broker did not exit cleanly?)`);
    return null;
  }
  const profile = JSON.parse(await readFile(stop.profilePath, 'utf8')) as CpuProfile;
  return summarizeCpuProfile(profile, { root: repoRoot, top: 15, file: relative(repoRoot, stop.profilePath) });
}

async function createTopic(address: string, topic: string, partitions: number): Promise<void> {
  const client = new WeirClient({ brokers: [address], clientId: 'bench-admin' });
  try {
    await client.admin().createTopic(topic, { partitions, flushPolicy: 'sync' });
  } finally {
    await client.close();
  }
}

/** Messages stored in the topic: the sum of its partitions' end offsets. */
async function storedMessages(address: string, topic: string): Promise<{ total: number; perPartition: number[] }> {
  const client = new WeirClient({ brokers: [address], clientId: 'bench-admin' });
  try {
    const info = await client.admin().describeTopic(topic);
    const perPartition = info.partitions.map((partition) => partition.endOffset - partition.startOffset);
    return { total: perPartition.reduce((sum, count) => sum + count, 0), perPartition };
  } finally {
    await client.close();
  }
}

function producerConfig(context: Context, broker: BrokerProcess, topic: string, overrides: Partial<ProducerConfig>): WorkerInput<ProducerConfig> {
  return {
    kind: 'producer',
    code: context.params.code,
    broker: broker.address,
    topic,
    bodyBytes: 100,
    acks: 'durable',
    lingerMs: null,
    mode: 'throughput',
    window: context.params.window,
    perSend: context.params.perSend,
    limit: null,
    rate: 0,
    ...overrides,
  };
}

// ---- 1. produce -----------------------------------------------------------------------------------------------------

async function produceScenario(context: Context, id: string, bodyBytes: number, producers: number, mode: 'throughput' | 'wire'): Promise<Result> {
  const { params } = context;
  return withTempDir(`native-${id}`, async (dataDir) => {
    const broker = await startBroker(context, id, dataDir, params.profile);
    let stop: BrokerStop | null = null;
    try {
      const topic = 'bench';
      await createTopic(broker.address, topic, params.partitions);
      const pool = await startClients(
        Array.from({ length: producers }, () => producerConfig(context, broker, topic, { bodyBytes, mode })),
        clientProfileDir(context, id),
      );
      let stats: WorkerStats[];
      let first: Mark & { acked: number };
      let last: Mark & { acked: number };
      try {
        pool.post(scheduledGo());
        await sleep(params.warmupSeconds * 1000);
        first = { ...mark(broker), acked: pool.sum(SLOT.done) };
        await sleep(params.durationSeconds * 1000);
        last = { ...mark(broker), acked: pool.sum(SLOT.done) };
        pool.stop();
        stats = await pool.results();
      } catch (error) {
        await pool.terminate();
        throw error;
      }
      const totals = sumStats(stats);
      const stored = await storedMessages(broker.address, topic);
      stop = await broker.stop();
      const profile = params.profile ? await profileOf(stop, id) : null;
      const threadProfiles = await clientProfiles(pool, clientProfileDir(context, id));

      const seconds = last.time - first.time;
      const count = last.acked - first.acked;
      const r = resources(broker, first, last, stop);
      const check =
        totals.failed === 0 && stored.total === totals.done
          ? `stored = acked (${formatNumber(stored.total)})`
          : `CHECK: acked ${formatNumber(totals.done)}, failed ${formatNumber(totals.failed)}, stored ${formatNumber(stored.total)}${totals.firstError ? ` (first error: ${totals.firstError})` : ''}`;
      return {
        id,
        scenario:
          mode === 'wire'
            ? `produce durable ${bodyBytes} B, pre-built batches on a bare connection (broker capacity)`
            : `produce durable ${bodyBytes} B, ${producers} producer${producers === 1 ? '' : 's'}`,
        messages: count,
        seconds,
        perSecond: count / seconds,
        mbPerSecond: (count * bodyBytes) / MB / seconds,
        notes: `${resourceNotes(r)}; ${mode === 'wire' ? 'sender' : 'producer'} loop busy ${totals.elu}, GC ${totals.gc}; ${check}${params.profile ? '; PROFILED' : ''}${broker.logSummary}`,
        profiled: params.profile,
        resources: r,
        latency: null,
        profile,
        clientProfiles: threadProfiles,
        details: {
          bodyBytes,
          producers,
          partitions: params.partitions,
          window: params.window,
          mode,
          perSend: mode === 'wire' ? null : params.perSend,
          lingerMs: mode === 'wire' ? null : 'client default (5)',
          messagesPerRequest: mode === 'wire' ? messagesPerBatch(bodyBytes) : null,
          acks: 'durable',
          flushPolicy: 'sync',
          acked: totals.done,
          failed: totals.failed,
          stored: stored.total,
          storedPerPartition: stored.perPartition,
          firstError: totals.firstError,
          producerThreads: stats.map((entry) => ({ elu: entry.elu, gcShare: entry.gcShare, acked: entry.done, seconds: entry.seconds })),
        },
      };
    } finally {
      if (stop === null) broker.kill();
    }
  });
}

// ---- 2. consume -----------------------------------------------------------------------------------------------------

type Reader = 'client' | 'wire';

/**
 * Fills the backlog once, then for each reader restarts the broker on the same data (a fresh process, so each read
 * and its profile start alike) and reads everything.
 */
async function consumeScenarios(context: Context, readers: ReadonlyArray<{ id: string; reader: Reader }>): Promise<Result[]> {
  const { params } = context;
  const total = params.consumeMessages;
  const bodyBytes = params.consumeBodyBytes;
  const label = readers[0]!.id;
  return withTempDir('native-consume', async (dataDir) => {
    const topic = 'backlog';
    // Fill (not timed, never profiled): batches of the Producer's default size (256 KiB), round-robin over the
    // partitions, durable, sent by the wire producer because it is ten times faster than a Producer here.
    let filler: BrokerProcess | null = await startBroker(context, `${label}-fill`, dataDir, false);
    let fillSeconds: number;
    let stored: { total: number; perPartition: number[] };
    try {
      await createTopic(filler.address, topic, params.partitions);
      const fillStart = now();
      const pool = await startClients([producerConfig(context, filler, topic, { bodyBytes, limit: total, mode: 'wire' })]);
      pool.post(scheduledGo());
      const totals = sumStats(await pool.results(600_000));
      fillSeconds = now() - fillStart;
      if (totals.done !== total) throw new Error(`filling the backlog: ${totals.done} of ${total} acknowledged, ${totals.failed} failed (${totals.firstError})`);
      stored = await storedMessages(filler.address, topic);
      progress(`${label}: filled ${formatNumber(total)} messages in ${formatNumber(fillSeconds, 1)} s (${formatNumber(total / fillSeconds)} msg/s)`);
      await filler.stop();
      filler = null;
    } finally {
      filler?.kill();
    }
    const results: Result[] = [];
    for (const { id, reader } of readers) {
      progress(`${id}: restarting the broker on the backlog`);
      results.push(await consumeOnce(context, id, reader, dataDir, topic, stored, fillSeconds));
    }
    return results;
  });
}

async function consumeOnce(
  context: Context,
  id: string,
  reader: Reader,
  dataDir: string,
  topic: string,
  stored: { total: number; perPartition: number[] },
  fillSeconds: number,
): Promise<Result> {
  const { params } = context;
  const total = params.consumeMessages;
  const bodyBytes = params.consumeBodyBytes;
  const broker = await startBroker(context, id, dataDir, params.profile);
  let stop: BrokerStop | null = null;
  try {
    const pool = await startClients(
      [{ kind: 'consumer', code: params.code, broker: broker.address, topic, mode: reader === 'wire' ? 'wire' : 'drain', expected: stored.total }],
      clientProfileDir(context, id),
    );
    let stats: WorkerStats;
    let first: Mark;
    let last: Mark;
    try {
      first = mark(broker);
      pool.post(scheduledGo());
      [stats] = (await pool.results(Math.max(180_000, total / 5))) as [WorkerStats];
      last = mark(broker);
    } catch (error) {
      await pool.terminate();
      throw error;
    }
    stop = await broker.stop();
    const profile = params.profile ? await profileOf(stop, id) : null;
    const threadProfiles = await clientProfiles(pool, clientProfileDir(context, id));
    const seconds = stats.seconds;
    const r = resources(broker, first, last, stop);
    // The wire reader counts messages from batch headers and does not look at bodies.
    const bytes = reader === 'wire' ? stats.done * bodyBytes : stats.bytes;
    const verified = stats.done === total && stored.total === total && bytes === total * bodyBytes && stats.inOrder;
    const check = verified
      ? `read ${formatNumber(stats.done)} = written${reader === 'client' ? ', in order' : ''}`
      : `MISMATCH: wrote ${total}, stored ${stored.total}, read ${stats.done} (${bytes} body bytes, in order ${stats.inOrder})`;
    const how = reader === 'client' ? '1 consumer (for await)' : 'Fetch on a bare connection, no Consumer (broker capacity)';
    return {
      id,
      scenario: `consume ${formatNumber(total)} × ${bodyBytes} B, ${how}`,
      messages: stats.done,
      seconds,
      perSecond: stats.done / seconds,
      mbPerSecond: bytes / MB / seconds,
      notes: `${resourceNotes(r)}; reader loop busy ${formatPercent(stats.elu)}, GC ${formatPercent(stats.gcShare)}; ${check}${params.profile ? '; PROFILED' : ''}${broker.logSummary}`,
      profiled: params.profile,
      resources: r,
      latency: null,
      profile,
      clientProfiles: threadProfiles,
      details: {
        reader,
        bodyBytes,
        partitions: params.partitions,
        written: total,
        stored: stored.total,
        storedPerPartition: stored.perPartition,
        read: stats.done,
        bodyBytesRead: bytes,
        inOrder: stats.inOrder,
        verified,
        fillSeconds,
        fillPerSecond: total / fillSeconds,
        readerThread: { elu: stats.elu, gcShare: stats.gcShare },
        readerOptions:
          reader === 'client'
            ? 'Consumer without a group, from earliest, client defaults (maxBytes 1 MiB per fetch, maxWaitMs 500), for await'
            : 'Connection.request(Fetch), maxBytes 1 MiB, maxWaitMs 0, one in flight per partition, batch headers only',
        brokerRestartedBeforeRead: true,
      },
    };
  } finally {
    if (stop === null) broker.kill();
  }
}

// ---- 3. latency -----------------------------------------------------------------------------------------------------

async function latencyScenario(context: Context, id: string, rate: number, lingerMs: number | null): Promise<Result> {
  const { params } = context;
  const bodyBytes = params.latencyBodyBytes;
  return withTempDir(`native-${id}`, async (dataDir) => {
    const broker = await startBroker(context, id, dataDir, params.profile);
    let stop: BrokerStop | null = null;
    try {
      const topic = 'latency';
      await createTopic(broker.address, topic, params.partitions);
      const consumers = await startClients([{ kind: 'consumer', code: params.code, broker: broker.address, topic, mode: 'latency', expected: 0 }], clientProfileDir(context, id));
      let producers: ClientPool | null = null;
      let producerStats: WorkerStats;
      let consumerStats: WorkerStats;
      let first: Mark;
      let last: Mark;
      try {
        producers = await startClients(
          [producerConfig(context, broker, topic, { bodyBytes, lingerMs, mode: 'paced', rate, window: Number.MAX_SAFE_INTEGER, perSend: 1 })],
          clientProfileDir(context, id),
        );
        const t0 = monotonicNs() + 20_000_000n;
        const windowStart = t0 + BigInt(Math.round(params.latencyWarmupSeconds * 1e9));
        const windowEnd = windowStart + BigInt(Math.round(params.latencySeconds * 1e9));
        consumers.post(scheduledGo(t0, windowStart, windowEnd));
        producers.post(scheduledGo(t0, windowStart, windowEnd));
        await sleep(Number(windowStart - monotonicNs()) / 1e6);
        first = mark(broker);
        await sleep(Number(windowEnd - monotonicNs()) / 1e6);
        last = mark(broker);
        // The producer goes on for 0.25 s past the window (so its last messages meet the same load), then stops.
        [producerStats] = (await producers.results()) as [WorkerStats];
        consumers.post({ type: 'finish', expected: producerStats.sent });
        [consumerStats] = (await consumers.results()) as [WorkerStats];
      } catch (error) {
        await producers?.terminate();
        await consumers.terminate();
        throw error;
      }
      stop = await broker.stop();
      const profile = params.profile ? await profileOf(stop, id) : null;
      const threadProfiles = [...(await clientProfiles(producers!, clientProfileDir(context, id))), ...(await clientProfiles(consumers, clientProfileDir(context, id)))];

      const seconds = last.time - first.time;
      const expected = Math.round(params.latencySeconds * rate);
      const summary = consumerStats.latency!;
      const sendLag = producerStats.sendLag!;
      // Sustained: every message scheduled in the window arrived, the sender never fell 100 ms behind its schedule,
      // and no backlog built up (the producer's final flush and the consumer's catch-up each took under a second).
      const shortfalls: string[] = [];
      if (producerStats.failed > 0) shortfalls.push(`${producerStats.failed} sends failed (${producerStats.firstError})`);
      if (consumerStats.inWindow < expected) shortfalls.push(`${expected - consumerStats.inWindow} of ${expected} messages missing`);
      if (sendLag.maxMs >= 100 || producerStats.behind > 0) shortfalls.push(`sender fell behind (max lag ${formatMs(sendLag.maxMs)})`);
      if (producerStats.flushSeconds >= 1) shortfalls.push(`acks lagged ${formatNumber(producerStats.flushSeconds, 1)} s at the end`);
      if (consumerStats.drainSeconds >= 1 || consumerStats.done < producerStats.sent) shortfalls.push(`consumer lagged (${consumerStats.done} of ${producerStats.sent} after ${formatNumber(consumerStats.drainSeconds, 1)} s)`);
      const sustained = shortfalls.length === 0;
      const r = resources(broker, first, last, stop);
      const lingerText = lingerMs === null ? 'linger default (5 ms)' : `linger ${lingerMs} ms`;
      return {
        id,
        scenario: `latency at ${formatNumber(rate)} msg/s, ${bodyBytes} B, ${lingerText}`,
        messages: consumerStats.inWindow,
        seconds,
        perSecond: consumerStats.inWindow / seconds,
        mbPerSecond: (consumerStats.inWindow * bodyBytes) / MB / seconds,
        notes:
          `p50 ${formatMs(summary.p50Ms)}, p99 ${formatMs(summary.p99Ms)}, p99.9 ${formatMs(summary.p999Ms)}, max ${formatMs(summary.maxMs)}; ` +
          `sustained: ${sustained ? 'yes' : `NO (${shortfalls.join('; ')})`}; ` +
          `of which produce ack p50 ${formatMs(producerStats.ackLatency!.p50Ms)}, p99 ${formatMs(producerStats.ackLatency!.p99Ms)}; sender lag p50 ${formatMs(sendLag.p50Ms)}, p99 ${formatMs(sendLag.p99Ms)}; ` +
          `${resourceNotes(r)}; consumer loop busy ${formatPercent(consumerStats.elu)}, GC ${formatPercent(consumerStats.gcShare)}` +
          (params.profile ? '; PROFILED' : '') +
          broker.logSummary,
        profiled: params.profile,
        resources: r,
        latency: { ...summary, rate, sustained, lingerMs },
        profile,
        clientProfiles: threadProfiles,
        details: {
          rate,
          bodyBytes,
          partitions: params.partitions,
          lingerMs: lingerMs ?? 'client default (5)',
          acks: 'durable',
          flushPolicy: 'sync',
          consumerOptions: 'no group, long polling (maxWaitMs 500), for await',
          scheduledInWindow: expected,
          receivedInWindow: consumerStats.inWindow,
          sent: producerStats.sent,
          received: consumerStats.done,
          failed: producerStats.failed,
          senderBehindAtStop: producerStats.behind,
          senderLag: sendLag,
          produceAckLatency: producerStats.ackLatency,
          producerFlushSeconds: producerStats.flushSeconds,
          consumerDrainSeconds: consumerStats.drainSeconds,
          shortfalls,
          producerThread: { gcShare: producerStats.gcShare },
          consumerThread: { elu: consumerStats.elu, gcShare: consumerStats.gcShare },
        },
      };
    } finally {
      if (stop === null) broker.kill();
    }
  });
}

// ---- targets and output ---------------------------------------------------------------------------------------------

function evaluateTargets(results: readonly Result[]): Target[] {
  const byId = new Map(results.map((result) => [result.id, result]));
  const targets: Target[] = [];
  const profiled = (result: Result) => (result.profiled ? ' (PROFILED run)' : '');
  for (const producers of [1, 4]) {
    const result = byId.get(`produce-100b-${producers}p`);
    targets.push({
      name: `durable produce, 100 B, ${producers} producer${producers === 1 ? '' : 's'}`,
      requirement: '≥ 500,000 msg/s',
      actual: result === undefined ? 'not run' : `${formatNumber(result.perSecond)} msg/s${profiled(result)}`,
      met: result === undefined ? null : result.perSecond >= 500_000,
    });
  }
  const consume = byId.get('consume-100b');
  targets.push({
    name: 'consume, 100 B, 1 consumer',
    requirement: '≥ 1,000,000 msg/s',
    actual: consume === undefined ? 'not run' : `${formatNumber(consume.perSecond)} msg/s${consume.details.verified ? '' : ' (count MISMATCH)'}${profiled(consume)}`,
    met: consume === undefined ? null : consume.perSecond >= 1_000_000 && consume.details.verified === true,
  });
  const latency = byId.get('latency-10k');
  targets.push({
    name: `end-to-end p99 at 10,000 msg/s (linger ${latency?.latency?.lingerMs ?? '?'} ms)`,
    requirement: '≤ 5 ms, rate sustained',
    actual:
      latency?.latency == null
        ? 'not run'
        : `p99 ${formatMs(latency.latency.p99Ms)}${latency.latency.sustained ? '' : ', rate NOT sustained'}${profiled(latency)}`,
    met: latency?.latency == null ? null : latency.latency.p99Ms <= 5 && latency.latency.sustained,
  });
  return targets;
}

function latencyTable(results: readonly Result[]): string {
  const rows = results.filter((result) => result.latency !== null);
  return formatTable(
    [
      { title: 'rate msg/s', align: 'right' },
      { title: 'linger', align: 'right' },
      { title: 'p50 ms', align: 'right' },
      { title: 'p99 ms', align: 'right' },
      { title: 'p99.9 ms', align: 'right' },
      { title: 'max ms', align: 'right' },
      { title: 'messages', align: 'right' },
      { title: 'sustained' },
    ],
    rows.map((result) => {
      const latency = result.latency!;
      return [
        formatNumber(latency.rate),
        latency.lingerMs === null ? '5 (default)' : String(latency.lingerMs),
        formatNumber(latency.p50Ms, 2),
        formatNumber(latency.p99Ms, 2),
        formatNumber(latency.p999Ms, 2),
        formatNumber(latency.maxMs, 2),
        formatNumber(latency.count),
        latency.sustained ? 'yes' : 'NO',
      ];
    }),
  );
}

function resourceTable(results: readonly Result[]): string {
  return formatTable(
    [
      { title: 'scenario id' },
      { title: 'broker CPU', align: 'right' },
      { title: 'clients CPU', align: 'right' },
      { title: 'broker RSS end', align: 'right' },
      { title: 'broker RSS peak', align: 'right' },
      { title: 'start s', align: 'right' },
      { title: 'shutdown s', align: 'right' },
    ],
    results.map((result) => [
      result.id,
      formatPercent(result.resources.brokerCpu),
      formatPercent(result.resources.clientCpu),
      formatBytes(result.resources.brokerRssBytes),
      formatBytes(result.resources.brokerPeakRssBytes),
      formatNumber(result.resources.brokerStartSeconds, 2),
      formatNumber(result.resources.brokerShutdownSeconds, 2),
    ]),
  );
}

async function run(args: readonly string[]): Promise<void> {
  const params = parseArgs(args);
  if (params === null) {
    console.log(USAGE);
    return;
  }
  const { machine, commit, startedAt, busyBefore } = await startBrokerSuite('native', progress);

  const scenarios: Array<{ id: string; run: (context: Context) => Promise<Result | Result[]> }> = [];
  for (const bodyBytes of params.bodySizes) {
    for (const producers of params.producerCounts) {
      const id = `produce-${sizeLabel(bodyBytes)}-${producers}p`;
      scenarios.push({ id, run: (context) => produceScenario(context, id, bodyBytes, producers, 'throughput') });
    }
  }
  scenarios.push({ id: 'produce-100b-wire', run: (context) => produceScenario(context, 'produce-100b-wire', 100, 1, 'wire') });
  // Both readers share one backlog (filled once), so they are one entry, run if either is selected.
  const readers = (['client', 'wire'] as const)
    .map((reader) => ({ id: reader === 'client' ? 'consume-100b' : 'consume-100b-wire', reader }))
    .filter((entry) => selected(params, entry.id));
  if (readers.length > 0) scenarios.push({ id: readers.map((entry) => entry.id).join('+'), run: (context) => consumeScenarios(context, readers) });
  for (const rate of params.latencyRates) {
    const id = `latency-${rateLabel(rate)}`;
    scenarios.push({ id, run: (context) => latencyScenario(context, id, rate, params.latencyLingerMs) });
  }
  if (params.latencyRates.includes(10_000) && !params.quick) {
    scenarios.push({ id: 'latency-10k-linger5', run: (context) => latencyScenario(context, 'latency-10k-linger5', 10_000, null) });
  }
  const chosen = scenarios.filter((scenario) => scenario.id.includes('+') || scenario.id.startsWith('consume') || selected(params, scenario.id));
  const allIds = [...scenarios.filter((scenario) => !scenario.id.startsWith('consume')).map((scenario) => scenario.id), 'consume-100b', 'consume-100b-wire'];
  if (chosen.length === 0) throw new UsageError(`--only ${params.only?.join(',')} matched no scenario; ids: ${allIds.join(', ')}`);

  let buildSeconds: number | null = null;
  if (params.code === 'dist') {
    progress('building the broker and client (tsc -b) …');
    buildSeconds = buildBroker();
    progress(`built in ${formatNumber(buildSeconds, 1)} s`);
  }
  const context: Context = { params, profileRoot: join(repoRoot, 'bench-results', today(), 'native-profiles') };

  const results: Result[] = [];
  for (const scenario of chosen) {
    progress(`${scenario.id} …`);
    const outcome = await scenario.run(context);
    for (const result of Array.isArray(outcome) ? outcome : [outcome]) {
      progress(`${result.id}: ${formatNumber(result.perSecond)} msg/s, ${formatNumber(result.mbPerSecond, 1)} MB/s; ${result.notes}`);
      results.push(result);
    }
  }

  const targets = evaluateTargets(results);
  const peak = results.reduce((most, result) => Math.max(most, result.resources.brokerPeakRssBytes), 0);
  const report = {
    suite: 'native',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    units: {
      mbPerSecond: 'MB = 10^6 bytes of message bodies',
      perSecond: 'messages per second (produce: acknowledged; consume and latency: received)',
      cpu: 'share of one core over the measured window (1 = 100%)',
      latency: 'milliseconds from the intended send time to receipt by the consumer',
    },
    parameters: params,
    setup: {
      broker:
        params.code === 'dist'
          ? 'node packages/weir/dist/cli/main.js serve --port 0 --log-level warn (compiled)'
          : 'node --conditions=development --import tsx packages/weir/src/cli/main.ts serve --port 0 --log-level warn',
      buildSeconds,
      clients:
        `weir-client ${params.code === 'dist' ? 'compiled (packages/client/dist, packages/protocol/dist)' : 'sources through tsx'}, ` +
        'each producer and consumer in a worker_thread of this process with its own client and connection',
      transport: 'TCP over loopback (127.0.0.1)',
    },
    machine,
    machineBusyBeforeStart: busyBefore,
    commit,
    brokerPeakRssBytes: peak,
    results,
    targets,
  };
  const path = await publishReport('native', report, machine, commit);
  console.log(resultTable(results));
  if (results.some((result) => result.latency !== null)) {
    console.log();
    console.log(latencyTable(results));
  }
  console.log();
  console.log(resourceTable(results));
  console.log(`broker peak RSS over all scenarios: ${formatBytes(peak)}`);
  console.log();
  console.log(targetTable(targets));
  for (const result of results) {
    if (result.profile !== null) {
      console.log(`\nbroker CPU profile, ${result.id}:`);
      console.log(formatProfileSummary(result.profile));
    }
    // One thread per role is enough on screen (four producers look alike); the report keeps them all.
    const shown = new Set<string>();
    for (const client of result.clientProfiles) {
      const role = client.thread.replace(/ \d+ /, ' ');
      if (shown.has(role)) continue;
      shown.add(role);
      console.log(`\nclient CPU profile, ${result.id}, ${client.thread}:`);
      console.log(formatProfileSummary(client.summary));
    }
  }
  console.log(`\nreport: ${path}`);
}

export const nativeSuite: Suite = { run };

// ---- worker entry ---------------------------------------------------------------------------------------------------

serveWorker(WORKER_ROLE, clientWorker);
