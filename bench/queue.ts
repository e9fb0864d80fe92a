/**
 * Work-queue benchmark: shared groups (per-message ack) and delayed delivery against a real broker (`weir serve`) in a
 * child process of its own, clients over TCP on loopback (docs/design/work-queues.md).
 *
 *   npm run bench -- queue                 full run (three to four minutes on 2 cores)
 *   npm run bench -- queue --quick         smoke run (under a minute)
 *   npm run bench -- queue --only delayed  one scenario (ids: shared-ack-1c, shared-ack-4c, shared-ack-16c, delayed)
 *   npm run bench -- queue --profile       the brokers under --cpu-prof, with a summary of where their time went
 *   npm run bench -- queue --help          flags
 *
 * Scenarios (each with a fresh broker, port 0, and a temporary data directory of its own):
 * 1. shared-ack-<K>c: N × 100 B messages (full 1,000,000; quick 100,000) are written into a topic of 8 partitions
 *    (flush policy `sync`) by pre-built batches on a bare connection, untimed. Then K queue consumers (K = 1, 4, 16;
 *    each with its own WeirClient and connection, spread over min(K, cores) worker threads) subscribe to one
 *    `shared` group with prefetch 1000 and ack every message on its own with `message.ack()` (the client sends the
 *    outcomes of one tick in one Settle). Measured: messages whose ack the broker confirmed as applied, per second,
 *    from the subscribes to the last confirmation; broker CPU and RSS over that window. Checked: every (partition,
 *    offset) was delivered exactly once (a shared per-offset counter: a second delivery is a duplicate, i.e. a
 *    redelivery), every ack applied, and the broker's view of the group (DescribeSharedGroup) holds nothing unsettled.
 *    Target: ≥ 300,000 msg/s.
 * 2. delayed: one shared consumer (prefetch 1000, acking) subscribes, then a non-idempotent producer publishes M × 100 B
 *    messages (full 1,000,000; quick 100,000) with `deliverAt` drawn uniformly at random over a due window (full 20 s;
 *    quick 5 s); each body carries its due time (ms since the epoch) and a sequence number. Before them it publishes a
 *    warm-up (full 20,000; quick 5,000) due at random in the second that ends half a second before the window, so the
 *    broker's and the consumer's delivery code is compiled and their heaps sized when the window opens: the warm-up's
 *    lateness is reported apart and not in the histogram (`--warmup 0` measures a cold start). The producer keeps up to
 *    10,000 sends unacknowledged. Publishing has a budget (full 90 s; quick 10 s) and the due window opens 3 s after
 *    it, so no message falls due while others are still being published: a broker too slow to take all M within the
 *    budget ends up with fewer pending (the row says how many; the memory target is then not judged). The consumer
 *    records lateness = receive wall time − due time in an HDR histogram, counts early deliveries (received while
 *    Date.now() was still below the due time: must be 0), duplicates, and missing messages (not received once
 *    deliveries stopped for 5 s after the window). The broker's RSS is sampled every 250 ms; its peak from the start
 *    of publishing until the first message falls due is the memory that M pending delayed messages take; broker CPU
 *    is reported over the delivery (first due time to last receipt). Targets: p99 lateness ≤ 50 ms; RSS ≤ 256 MiB
 *    with 1,000,000 pending. If the broker answers a delayed produce with INVALID_ARGUMENT "this broker does not hold
 *    delayed messages" (the delay schedule is not wired into it), the scenario is reported with status `unsupported`
 *    and the others go on.
 *
 * Clients run in worker_threads of this process (their own event loops, as separate applications would have); the
 * main thread only orchestrates and samples. By default broker and clients run compiled (built with `tsc -b` first);
 * `--code src` runs the TypeScript sources through tsx instead. MB means 10^6 bytes of message bodies.
 */
import { randomFillSync } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { WeirClient, isWeirClientError, type QueueConsumer, type QueueMessage, type SettleApplied } from 'weir-client';
import { type BrokerStop, BrokerProcess, buildBroker, type Code, startBrokerSuite, mark, type Mark, newHistogram, resourceNotes, resources, type Resources } from './broker-process.js';
import {
  expectGo,
  expectMessage,
  latencySummary,
  type LatencySummary,
  serveWorker,
  signalReady,
  threadMeter,
  workerInbox,
  type WorkerIdentity,
  type WorkerInput,
  WorkerPool,
} from './client-workers.js';
import { prebuiltBatch } from './prebuilt-batch.js';
import {
  Flags,
  errorText,
  formatMiB,
  formatMs,
  formatPercent,
  type CpuProfile,
  describeMachine,
  formatBytes,
  formatNumber,
  formatProfileSummary,
  formatTable,
  MB,
  MiB,
  now,
  type ProfileSummary,
  publishReport,
  repoRoot,
  resultTable,
  type ResultRow,
  summarizeCpuProfile,
  type Suite,
  type Target,
  targetTable,
  today,
  UsageError,
  withTempDir,
} from './report.js';

// ---- parameters -----------------------------------------------------------------------------------------------------

interface Parameters {
  quick: boolean;
  partitions: number;
  bodyBytes: number;
  /** Scenario 1: the backlog drained by each consumer count. */
  messages: number;
  consumerCounts: number[];
  /** Most client worker threads per scenario (consumers are spread over them); default: the machine's cores. */
  threads: number;
  prefetch: number;
  /** Scenario 2: delayed messages published. */
  delayed: number;
  /** Scenario 2: warm-up messages due just before the window, published first and not measured. */
  warmup: number;
  /** Seconds over which the delayed messages fall due. */
  dueWindowSeconds: number;
  /** Most seconds the delayed publisher sends for; the due window opens DUE_LEAD_SECONDS after. */
  publishBudgetSeconds: number;
  /** Unacknowledged sends the delayed producer keeps. */
  window: number;
  code: Code;
  /** Run each broker under --cpu-prof and summarise its profile. */
  profile: boolean;
  sampleIntervalMs: number;
  only: string[] | null;
}

const THROUGHPUT_TARGET = 300_000;
const LATENESS_P99_TARGET_MS = 50;
const PENDING_RSS_TARGET_BYTES = 256 * MiB;
const PENDING_RSS_TARGET_COUNT = 1_000_000;
/** The due window opens this long after the publishing budget ends (room for the last acknowledgements). */
const DUE_LEAD_SECONDS = 3;
/** The warm-up falls due over the second that starts this long before the due window. */
const WARMUP_LEAD_SECONDS = 1.5;
/** After the due window, deliveries are awaited while they keep coming (5 s without one ends it), at most this long. */
const LATE_CAP_SECONDS = 60;

const USAGE = `usage: npm run bench -- queue [flags]

  --quick              smoke run: 100,000-message backlog and 100,000 delayed messages due over 5 s
  --messages <n>       backlog of the shared-ack scenarios (default 1,000,000; quick 100,000)
  --consumers <list>   consumer counts of the shared-ack scenarios, comma-separated (default 1,4,16)
  --threads <n>        most client worker threads per scenario (default: the machine's cores, ${os.availableParallelism()})
  --prefetch <n>       prefetch of every queue consumer (default 1000)
  --delayed <n>        delayed messages published (default 1,000,000; quick 100,000)
  --warmup <n>         delayed messages due in the second before the window, not measured (default 20,000; quick
                       5,000; 0 measures a cold broker)
  --due-window <s>     seconds over which the delayed messages fall due (default 20; quick 5)
  --publish-budget <s> most seconds the delayed messages are published for (default 90; quick 10); the first
                       falls due ${DUE_LEAD_SECONDS} s after it, so publishing never overlaps the due window
  --window <n>         unacknowledged sends of the delayed producer (default 10,000)
  --code dist|src      run broker and clients compiled (default; built first with tsc -b) or from their sources via tsx
  --only <ids>         comma-separated substrings of scenario ids, e.g. --only shared-ack-4c,delayed
  --profile            run each broker under --cpu-prof; print its top self-time functions per scenario
                       (profiles are kept in bench-results/<date>/queue-profiles/)
  --help               this text

scenario ids: shared-ack-<K>c for each consumer count (shared-ack-1c, shared-ack-4c, shared-ack-16c), delayed`;

const VALUE_FLAGS = ['messages', 'consumers', 'threads', 'prefetch', 'delayed', 'warmup', 'due-window', 'publish-budget', 'window', 'code', 'only'];

function parseArgs(args: readonly string[]): Parameters | null {
  const flags = Flags.parse(args, { switches: ['quick', 'profile'], values: VALUE_FLAGS, usage: USAGE });
  if (flags === null) return null;
  const quick = flags.has('quick');
  const number = (name: string, fallback: number, integer: boolean): number => flags.number(name, fallback, integer);
  const code = flags.get('code') ?? 'dist';
  if (code !== 'dist' && code !== 'src') throw new UsageError(`--code must be dist or src, not "${code}"`);
  const consumers = flags.get('consumers');
  const prefetch = number('prefetch', 1000, true);
  if (prefetch > 65_535) throw new UsageError('--prefetch is at most 65,535');
  const messages = number('messages', quick ? 100_000 : 1_000_000, true);
  const delayed = number('delayed', quick ? 100_000 : 1_000_000, true);
  const warmup = flags.get('warmup') === '0' ? 0 : number('warmup', quick ? 5_000 : 20_000, true);
  if (messages > 2 ** 31 - 1 || delayed + warmup > 2 ** 31 - 1) throw new UsageError('--messages and --delayed (with --warmup) are below 2^31');
  const only = flags.get('only');
  return {
    quick,
    partitions: 8,
    bodyBytes: 100,
    messages,
    consumerCounts: consumers === undefined ? [1, 4, 16] : consumers.split(',').map((part) => Flags.positive('consumers', part.trim(), true)),
    threads: number('threads', os.availableParallelism(), true),
    prefetch,
    delayed,
    warmup,
    dueWindowSeconds: number('due-window', quick ? 5 : 20, false),
    publishBudgetSeconds: number('publish-budget', quick ? 10 : 90, false),
    window: number('window', 10_000, true),
    code,
    profile: flags.has('profile'),
    sampleIntervalMs: 250,
    only: only === undefined ? null : only.split(',').map((part) => part.trim()).filter((part) => part.length > 0),
  };
}

// ---- small helpers --------------------------------------------------------------------------------------------------

function progress(text: string): void {
  process.stderr.write(`[queue] ${text}\n`);
}

/** The broker's answer to a delayed produce while no delay schedule is wired into it. */
function isUnsupportedDelay(text: string | null): boolean {
  return text !== null && /does not hold delayed messages/.test(text);
}

// ---- clients in worker threads --------------------------------------------------------------------------------------

const WORKER_ROLE = 'weir-bench-queue-client';

/** Int32 counters per worker in the pool's shared memory, so the main thread can read progress at any moment. */
const SLOT = {
  /** Deliveries handed out by the consumers (duplicates included). */
  delivered: 0,
  /** Acks the broker confirmed as applied. */
  acked: 1,
  /** Acks the broker ignored (the consumer no longer held the delivery) or applied only in part of their batch. */
  ackNotApplied: 2,
  /** Acks whose Settle request failed. */
  ackFailed: 3,
  /** Delayed messages the broker acknowledged (publisher). */
  published: 4,
  publishFailed: 5,
} as const;

interface WorkerBase extends WorkerIdentity {
  /** `dist`: the worker runs without the development condition, so weir-client and weir-protocol load compiled. */
  code: Code;
  broker: string;
  topic: string;
}

interface ConsumerWorkerConfig extends WorkerBase {
  kind: 'consumers';
  /**
   * `drain`: subscribe at `go` and ack everything; each delivery bumps `seen[partitionBase[partition] + offset]`.
   * `delayed`: subscribe before `ready`; each delivery bumps `seen[sequence]` (from the body) and records its lateness.
   */
  mode: 'drain' | 'delayed';
  group: string;
  prefetch: number;
  /** Queue consumers in this worker, each with its own WeirClient (connection); `firstConsumer` numbers them. */
  consumers: number;
  firstConsumer: number;
  /** Uint8Array: deliveries per message. */
  seen: SharedArrayBuffer;
  /** Drain: where each partition's offsets begin in `seen`, and how many it holds. */
  partitionBase: number[];
  partitionCount: number[];
  /** Delayed: sequences from this one on are the warm-up (lateness kept apart). */
  warmupFrom: number;
}

interface PublisherWorkerConfig extends WorkerBase {
  kind: 'publisher';
  messages: number;
  /** Sent first, due before the window, numbered from `messages` on. */
  warmup: number;
  bodyBytes: number;
  window: number;
  /** Stop sending after this many seconds, even if not all messages went out. */
  budgetSeconds: number;
}

type WorkerConfig = ConsumerWorkerConfig | PublisherWorkerConfig;

interface LatenessSummary extends LatencySummary {
  /** Smallest lateness seen (negative: early, by the high-resolution clock). */
  minMs: number;
}

interface WorkerStats {
  delivered: number;
  acked: number;
  ackNotApplied: number;
  ackFailed: number;
  /** Deliveries of a message this scenario had already seen delivered (any consumer). */
  duplicates: number;
  /** Deliveries with deliveryCount > 1 (the broker's own redelivery flag). */
  redelivered: number;
  /** Deliveries outside the expected messages (an offset past the backlog, an unknown sequence). */
  unexpected: number;
  firstError: string | null;
  /** Delayed: deliveries received while Date.now() was still below the due time. */
  early: number;
  lateness: LatenessSummary | null;
  /** Delayed: the warm-up's lateness (not in `lateness`). */
  warmupLateness: LatencySummary | null;
  /** Delayed: the largest lateness (ms) of the messages due in each second of the due window, so a bad tail can be placed. */
  worstLatenessBySecond: number[];
  /** Publisher. */
  published: number;
  publishFailed: number;
  publishSeconds: number;
  /** Publisher: wall time (ms since the epoch) when the last send was acknowledged. */
  publishEndEpochMs: number;
  seconds: number;
  /** Event-loop utilisation from `go` to the end of the work (1: never idle), and the share of it in GC pauses. */
  elu: number;
  gcShare: number;
}

type ToWorker = { type: 'go'; dueStartMs: number; dueWindowMs: number } | { type: 'finish' };

function emptyStats(): WorkerStats {
  return {
    delivered: 0,
    acked: 0,
    ackNotApplied: 0,
    ackFailed: 0,
    duplicates: 0,
    redelivered: 0,
    unexpected: 0,
    firstError: null,
    early: 0,
    lateness: null,
    warmupLateness: null,
    worstLatenessBySecond: [],
    published: 0,
    publishFailed: 0,
    publishSeconds: 0,
    publishEndEpochMs: 0,
    seconds: 0,
    elu: 0,
    gcShare: 0,
  };
}


/** Wall-clock milliseconds since the epoch with sub-millisecond resolution. */
function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Runs in a worker thread: queue consumers or the delayed publisher, driven by the main thread's messages. */
async function clientWorker(config: WorkerConfig): Promise<WorkerStats> {
  const receive = workerInbox<ToWorker>();
  const counters = new Int32Array(config.counters);
  const clients: WeirClient[] = [];
  try {
    const stats = config.kind === 'publisher' ? await runPublisher(config, clients, counters, receive) : await runConsumers(config, clients, counters, receive);
    await Promise.all(clients.map((client) => client.close()));
    return stats;
  } catch (error) {
    for (const client of clients) client.abort();
    throw error;
  }
}

async function runConsumers(config: ConsumerWorkerConfig, clients: WeirClient[], counters: Int32Array, receive: () => Promise<ToWorker>): Promise<WorkerStats> {
  const { base } = config;
  const stats = emptyStats();
  const seen = new Uint8Array(config.seen);
  const histogram = config.mode === 'delayed' ? newHistogram() : null;
  const warmupHistogram = config.mode === 'delayed' ? newHistogram() : null;
  let minLateness = Infinity;
  const consumers: QueueConsumer[] = [];
  for (let index = 0; index < config.consumers; index++) {
    const client = new WeirClient({ brokers: [config.broker], clientId: `bench-queue-consumer-${config.firstConsumer + index}` });
    clients.push(client);
    await client.metadata.partitionCount(config.topic); // connect before the clock starts
    consumers.push(client.queueConsumer({ group: config.group, mode: 'shared', prefetch: config.prefetch }));
  }
  // Delayed: attached before the publisher starts, so nothing falls due before a consumer is there.
  if (config.mode === 'delayed') await Promise.all(consumers.map((consumer) => consumer.subscribe(config.topic)));

  const onAck = (applied: SettleApplied): void => {
    if (applied === true) Atomics.store(counters, base + SLOT.acked, ++stats.acked);
    else Atomics.store(counters, base + SLOT.ackNotApplied, ++stats.ackNotApplied);
  };
  const onAckError = (error: unknown): void => {
    stats.firstError ??= `ack: ${errorText(error)}`;
    Atomics.store(counters, base + SLOT.ackFailed, ++stats.ackFailed);
  };
  const { partitionBase, partitionCount } = config;
  const drainSlot = (message: QueueMessage): number => {
    const count = partitionCount[message.partition];
    return count === undefined || message.offset < 0 || message.offset >= count ? -1 : partitionBase[message.partition]! + message.offset;
  };
  const delayedSlot = (message: QueueMessage): number => {
    // The thread's load is measured from the first delivery on (before it, the consumer only waits).
    if (stats.delivered === 0) {
      void meter.stop();
      meter = threadMeter();
    }
    if (message.body.byteLength < 12) return -1;
    const dueMs = message.body.readDoubleLE(0);
    const lateMs = wallMs() - dueMs;
    if (Date.now() < dueMs) stats.early++;
    const sequence = message.body.readUInt32LE(8);
    if (sequence >= config.warmupFrom) {
      warmupHistogram!.recordValue(Math.max(1, Math.round(lateMs * 1000)));
      return sequence < seen.length ? sequence : -1;
    }
    if (lateMs < minLateness) minLateness = lateMs;
    const second = Math.floor((dueMs - dueStartMs) / 1000);
    if (second >= 0 && second < 86_400) stats.worstLatenessBySecond[second] = Math.max(stats.worstLatenessBySecond[second] ?? 0, lateMs);
    histogram!.recordValue(Math.max(1, Math.round(lateMs * 1000)));
    return sequence < seen.length ? sequence : -1;
  };
  const slotOf = config.mode === 'drain' ? drainSlot : delayedSlot;

  const consume = async (consumer: QueueConsumer): Promise<void> => {
    if (config.mode === 'drain') await consumer.subscribe(config.topic);
    for await (const message of consumer) {
      const slot = slotOf(message);
      if (slot === -1) stats.unexpected++;
      else if (Atomics.add(seen, slot, 1) !== 0) stats.duplicates++;
      if (message.redelivered) stats.redelivered++;
      Atomics.store(counters, base + SLOT.delivered, ++stats.delivered);
      message.ack().then(onAck, onAckError);
    }
  };

  signalReady();
  const { dueStartMs } = await expectGo(receive);
  let meter = threadMeter();
  const loops = consumers.map((consumer) =>
    consume(consumer).catch((error: unknown) => {
      stats.firstError ??= `consumer: ${errorText(error)}`;
    }),
  );
  await expectMessage(receive, 'finish');
  // Outcomes still unsent go out with the Unsubscribe; then every loop ends.
  await Promise.all(consumers.map((consumer) => consumer.close()));
  await Promise.all(loops);
  const load = await meter.stop();
  if (histogram !== null) stats.lateness = { ...latencySummary(histogram), minMs: histogram.totalCount === 0 ? 0 : minLateness };
  if (warmupHistogram !== null && warmupHistogram.totalCount > 0) stats.warmupLateness = latencySummary(warmupHistogram);
  return { ...stats, ...load };
}

/**
 * The delayed publisher: a non-idempotent Producer, one `send` per message with up to `window` unacknowledged. Message
 * i is due at a time drawn uniformly from the due window; its body carries that time (float64, ms since the epoch) and
 * i (uint32). Failed sends are counted (the first error kept), and sending goes on until all are sent or the budget
 * is spent.
 */
async function runPublisher(config: PublisherWorkerConfig, clients: WeirClient[], counters: Int32Array, receive: () => Promise<ToWorker>): Promise<WorkerStats> {
  const { base } = config;
  const stats = emptyStats();
  const client = new WeirClient({ brokers: [config.broker], clientId: 'bench-queue-publisher' });
  clients.push(client);
  const producer = client.producer({ idempotent: false });
  await client.metadata.partitionCount(config.topic);
  signalReady();
  const go = await expectGo(receive);
  const meter = threadMeter();
  const template = randomFillSync(Buffer.allocUnsafe(config.bodyBytes));
  const began = now();
  let outstanding = 0;
  let wake: (() => void) | null = null;
  const settled = (): void => {
    outstanding--;
    if (wake !== null && (outstanding < config.window || outstanding === 0)) {
      const resume = wake;
      wake = null;
      resume();
    }
  };
  const onAck = (): void => {
    Atomics.store(counters, base + SLOT.published, ++stats.published);
    settled();
  };
  const onFail = (error: unknown): void => {
    stats.firstError ??= isWeirClientError(error) ? `${error.code}: ${error.message}` : errorText(error);
    Atomics.store(counters, base + SLOT.publishFailed, ++stats.publishFailed);
    settled();
  };
  const stopAt = began + config.budgetSeconds;
  const total = config.warmup + config.messages;
  for (let sent = 0; sent < total; sent++) {
    // The warm-up first, due in the second that ends half a second before the window, numbered after the others.
    const warm = sent < config.warmup;
    const sequence = warm ? config.messages + sent : sent - config.warmup;
    if (outstanding >= config.window) await new Promise<void>((resolve) => (wake = resolve));
    if ((sent & 0xff) === 0 && now() >= stopAt) break;
    const dueMs = warm ? Math.floor(go.dueStartMs - WARMUP_LEAD_SECONDS * 1000 + Math.random() * 1000) : Math.floor(go.dueStartMs + Math.random() * go.dueWindowMs);
    const body = Buffer.allocUnsafe(config.bodyBytes);
    template.copy(body);
    body.writeDoubleLE(dueMs, 0);
    body.writeUInt32LE(sequence, 8);
    outstanding++;
    producer.send(config.topic, { body, deliverAt: dueMs }).then(onAck, onFail);
  }
  while (outstanding > 0) await new Promise<void>((resolve) => (wake = resolve));
  stats.publishSeconds = now() - began;
  stats.publishEndEpochMs = Date.now();
  const load = await meter.stop();
  return { ...stats, ...load };
}

type ClientPool = WorkerPool<WorkerConfig, WorkerStats, ToWorker>;

function startClients(configs: ReadonlyArray<WorkerInput<WorkerConfig>>): Promise<ClientPool> {
  return WorkerPool.start<WorkerConfig, WorkerStats, ToWorker>(
    {
      module: import.meta.url,
      role: WORKER_ROLE,
      slotsPerWorker: 6,
      // The consumers end on `finish`, the publisher when done or out of budget: nothing polls a stop flag.
      stopSlot: false,
      name: (config) => `${config.kind} worker ${config.index}`,
      // Compiled code: no development condition, so weir-client and weir-protocol resolve to their dist folders.
      execArgv: (config) => (config.code === 'dist' ? [] : ['--conditions=development']),
    },
    configs,
  );
}

function sumStats(stats: readonly WorkerStats[], field: 'delivered' | 'acked' | 'ackNotApplied' | 'ackFailed' | 'duplicates' | 'redelivered' | 'unexpected' | 'early'): number {
  return stats.reduce((sum, entry) => sum + entry[field], 0);
}

// ---- results --------------------------------------------------------------------------------------------------------

type Status = 'ok' | 'unsupported' | 'failed';

interface Result extends ResultRow {
  id: string;
  /** `unsupported`: the broker does not offer the feature yet; `failed`: the scenario broke off (see notes). */
  status: Status;
  /** The machine the figures come from (describeMachine's first line; the report has the details). */
  machine: string;
  resources: Resources | null;
  /** Throughput target and whether it was met (shared-ack rows). */
  throughput: { requirement: string; met: boolean | null } | null;
  /** Exactly-once (shared-ack) or every-message-once-and-on-time (delayed) checks passed. */
  verified: boolean | null;
  lateness: LatenessSummary | null;
  /** Delayed: peak broker RSS while the messages were pending (before the first was due), and how many were pending. */
  pendingRss: { peakBytes: number; beforeFirstDueBytes: number; baselineBytes: number; pending: number } | null;
  /** The broker ran under --cpu-prof (its figures carry the profiler's overhead), and the summary of that profile. */
  profiled: boolean;
  profile: ProfileSummary | null;
  details: Record<string, unknown>;
}

interface Context {
  params: Parameters;
  machineLine: string;
  /** Where broker profiles go (with --profile). */
  profileRoot: string;
}

function failedResult(context: Context, id: string, scenario: string, error: unknown): Result {
  return {
    id,
    scenario,
    status: 'failed',
    machine: context.machineLine,
    messages: 0,
    seconds: 0,
    perSecond: 0,
    mbPerSecond: 0,
    notes: `FAILED: ${errorText(error).split('\n')[0]}`,
    resources: null,
    throughput: null,
    verified: null,
    lateness: null,
    pendingRss: null,
    profiled: context.params.profile,
    profile: null,
    details: { error: error instanceof Error ? (error.stack ?? error.message) : String(error) },
  };
}

async function startBroker(context: Context, id: string, dataDir: string, profiled = context.params.profile): Promise<BrokerProcess> {
  const profileDir = profiled ? join(context.profileRoot, id) : null;
  if (profileDir !== null) await mkdir(profileDir, { recursive: true });
  const broker = await BrokerProcess.start({ code: context.params.code, dataDir, label: id, profileDir, sampleIntervalMs: context.params.sampleIntervalMs, log: progress });
  progress(`${id}: broker pid ${broker.pid} on port ${broker.port}, started in ${formatNumber(broker.startSeconds, 2)} s${profileDir === null ? '' : ' (under --cpu-prof)'}`);
  return broker;
}

/** The summary of a stopped broker's --cpu-prof file; null without profiling (or when none was written). */
async function profileOf(context: Context, stop: BrokerStop, id: string): Promise<ProfileSummary | null> {
  if (!context.params.profile) return null;
  if (stop.profilePath === null) {
    progress(`${id}: no .cpuprofile was written (the broker did not exit cleanly?)`);
    return null;
  }
  const profile = JSON.parse(await readFile(stop.profilePath, 'utf8')) as CpuProfile;
  return summarizeCpuProfile(profile, { root: repoRoot, top: 20, file: relative(repoRoot, stop.profilePath) });
}

async function withAdmin<T>(address: string, work: (client: WeirClient) => Promise<T>): Promise<T> {
  const client = new WeirClient({ brokers: [address], clientId: 'bench-queue-admin' });
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

async function createTopic(address: string, topic: string, partitions: number): Promise<void> {
  await withAdmin(address, (client) => client.admin().createTopic(topic, { partitions, flushPolicy: 'sync' }));
}

/**
 * Writes `total` messages of `bodyBytes` (random bytes, the same for all) into `topic`: durable, non-idempotent Produce
 * requests of pre-built batches (prebuilt-batch.ts) on a bare connection, partitions in turn, one batch in flight per
 * partition. Untimed preparation; returns the messages stored per partition.
 */
async function fillBacklog(address: string, topic: string, total: number, bodyBytes: number): Promise<{ seconds: number; perPartition: number[] }> {
  return withAdmin(address, async (client) => {
    const began = now();
    const connection = await client.connection();
    const partitions = await client.metadata.partitionCount(topic);
    const messages = prebuiltBatch(bodyBytes);
    const perBatch = messages.length;
    let next = 0;
    await Promise.all(
      Array.from({ length: partitions }, async (_, partition) => {
        for (;;) {
          const count = Math.min(perBatch, total - next);
          if (count <= 0) return;
          next += count;
          await connection.request('Produce', {
            topic,
            partition,
            acks: 2,
            producerId: -1,
            producerEpoch: -1,
            baseSequence: -1,
            messages: count === perBatch ? messages : messages.slice(0, count),
          });
        }
      }),
    );
    const seconds = now() - began;
    const info = await client.admin().describeTopic(topic);
    const perPartition = info.partitions.map((partition) => partition.endOffset - partition.startOffset);
    return { seconds, perPartition };
  });
}

/** Spreads `consumers` over at most `threads` workers as evenly as possible: the consumer count of each worker. */
function spread(consumers: number, threads: number): number[] {
  const workers = Math.max(1, Math.min(consumers, threads));
  return Array.from({ length: workers }, (_, index) => Math.floor(consumers / workers) + (index < consumers % workers ? 1 : 0));
}

/** Deliveries per message in `seen`: how many were delivered at least once, and deliveries beyond the first. */
function countSeen(seen: Uint8Array): { distinct: number; extra: number; maxPerMessage: number } {
  let distinct = 0;
  let extra = 0;
  let maxPerMessage = 0;
  for (const count of seen) {
    if (count === 0) continue;
    distinct++;
    extra += count - 1;
    if (count > maxPerMessage) maxPerMessage = count;
  }
  return { distinct, extra, maxPerMessage };
}

/** What the broker still holds unsettled for the group (DescribeSharedGroup), summed over its topics. */
async function groupState(address: string, group: string): Promise<{ ready: number; unread: number; inflight: number; waiting: number } | string> {
  try {
    return await withAdmin(address, async (client) => {
      const description = await client.admin().describeSharedGroup(group);
      const total = { ready: 0, unread: 0, inflight: 0, waiting: 0 };
      for (const topic of description.topics) {
        total.ready += topic.ready;
        total.unread += topic.unread;
        total.inflight += topic.inflight;
        total.waiting += topic.waiting;
      }
      return total;
    });
  } catch (error) {
    return `DescribeSharedGroup failed: ${errorText(error)}`;
  }
}

/**
 * Polls `progressOf` every `intervalMs` until `done()` or no progress for `stallSeconds`; logs every 5 s. Resolves
 * with the time (now()) the condition was first seen, or null after a stall.
 */
async function waitFor(label: string, done: () => boolean, progressOf: () => number, stallSeconds: number, intervalMs = 2, deadline = Infinity): Promise<number | null> {
  let last = progressOf();
  let lastChange = now();
  let lastLog = now();
  for (;;) {
    if (done()) return now();
    const time = now();
    if (time >= deadline) return null;
    const value = progressOf();
    if (value !== last) {
      last = value;
      lastChange = time;
    } else if (time - lastChange > stallSeconds) {
      progress(`${label}: no progress for ${stallSeconds} s (at ${formatNumber(value)}); giving up`);
      return null;
    }
    if (time - lastLog >= 5) {
      lastLog = time;
      progress(`${label}: ${formatNumber(value)} …`);
    }
    await sleep(intervalMs);
  }
}

// ---- 1. shared consume with per-message ack -------------------------------------------------------------------------

async function sharedAckScenario(context: Context, id: string, consumers: number): Promise<Result> {
  const { params } = context;
  const total = params.messages;
  const bodyBytes = params.bodyBytes;
  return withTempDir(`queue-${id}`, async (dataDir) => {
    const broker = await startBroker(context, id, dataDir);
    let stop: BrokerStop | null = null;
    try {
      const topic = 'jobs';
      const group = 'workers';
      await createTopic(broker.address, topic, params.partitions);
      const fill = await fillBacklog(broker.address, topic, total, bodyBytes);
      const stored = fill.perPartition.reduce((sum, count) => sum + count, 0);
      if (stored !== total) throw new Error(`filling the backlog: ${stored} of ${total} messages stored`);
      progress(`${id}: filled ${formatNumber(total)} messages in ${formatNumber(fill.seconds, 1)} s (${formatNumber(total / fill.seconds)} msg/s)`);
      const partitionBase: number[] = [];
      fill.perPartition.reduce((offset, count) => (partitionBase.push(offset), offset + count), 0);
      const seenBuffer = new SharedArrayBuffer(total);
      const perWorker = spread(consumers, params.threads);
      let first = 0;
      const pool = await startClients(
        perWorker.map((count) => {
          const config: WorkerInput<WorkerConfig> = {
            kind: 'consumers',
            code: params.code,
            broker: broker.address,
            topic,
            mode: 'drain',
            group,
            prefetch: params.prefetch,
            consumers: count,
            firstConsumer: first,
            seen: seenBuffer,
            partitionBase,
            partitionCount: fill.perPartition,
            warmupFrom: total,
          };
          first += count;
          return config;
        }),
      );
      let stats: WorkerStats[];
      let start: Mark;
      let end: Mark;
      let endedAt: number | null;
      let state: Awaited<ReturnType<typeof groupState>>;
      try {
        start = mark(broker);
        pool.post({ type: 'go', dueStartMs: 0, dueWindowMs: 0 });
        endedAt = await waitFor(`${id}: acked`, () => pool.sum(SLOT.acked) >= total, () => pool.sum(SLOT.acked) + pool.sum(SLOT.ackNotApplied) + pool.sum(SLOT.ackFailed), 30);
        end = mark(broker);
        if (endedAt !== null) end.time = endedAt;
        // A short grace: a redelivery racing the last acks would show up here as a duplicate.
        await sleep(250);
        state = await groupState(broker.address, group);
        pool.post({ type: 'finish' });
        stats = await pool.results();
      } catch (error) {
        await pool.terminate();
        throw error;
      }
      stop = await broker.stop();

      const seen = countSeen(new Uint8Array(seenBuffer));
      const acked = sumStats(stats, 'acked');
      const notApplied = sumStats(stats, 'ackNotApplied');
      const ackFailed = sumStats(stats, 'ackFailed');
      const delivered = sumStats(stats, 'delivered');
      const duplicates = sumStats(stats, 'duplicates');
      const redelivered = sumStats(stats, 'redelivered');
      const unexpected = sumStats(stats, 'unexpected');
      const firstError = stats.find((entry) => entry.firstError !== null)?.firstError ?? null;
      const missing = total - seen.distinct;
      const unsettled = typeof state === 'string' ? null : state.ready + state.unread + state.inflight + state.waiting;
      const problems: string[] = [];
      if (endedAt === null) problems.push(`stalled: ${formatNumber(acked)} of ${formatNumber(total)} acked`);
      if (missing > 0) problems.push(`${formatNumber(missing)} never delivered`);
      if (duplicates > 0 || seen.extra > 0) problems.push(`${formatNumber(Math.max(duplicates, seen.extra))} DUPLICATE deliveries (redeliveries; up to ${seen.maxPerMessage} of one message)`);
      if (redelivered > 0) problems.push(`${formatNumber(redelivered)} deliveries flagged redelivered`);
      if (unexpected > 0) problems.push(`${formatNumber(unexpected)} deliveries outside the backlog`);
      if (notApplied > 0) problems.push(`${formatNumber(notApplied)} acks not applied`);
      if (ackFailed > 0) problems.push(`${formatNumber(ackFailed)} acks failed (${firstError})`);
      if (acked !== total && endedAt !== null) problems.push(`${formatNumber(acked)} acks applied for ${formatNumber(total)} messages`);
      if (typeof state === 'string') problems.push(state);
      else if (unsettled !== 0) problems.push(`broker still holds ${JSON.stringify(state)} for the group`);
      const verified = problems.length === 0;
      const seconds = end.time - start.time;
      const perSecond = acked / seconds;
      const met = verified ? perSecond >= THROUGHPUT_TARGET : false;
      const r = resources(broker, start, end, stop);
      const check = verified ? `each of ${formatNumber(total)} delivered and acked exactly once, group empty` : `CHECK: ${problems.join('; ')}`;
      const threads = stats.map((entry) => `${formatPercent(entry.elu)}`).join('/');
      return {
        id,
        scenario: `shared group, ${consumers} consumer${consumers === 1 ? '' : 's'} (${perWorker.length} thread${perWorker.length === 1 ? '' : 's'}), prefetch ${params.prefetch}, ack each, ${formatNumber(total)} × ${bodyBytes} B`,
        status: 'ok',
        machine: context.machineLine,
        messages: acked,
        seconds,
        perSecond,
        mbPerSecond: (acked * bodyBytes) / MB / seconds,
        notes:
          `target ≥ ${formatNumber(THROUGHPUT_TARGET)} msg/s: ${met ? 'met' : 'NOT met'}; ${resourceNotes(r)}; ` +
          `client loops busy ${threads}, GC ${stats.map((entry) => formatPercent(entry.gcShare)).join('/')}; ${check}${params.profile ? '; PROFILED' : ''}${broker.logSummary}`,
        resources: r,
        throughput: { requirement: `≥ ${formatNumber(THROUGHPUT_TARGET)} msg/s`, met },
        verified,
        lateness: null,
        pendingRss: null,
        profiled: params.profile,
        profile: await profileOf(context, stop, id),
        details: {
          consumers,
          clientThreads: perWorker.length,
          consumersPerThread: perWorker,
          prefetch: params.prefetch,
          partitions: params.partitions,
          bodyBytes,
          flushPolicy: 'sync',
          groupMode: 'shared',
          groupSettings: 'broker defaults (ackTimeoutMs 30,000, readAhead 10,000)',
          ack: 'message.ack() per message, not awaited; outcomes of one tick go out in one Settle (at most 1,000 each)',
          measured: 'from the go signal (consumers subscribe then) to the confirmation of the last ack',
          backlog: total,
          storedPerPartition: fill.perPartition,
          fillSeconds: fill.seconds,
          delivered,
          distinctDelivered: seen.distinct,
          missing,
          duplicates: Math.max(duplicates, seen.extra),
          redelivered,
          unexpected,
          acked,
          ackNotApplied: notApplied,
          ackFailed,
          firstError,
          groupStateAfter: state,
          problems,
          clientThreadLoad: stats.map((entry) => ({ elu: entry.elu, gcShare: entry.gcShare, delivered: entry.delivered, seconds: entry.seconds })),
        },
      };
    } finally {
      if (stop === null) broker.kill();
    }
  });
}

// ---- 2. delayed delivery --------------------------------------------------------------------------------------------

/** Sends one delayed message (due in an hour, to topic `probe`): null when the broker took it, else its answer. */
async function probeDelayed(address: string): Promise<string | null> {
  await createTopic(address, 'probe', 1);
  return withAdmin(address, async (client) => {
    try {
      await client.producer({ idempotent: false }).send('probe', { body: 'probe', deliverAt: Date.now() + 3_600_000 });
      return null;
    } catch (error) {
      return isWeirClientError(error) ? `${error.code}: ${error.message}` : errorText(error);
    }
  });
}

async function delayedScenario(context: Context, id: string): Promise<Result> {
  const { params } = context;
  const total = params.delayed;
  const bodyBytes = params.bodyBytes;
  const scenario =
    `delayed delivery, ${formatNumber(total)} × ${bodyBytes} B due over ${formatNumber(params.dueWindowSeconds)} s, 1 shared consumer (prefetch ${params.prefetch})` +
    (params.warmup > 0 ? `, after a warm-up of ${formatNumber(params.warmup)}` : ', cold');
  const unsupported = (answer: string): Result => {
    progress(`${id}: unsupported: a delayed produce was answered with ${answer}`);
    return unsupportedResult(context, id, scenario, answer);
  };
  const dueAfterSeconds = params.publishBudgetSeconds + DUE_LEAD_SECONDS;
  return withTempDir(`queue-${id}`, async (dataDir) => {
    const broker = await startBroker(context, id, dataDir);
    let stop: BrokerStop | null = null;
    try {
      const topic = 'delayed';
      const group = 'timers';
      await createTopic(broker.address, topic, params.partitions);
      const probe = await probeDelayed(broker.address);
      if (probe !== null) {
        stop = await broker.stop();
        if (isUnsupportedDelay(probe)) return unsupported(probe);
        throw new Error(`the probe (one delayed message) failed: ${probe}`);
      }

      // Sequences [0, total) are measured, [total, total + warmup) the warm-up.
      const seenBuffer = new SharedArrayBuffer(total + params.warmup);
      const consumers = await startClients([
        {
          kind: 'consumers',
          code: params.code,
          broker: broker.address,
          topic,
          mode: 'delayed',
          group,
          prefetch: params.prefetch,
          consumers: 1,
          firstConsumer: 0,
          seen: seenBuffer,
          partitionBase: [],
          partitionCount: [],
          warmupFrom: total,
        },
      ]);
      let publisher: ClientPool | null = null;
      let consumerStats: WorkerStats;
      let publisherStats: WorkerStats;
      let start: Mark;
      let publishedMark: Mark;
      let dueMark: Mark;
      let end: Mark;
      let baselineRss: number;
      let beforeFirstDueRss: number;
      let pendingPeakRss: number;
      let dueStartMs: number;
      let dueWindowMs: number;
      let complete: boolean;
      try {
        publisher = await startClients([
          { kind: 'publisher', code: params.code, broker: broker.address, topic, messages: total, warmup: params.warmup, bodyBytes, window: params.window, budgetSeconds: params.publishBudgetSeconds },
        ]);
        baselineRss = broker.sample()?.rssBytes ?? 0;
        const goEpochMs = Date.now();
        const goTime = now();
        dueStartMs = goEpochMs + Math.round(dueAfterSeconds * 1000);
        dueWindowMs = Math.round(params.dueWindowSeconds * 1000);
        const dueStartTime = goTime + (dueStartMs - goEpochMs) / 1000;
        start = mark(broker);
        consumers.post({ type: 'go', dueStartMs, dueWindowMs });
        publisher.post({ type: 'go', dueStartMs, dueWindowMs });
        const ticker = publishTicker(id, publisher, total);
        try {
          [publisherStats] = (await publisher.results(Math.max(120_000, dueAfterSeconds * 1000 * 4))) as [WorkerStats];
        } finally {
          clearInterval(ticker);
        }
        publisher = null;
        publishedMark = mark(broker);
        const publishedAt = publishedMark.time;
        const published = publisherStats.published;
        progress(
          `${id}: published ${formatNumber(published)} delayed messages in ${formatNumber(publisherStats.publishSeconds, 1)} s ` +
            `(${formatNumber(published / publisherStats.publishSeconds)} msg/s); first due in ${formatNumber(dueStartTime - publishedAt, 1)} s`,
        );
        if (publisherStats.publishFailed > 0 && isUnsupportedDelay(publisherStats.firstError)) {
          await consumers.terminate();
          stop = await broker.stop();
          return unsupported(publisherStats.firstError!);
        }
        // RSS with everything pending: sampled every 250 ms by the broker process; one more sample just before the first
        // due time (of the warm-up, when there is one).
        const firstDueTime = dueStartTime - (params.warmup > 0 ? WARMUP_LEAD_SECONDS : 0);
        const untilFirstDue = firstDueTime - now() - 0.1;
        if (untilFirstDue > 0) await sleep(untilFirstDue * 1000);
        beforeFirstDueRss = broker.sample()?.rssBytes ?? 0;
        pendingPeakRss = broker.samples.filter((sample) => sample.time >= goTime && sample.time < firstDueTime).reduce((peak, sample) => Math.max(peak, sample.rssBytes), 0);
        const untilDue = dueStartTime - now() - 0.1;
        if (untilDue > 0) await sleep(untilDue * 1000);
        dueMark = mark(broker);
        // Everything delivered and acked; else, once the window is over, until deliveries stop for 5 s (at most
        // LATE_CAP_SECONDS more): what has not come by then is missing.
        const allIn = (): boolean => consumers.sum(SLOT.acked) + consumers.sum(SLOT.ackNotApplied) + consumers.sum(SLOT.ackFailed) >= published && consumers.sum(SLOT.delivered) >= published;
        const delivered = (): number => consumers.sum(SLOT.delivered);
        const windowEnd = Math.max(dueStartTime + dueWindowMs / 1000, publishedAt);
        let ended = await waitFor(`${id}: delivered`, allIn, delivered, Infinity, 20, windowEnd);
        ended ??= await waitFor(`${id}: delivered (window over)`, allIn, delivered, 5, 20, windowEnd + LATE_CAP_SECONDS);
        complete = ended !== null;
        end = mark(broker);
        await sleep(250);
        consumers.post({ type: 'finish' });
        [consumerStats] = (await consumers.results()) as [WorkerStats];
      } catch (error) {
        await publisher?.terminate();
        await consumers.terminate();
        throw error;
      }
      stop = await broker.stop();

      const published = publisherStats.published;
      // Missing and duplicates count the warm-up too; the figures (messages, rates) only the measured window.
      const seen = countSeen(new Uint8Array(seenBuffer));
      const measured = countSeen(new Uint8Array(seenBuffer, 0, total));
      const missing = published - seen.distinct;
      const lateness = consumerStats.lateness!;
      progress(`${id}: worst lateness per second of the due window (ms): ${Array.from(consumerStats.worstLatenessBySecond, (ms) => formatNumber(ms ?? 0)).join(' ')}`);
      const publishEndedBeforeDue = publisherStats.publishEndEpochMs < dueStartMs;
      const problems: string[] = [];
      if (publisherStats.publishFailed > 0) problems.push(`${formatNumber(publisherStats.publishFailed)} sends failed (${publisherStats.firstError})`);
      if (!publishEndedBeforeDue) problems.push(`publishing ended ${formatNumber((publisherStats.publishEndEpochMs - dueStartMs) / 1000, 1)} s after the first due time: lateness includes publishing lag`);
      if (consumerStats.early > 0) problems.push(`${formatNumber(consumerStats.early)} EARLY deliveries (min lateness ${formatMs(lateness.minMs)})`);
      if (missing > 0) problems.push(`${formatNumber(missing)} MISSING`);
      if (seen.extra > 0) problems.push(`${formatNumber(seen.extra)} duplicate deliveries`);
      if (consumerStats.unexpected > 0) problems.push(`${formatNumber(consumerStats.unexpected)} unexpected deliveries`);
      if (consumerStats.ackFailed + consumerStats.ackNotApplied > 0) problems.push(`${formatNumber(consumerStats.ackFailed + consumerStats.ackNotApplied)} acks failed or not applied (${consumerStats.firstError})`);
      const verified = problems.length === 0;
      // CPU over the delivery (the due window and any lateness after it); publishing's is in the details.
      const r = resources(broker, dueMark, end, stop);
      const publishing = resources(broker, start, publishedMark, stop);
      const seconds = dueWindowMs / 1000;
      const received = consumerStats.delivered;
      return {
        id,
        scenario,
        status: 'ok',
        machine: context.machineLine,
        messages: measured.distinct,
        seconds,
        perSecond: measured.distinct / seconds,
        mbPerSecond: (measured.distinct * bodyBytes) / MB / seconds,
        notes:
          `lateness p50 ${formatMs(lateness.p50Ms)}, p90 ${formatMs(lateness.p90Ms)}, p99 ${formatMs(lateness.p99Ms)} (target ≤ ${LATENESS_P99_TARGET_MS} ms), p99.9 ${formatMs(lateness.p999Ms)}, max ${formatMs(lateness.maxMs)}; ` +
          `early ${formatNumber(consumerStats.early)}, missing ${formatNumber(missing)}; ` +
          `broker RSS with ${formatNumber(published)} pending: peak ${formatMiB(pendingPeakRss)} (target ≤ ${formatMiB(PENDING_RSS_TARGET_BYTES)} for ${formatNumber(PENDING_RSS_TARGET_COUNT)}; idle ${formatMiB(baselineRss)}); ` +
          `published at ${formatNumber(published / publisherStats.publishSeconds)} msg/s (broker CPU ${formatPercent(publishing.brokerCpu)})` +
          (params.warmup > 0 ? ` (with the warm-up of ${formatNumber(params.warmup)}; its lateness p50 ${formatMs(consumerStats.warmupLateness?.p50Ms ?? 0)}, p99 ${formatMs(consumerStats.warmupLateness?.p99Ms ?? 0)}, max ${formatMs(consumerStats.warmupLateness?.maxMs ?? 0)}, not in the figures above)` : ' (no warm-up: a cold broker)') +
          (published + publisherStats.publishFailed < total + params.warmup ? ` (the ${formatNumber(params.publishBudgetSeconds)} s budget ran out: ${formatNumber(published)} of ${formatNumber(total + params.warmup)} sent)` : '') +
          `; delivery: ${resourceNotes(r)}, consumer loop busy ${formatPercent(consumerStats.elu)}` +
          (verified ? '' : `; CHECK: ${problems.join('; ')}`) +
          (params.profile ? '; PROFILED' : '') +
          broker.logSummary,
        resources: r,
        throughput: null,
        verified,
        lateness,
        pendingRss: { peakBytes: pendingPeakRss, beforeFirstDueBytes: beforeFirstDueRss, baselineBytes: baselineRss, pending: published },
        profiled: params.profile,
        profile: await profileOf(context, stop, id),
        details: {
          delayed: total,
          published,
          publishFailed: publisherStats.publishFailed,
          publishSeconds: publisherStats.publishSeconds,
          publishPerSecond: published / publisherStats.publishSeconds,
          publisher: `Producer { idempotent: false }, one send per message with deliverAt, up to ${formatNumber(params.window)} unacknowledged, linger 5 ms (default), acks durable`,
          publishBudgetSeconds: params.publishBudgetSeconds,
          dueAfterSeconds,
          publishedAll: published === total + params.warmup,
          warmup: { messages: params.warmup, dueBeforeWindowSeconds: [WARMUP_LEAD_SECONDS, WARMUP_LEAD_SECONDS - 1], lateness: consumerStats.warmupLateness },
          dueWindowSeconds: params.dueWindowSeconds,
          dueTimes: 'uniformly random over the window, integer ms since the epoch',
          firstDueMs: dueStartMs,
          publishEndEpochMs: publisherStats.publishEndEpochMs,
          publishEndedBeforeDue,
          received,
          distinctReceived: seen.distinct,
          missing,
          duplicates: seen.extra,
          early: consumerStats.early,
          worstLatenessBySecondMs: Array.from(consumerStats.worstLatenessBySecond, (ms) => Math.round(ms ?? 0)),
          missingRule: `not received by the time deliveries stopped for 5 s after the window (at most ${LATE_CAP_SECONDS} s after it)`,
          earlyRule: 'received while Date.now() < due time (both integer ms on the same wall clock)',
          latenessClock: 'performance.timeOrigin + performance.now() in the consumer thread, minus the due time',
          complete,
          acked: consumerStats.acked,
          ackNotApplied: consumerStats.ackNotApplied,
          ackFailed: consumerStats.ackFailed,
          partitions: params.partitions,
          flushPolicy: 'sync',
          problems,
          consumerThread: { elu: consumerStats.elu, gcShare: consumerStats.gcShare },
          publishingCpu: { broker: publishing.brokerCpu, clients: publishing.clientCpu, seconds: publishedMark.time - start.time },
          cpuWindow: 'resources.brokerCpu and clientCpu cover the delivery: from the first due time until the last message came (or gave up)',
          publisherThread: { elu: publisherStats.elu, gcShare: publisherStats.gcShare },
        },
      };
    } finally {
      if (stop === null) broker.kill();
    }
  });
}

/** Logs the publisher's progress every 5 s: messages acknowledged, and the rate over the last interval. */
function publishTicker(id: string, publisher: ClientPool, total: number): NodeJS.Timeout {
  let last = 0;
  let lastTime = now();
  const timer = setInterval(() => {
    const published = publisher.sum(SLOT.published);
    const time = now();
    progress(`${id}: published ${formatNumber(published)} of ${formatNumber(total)} (${formatNumber((published - last) / (time - lastTime))} msg/s over the last ${formatNumber(time - lastTime, 0)} s)`);
    last = published;
    lastTime = time;
  }, 5_000);
  timer.unref();
  return timer;
}

function unsupportedResult(context: Context, id: string, scenario: string, answer: string): Result {
  return {
    id,
    scenario,
    status: 'unsupported',
    machine: context.machineLine,
    messages: 0,
    seconds: 0,
    perSecond: 0,
    mbPerSecond: 0,
    notes: `UNSUPPORTED: the broker answered a delayed produce with ${answer} (the delay schedule is not wired into the broker yet)`,
    resources: null,
    throughput: null,
    verified: null,
    lateness: null,
    pendingRss: null,
    profiled: context.params.profile,
    profile: null,
    details: { brokerAnswer: answer },
  };
}

// ---- targets and output ---------------------------------------------------------------------------------------------

function evaluateTargets(results: readonly Result[], params: Parameters): Target[] {
  const targets: Target[] = [];
  const quickNote = params.messages < 1_000_000 ? ` (${formatNumber(params.messages)}-message backlog)` : '';
  for (const result of results.filter((entry) => entry.id.startsWith('shared-ack'))) {
    const consumers = result.details.consumers as number | undefined;
    targets.push({
      name: `shared group, ack each, ${consumers ?? '?'} consumer${consumers === 1 ? '' : 's'}`,
      requirement: `≥ ${formatNumber(THROUGHPUT_TARGET)} msg/s, exactly once`,
      actual: result.status !== 'ok' ? result.status : `${formatNumber(result.perSecond)} msg/s${result.verified ? '' : ' (exactly-once CHECK FAILED)'}${quickNote}`,
      met: result.status !== 'ok' ? null : (result.throughput?.met ?? null),
    });
  }
  const delayed = results.find((entry) => entry.id === 'delayed');
  if (delayed !== undefined) {
    const ok = delayed.status === 'ok' && delayed.lateness !== null;
    targets.push({
      name: 'delayed delivery lateness',
      requirement: `p99 ≤ ${LATENESS_P99_TARGET_MS} ms, none early or missing`,
      actual: ok ? `p99 ${formatMs(delayed.lateness!.p99Ms)}, early ${formatNumber(delayed.details.early as number)}, missing ${formatNumber(delayed.details.missing as number)}` : delayed.status,
      met: ok ? delayed.lateness!.p99Ms <= LATENESS_P99_TARGET_MS && delayed.verified === true : null,
    });
    const pending = delayed.pendingRss;
    targets.push({
      name: 'broker RSS with delayed messages pending',
      requirement: `≤ ${formatMiB(PENDING_RSS_TARGET_BYTES)} with ${formatNumber(PENDING_RSS_TARGET_COUNT)} pending`,
      actual: pending === null ? delayed.status : `${formatMiB(pending.peakBytes)} with ${formatNumber(pending.pending)} pending`,
      // Only a run with the stated number pending can meet or miss it.
      met: pending === null || pending.pending < PENDING_RSS_TARGET_COUNT ? null : pending.peakBytes <= PENDING_RSS_TARGET_BYTES,
    });
  }
  return targets;
}

function summaryTable(results: readonly Result[]): string {
  return formatTable(
    [
      { title: 'scenario id' },
      { title: 'status' },
      { title: 'msg/s', align: 'right' },
      { title: 'target' },
      { title: 'check' },
      { title: 'broker CPU', align: 'right' },
      { title: 'clients CPU', align: 'right' },
      { title: 'broker RSS end', align: 'right' },
      { title: 'broker RSS peak', align: 'right' },
    ],
    results.map((result) => [
      result.id,
      result.status,
      result.status === 'ok' ? formatNumber(result.perSecond) : '-',
      result.throughput !== null ? `${result.throughput.requirement}: ${result.throughput.met ? 'met' : 'NOT met'}` : result.lateness !== null ? '(lateness table)' : '-',
      result.verified === null ? '-' : result.verified ? 'passed' : 'FAILED',
      result.resources === null ? '-' : formatPercent(result.resources.brokerCpu),
      result.resources === null ? '-' : formatPercent(result.resources.clientCpu),
      result.resources === null ? '-' : formatBytes(result.resources.brokerRssBytes),
      result.resources === null ? '-' : formatBytes(result.resources.brokerPeakRssBytes),
    ]),
  );
}

function delayedTable(results: readonly Result[]): string {
  const rows = results.filter((result) => result.lateness !== null);
  return formatTable(
    [
      { title: 'delayed', align: 'right' },
      { title: 'p50 ms', align: 'right' },
      { title: 'p90 ms', align: 'right' },
      { title: 'p99 ms (≤ 50)', align: 'right' },
      { title: 'p99.9 ms', align: 'right' },
      { title: 'max ms', align: 'right' },
      { title: 'early', align: 'right' },
      { title: 'missing', align: 'right' },
      { title: 'RSS pending peak (≤ 256 MiB @ 1M)', align: 'right' },
    ],
    rows.map((result) => {
      const lateness = result.lateness!;
      return [
        formatNumber(result.details.published as number),
        formatNumber(lateness.p50Ms, 1),
        formatNumber(lateness.p90Ms, 1),
        formatNumber(lateness.p99Ms, 1),
        formatNumber(lateness.p999Ms, 1),
        formatNumber(lateness.maxMs, 1),
        formatNumber(result.details.early as number),
        formatNumber(result.details.missing as number),
        result.pendingRss === null ? '-' : formatBytes(result.pendingRss.peakBytes),
      ];
    }),
  );
}

async function run(args: readonly string[]): Promise<void> {
  const params = parseArgs(args);
  if (params === null) {
    console.log(USAGE);
    return;
  }
  const { machine, commit, startedAt, busyBefore } = await startBrokerSuite('queue', progress);

  const scenarios: Array<{ id: string; scenario: string; run: (context: Context) => Promise<Result> }> = [];
  for (const consumers of params.consumerCounts) {
    const id = `shared-ack-${consumers}c`;
    scenarios.push({ id, scenario: `shared group, ${consumers} consumers`, run: (context) => sharedAckScenario(context, id, consumers) });
  }
  scenarios.push({ id: 'delayed', scenario: 'delayed delivery', run: (context) => delayedScenario(context, 'delayed') });
  const chosen = scenarios.filter((scenario) => params.only === null || params.only.some((part) => scenario.id.includes(part)));
  if (chosen.length === 0) throw new UsageError(`--only ${params.only?.join(',')} matched no scenario; ids: ${scenarios.map((scenario) => scenario.id).join(', ')}`);

  let buildSeconds: number | null = null;
  if (params.code === 'dist') {
    progress('building the broker and client (tsc -b) …');
    buildSeconds = buildBroker();
    progress(`built in ${formatNumber(buildSeconds, 1)} s`);
  }
  const context: Context = {
    params,
    machineLine: describeMachine(machine, commit).split('\n')[0]!.replace(/^machine:\s*/, ''),
    profileRoot: join(repoRoot, 'bench-results', today(), 'queue-profiles'),
  };

  const results: Result[] = [];
  for (const scenario of chosen) {
    progress(`${scenario.id} …`);
    let result: Result;
    try {
      result = await scenario.run(context);
    } catch (error) {
      progress(`${scenario.id}: FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      result = failedResult(context, scenario.id, scenario.scenario, error);
    }
    progress(`${result.id}: ${result.status === 'ok' ? `${formatNumber(result.perSecond)} msg/s; ` : ''}${result.notes}`);
    results.push(result);
  }

  const targets = evaluateTargets(results, params);
  const report = {
    suite: 'queue',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    units: {
      perSecond: 'shared-ack: messages whose ack the broker applied, per second of the drain; delayed: messages delivered per second of the due window',
      mbPerSecond: 'MB = 10^6 bytes of message bodies',
      cpu: 'share of one core over the measured window (1 = 100%)',
      lateness: 'milliseconds from a message’s due time (deliverAt) to its receipt by the consumer',
    },
    parameters: params,
    setup: {
      broker:
        params.code === 'dist'
          ? 'node packages/weir/dist/cli/main.js serve --port 0 --log-level warn (compiled), fresh data directory per scenario'
          : 'node --conditions=development --import tsx packages/weir/src/cli/main.ts serve --port 0 --log-level warn, fresh data directory per scenario',
      buildSeconds,
      clients: `weir-client ${params.code === 'dist' ? 'compiled' : 'sources through tsx'}, in worker_threads of this process, one WeirClient (connection) per consumer`,
      transport: 'TCP over loopback (127.0.0.1)',
    },
    machine,
    machineBusyBeforeStart: busyBefore,
    commit,
    results,
    targets,
  };
  const path = await publishReport('queue', report, machine, commit);
  console.log(resultTable(results));
  console.log();
  console.log(summaryTable(results));
  if (results.some((result) => result.lateness !== null)) {
    console.log();
    console.log(delayedTable(results));
  }
  console.log();
  console.log(targetTable(targets));
  for (const result of results) {
    if (result.profile === null) continue;
    console.log(`\nbroker CPU profile, ${result.id}:`);
    console.log(formatProfileSummary(result.profile));
  }
  console.log(`\nreport: ${path}`);
  if (results.some((result) => result.status === 'failed')) process.exitCode = 1;
}

export const queueSuite: Suite = { run };

// ---- worker entry ---------------------------------------------------------------------------------------------------

serveWorker(WORKER_ROLE, clientWorker);
