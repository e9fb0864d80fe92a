/**
 * The amqp suite's workloads, each run on one broker (amqp-brokers.ts) with clients in worker threads
 * (amqp-client.ts). Each declares a durable queue of its own (with the broker's queue arguments: the RabbitMQ queue
 * type), measures, checks what the queue holds afterwards, and deletes it.
 */
import { type Dirent, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Channel } from 'amqplib';
import { type ClientPool, type ClientReport, connectWithin, SLOT, startClients } from './amqp-client.js';
import type { Broker } from './amqp-brokers.js';
import { mark, windowResourceNotes, windowResources, type WindowResources } from './broker-process.js';
import { monotonicNs } from './client-workers.js';
import { scheduledGo } from './schedule.js';
import { errorText, formatBytes, formatMiB, formatMs, formatNumber, formatPercent, KiB, MB, now } from './report.js';

export interface WorkloadParameters {
  /** Messages per publish and consume measurement. */
  count: number;
  /** Body sizes of the publish workload; the first is also the consume workload's. */
  sizes: number[];
  backlog: number;
  rates: number[];
  warmupSeconds: number;
  durationSeconds: number;
  /** Unconfirmed publishes a throughput publisher keeps. */
  window: number;
  prefetch: number;
  /** Seconds without progress before a measurement is given up. */
  stallSeconds: number;
}

export interface Measurement {
  workload: string;
  broker: string;
  status: 'ok' | 'failed';
  error: string | null;
  /** The figures the comparison table reads, by key (see amqp.ts's ROWS). */
  figures: Record<string, number>;
  /** Checks that failed (lost or left-over messages, a rate not sustained); empty when all passed. */
  problems: string[];
  notes: string;
  resources: WindowResources | null;
  details: Record<string, unknown>;
}

export interface Workload {
  id: string;
  title: string;
  /** Runs on a broker started for it alone (restarted if other workloads ran before): it measures memory. */
  freshBroker?: boolean;
  run(broker: Broker, params: WorkloadParameters, log: (text: string) => void): Promise<Measurement>;
}

// ---- helpers --------------------------------------------------------------------------------------------------------

function sizeLabel(bytes: number): string {
  return bytes % KiB === 0 ? `${bytes / KiB} KiB` : `${bytes} B`;
}

export function sizeId(bytes: number): string {
  return bytes % KiB === 0 ? `${bytes / KiB}kib` : `${bytes}b`;
}

export function rateId(rate: number): string {
  return rate % 1000 === 0 ? `${rate / 1000}k` : String(rate);
}

let queueSerial = 0;

/** A durable queue of its own for `work`, deleted afterwards (also when `work` fails). */
async function withQueue<T>(broker: Broker, prefix: string, work: (queue: string) => Promise<T>): Promise<T> {
  const queue = `bench-${prefix}-${process.pid}-${++queueSerial}`;
  await adminCall(broker, (channel) => channel.assertQueue(queue, { durable: true, arguments: broker.queueArguments }));
  try {
    return await work(queue);
  } finally {
    if (broker.alive()) await adminCall(broker, (channel) => channel.deleteQueue(queue)).catch(() => {});
  }
}

/** One request on a connection of its own (queue declare, check, delete). */
async function adminCall<T>(broker: Broker, call: (channel: Channel) => Promise<T>): Promise<T> {
  const model = await connectWithin(broker.url, 10);
  try {
    const channel = await model.createChannel();
    channel.on('error', () => {});
    return await call(channel);
  } finally {
    await model.close().catch(() => {});
  }
}

/** Ready messages in the queue (queue.declare-ok's message_count, from a passive declare). */
async function queueDepth(broker: Broker, queue: string): Promise<number> {
  return (await adminCall(broker, (channel) => channel.checkQueue(queue))).messageCount;
}

/**
 * Waits for `pool` to report, watching its counter: logs progress every 5 s and gives up (terminating the workers)
 * when the counter stands still for `stallSeconds` or the broker process is gone.
 */
async function watch(pool: ClientPool, broker: Broker, label: string, total: number, stallSeconds: number, log: (text: string) => void): Promise<ClientReport[]> {
  const reports = pool.results(24 * 3600 * 1000);
  let settled = false;
  void reports.then(
    () => (settled = true),
    () => (settled = true),
  );
  let last = pool.sum(SLOT.done);
  let lastChange = now();
  let lastLog = now();
  let lastLogged = last;
  while (!settled) {
    // Short: the window's closing mark comes after this wait, and an idle tail would dilute its CPU figures.
    await sleep(20);
    const time = now();
    const done = pool.sum(SLOT.done);
    if (done !== last) {
      last = done;
      lastChange = time;
    }
    if (!broker.alive()) {
      await pool.terminate();
      throw new Error(`${label}: the broker process exited (at ${formatNumber(done)} of ${formatNumber(total)})`);
    }
    if (!settled && time - lastChange > stallSeconds) {
      await pool.terminate();
      throw new Error(`${label}: no progress for ${stallSeconds} s (at ${formatNumber(done)} of ${formatNumber(total)})`);
    }
    if (time - lastLog >= 5) {
      log(`${label}: ${formatNumber(done)} of ${formatNumber(total)} (${formatNumber((done - lastLogged) / (time - lastLog))} msg/s)`);
      lastLog = time;
      lastLogged = done;
    }
  }
  return reports;
}

function failedClientNote(report: ClientReport): string[] {
  const problems: string[] = [];
  if (report.failed > 0) problems.push(`${formatNumber(report.failed)} publishes nacked or failed (${report.firstError})`);
  if (report.blocked > 0) problems.push(`the broker blocked the connection ${report.blocked} times (resource alarm)`);
  return problems;
}

/** Bytes the files under `path` occupy on disk (allocated blocks, so preallocated segments count as what they take). */
function directoryBytes(path: string): number {
  let total = 0;
  let entries: Dirent[];
  try {
    entries = readdirSync(path, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) total += directoryBytes(child);
    else if (entry.isFile()) {
      try {
        total += statSync(child).blocks * 512;
      } catch {
        // Removed meanwhile.
      }
    }
  }
  return total;
}

/** Publishes `count` messages of `bodyBytes` with confirms into `queue`; returns the publisher's report and the window's resources. */
async function publishPhase(broker: Broker, queue: string, count: number, bodyBytes: number, params: WorkloadParameters, label: string, log: (text: string) => void) {
  const pool = await startClients([{ kind: 'publish', url: broker.url, queue, count, bodyBytes, window: params.window }]);
  const from = mark(broker);
  pool.post(scheduledGo());
  const [report] = (await watch(pool, broker, label, count, params.stallSeconds, log)) as [ClientReport];
  const to = mark(broker);
  return { report, resources: windowResources(broker, from, to) };
}

/** Consumes (prefetch, ack each) until `expected` arrived; returns the consumer's report and the window's resources. */
async function consumePhase(broker: Broker, queue: string, expected: number, params: WorkloadParameters, label: string, log: (text: string) => void) {
  const pool = await startClients([{ kind: 'consume', url: broker.url, queue, expected, prefetch: params.prefetch }]);
  const from = mark(broker);
  pool.post(scheduledGo());
  const [report] = (await watch(pool, broker, label, expected, params.stallSeconds, log)) as [ClientReport];
  const to = mark(broker);
  return { report, resources: windowResources(broker, from, to) };
}

function clientThread(report: ClientReport): { elu: number; gcShare: number } {
  return { elu: report.elu, gcShare: report.gcShare };
}

// ---- 1. durable publish with confirms -------------------------------------------------------------------------------

function publishWorkload(bodyBytes: number): Workload {
  const id = `publish-${sizeId(bodyBytes)}`;
  return {
    id,
    title: `publish ${sizeLabel(bodyBytes)}, persistent, confirms`,
    async run(broker, params, log) {
      return withQueue(broker, id, async (queue) => {
        const { report, resources } = await publishPhase(broker, queue, params.count, bodyBytes, params, `${broker.name} ${id}`, log);
        const stored = await queueDepth(broker, queue);
        const problems = failedClientNote(report);
        if (stored !== report.done) problems.push(`the queue holds ${formatNumber(stored)} messages after ${formatNumber(report.done)} confirms`);
        const perSecond = report.done / report.seconds;
        return {
          workload: id,
          broker: broker.name,
          status: 'ok',
          error: null,
          figures: { perSecond, mbPerSecond: (perSecond * bodyBytes) / MB },
          problems,
          notes: `${formatNumber(perSecond)} msg/s (${formatNumber((perSecond * bodyBytes) / MB, 1)} MB/s); ${windowResourceNotes(resources)}; publisher loop busy ${formatPercent(report.elu)}`,
          resources,
          details: { messages: params.count, bodyBytes, confirmed: report.done, seconds: report.seconds, stored, window: params.window, publisherThread: clientThread(report), firstError: report.firstError },
        };
      });
    },
  };
}

// ---- 2. consume with per-message ack from a pre-filled queue --------------------------------------------------------

const consumeWorkload = (bodyBytes: number): Workload => ({
  id: 'consume',
  title: `consume ${sizeLabel(bodyBytes)}, ack each, prefetch`,
  async run(broker, params, log) {
    return withQueue(broker, 'consume', async (queue) => {
      log(`${broker.name} consume: filling the queue with ${formatNumber(params.count)} messages (untimed) …`);
      const fill = await publishPhase(broker, queue, params.count, bodyBytes, params, `${broker.name} consume fill`, log);
      const problems = failedClientNote(fill.report);
      const { report, resources } = await consumePhase(broker, queue, fill.report.done, params, `${broker.name} consume`, log);
      // The consumer's channel is closed by now: an ack the broker had not applied would have put its message back.
      const left = await queueDepth(broker, queue);
      if (report.done < fill.report.done) problems.push(`${formatNumber(fill.report.done - report.done)} of ${formatNumber(fill.report.done)} messages not received`);
      if (left > 0) problems.push(`${formatNumber(left)} messages left in the queue after the acks`);
      if (report.redelivered > 0) problems.push(`${formatNumber(report.redelivered)} deliveries flagged redelivered`);
      const perSecond = report.done / report.seconds;
      return {
        workload: 'consume',
        broker: broker.name,
        status: 'ok',
        error: null,
        figures: { perSecond, mbPerSecond: (perSecond * bodyBytes) / MB },
        problems,
        notes: `${formatNumber(perSecond)} msg/s; ${windowResourceNotes(resources)}; consumer loop busy ${formatPercent(report.elu)}; filled at ${formatNumber(fill.report.done / fill.report.seconds)} msg/s`,
        resources,
        details: {
          messages: fill.report.done,
          bodyBytes,
          prefetch: params.prefetch,
          received: report.done,
          seconds: report.seconds,
          leftInQueue: left,
          redelivered: report.redelivered,
          fillPerSecond: fill.report.done / fill.report.seconds,
          consumerThread: clientThread(report),
          timing: 'from basic.consume to the last delivery (its ack sent); the queue is checked empty after the channel closed',
        },
      };
    });
  },
});

// ---- 3. end-to-end latency at a fixed rate --------------------------------------------------------------------------

function latencyWorkload(rate: number, bodyBytes: number): Workload {
  const id = `latency-${rateId(rate)}`;
  return {
    id,
    title: `latency at ${formatNumber(rate)} msg/s, ${sizeLabel(bodyBytes)}`,
    async run(broker, params, log) {
      return withQueue(broker, id, async (queue) => {
        const consumers = await startClients([{ kind: 'latency', url: broker.url, queue, prefetch: params.prefetch }]);
        let publishers: ClientPool | null = null;
        try {
          publishers = await startClients([{ kind: 'paced', url: broker.url, queue, rate, bodyBytes }]);
          // The consumer subscribes on `go`; the schedule begins 300 ms later, after its basic.consume-ok.
          const t0 = monotonicNs() + 300_000_000n;
          const windowStart = t0 + BigInt(Math.round(params.warmupSeconds * 1e9));
          const windowEnd = windowStart + BigInt(Math.round(params.durationSeconds * 1e9));
          consumers.post(scheduledGo(t0, windowStart, windowEnd));
          publishers.post(scheduledGo(t0, windowStart, windowEnd));
          log(`${broker.name} ${id}: ${formatNumber(params.warmupSeconds)} s warm-up, then ${formatNumber(params.durationSeconds)} s measured …`);
          await sleep(Number(windowStart - monotonicNs()) / 1e6);
          const from = mark(broker);
          await sleep(Number(windowEnd - monotonicNs()) / 1e6);
          const to = mark(broker);
          const scheduled = Math.ceil((params.warmupSeconds + params.durationSeconds + 0.25) * rate);
          const [publisher] = (await watch(publishers, broker, `${broker.name} ${id} publisher`, scheduled, params.stallSeconds, log)) as [ClientReport];
          // The consumer has what it gets within a few seconds of the last send; then it stops.
          const drainStart = now();
          while (consumers.sum(SLOT.done) < publisher.sent && now() - drainStart < 10 && broker.alive()) await sleep(20);
          const drainSeconds = now() - drainStart;
          consumers.post({ type: 'finish' });
          const [consumer] = (await watch(consumers, broker, `${broker.name} ${id} consumer`, publisher.sent, params.stallSeconds, log)) as [ClientReport];
          const resources = windowResources(broker, from, to);
          const expected = Math.round(params.durationSeconds * rate);
          const latency = consumer.latency!;
          const sendLag = publisher.sendLag!;
          const problems = failedClientNote(publisher);
          if (consumer.inWindow < expected) problems.push(`${formatNumber(expected - consumer.inWindow)} of ${formatNumber(expected)} messages of the window not received`);
          if (sendLag.maxMs >= 100 || publisher.behind > 0) problems.push(`the publisher fell behind its schedule (max lag ${formatMs(sendLag.maxMs)}): rate not sustained`);
          if (drainSeconds >= 1) problems.push(`the consumer lagged ${formatNumber(drainSeconds, 1)} s behind at the end: rate not sustained`);
          return {
            workload: id,
            broker: broker.name,
            status: 'ok',
            error: null,
            figures: { p50Ms: latency.p50Ms, p99Ms: latency.p99Ms, p999Ms: latency.p999Ms, maxMs: latency.maxMs, perSecond: consumer.inWindow / params.durationSeconds },
            problems,
            notes:
              `p50 ${formatMs(latency.p50Ms)}, p99 ${formatMs(latency.p99Ms)}, p99.9 ${formatMs(latency.p999Ms)}, max ${formatMs(latency.maxMs)}; ` +
              `confirm p50 ${formatMs(publisher.confirmLatency!.p50Ms)}, p99 ${formatMs(publisher.confirmLatency!.p99Ms)}; send lag p99 ${formatMs(sendLag.p99Ms)}; ${windowResourceNotes(resources)}`,
            resources,
            details: {
              rate,
              bodyBytes,
              warmupSeconds: params.warmupSeconds,
              durationSeconds: params.durationSeconds,
              scheduledInWindow: expected,
              receivedInWindow: consumer.inWindow,
              sent: publisher.sent,
              received: consumer.done,
              latency,
              confirmLatency: publisher.confirmLatency,
              sendLag,
              senderBehindAtEnd: publisher.behind,
              consumerCatchUpSeconds: drainSeconds,
              publisherThread: clientThread(publisher),
              consumerThread: clientThread(consumer),
              method: 'receive time − scheduled send time (t0 + i / rate, in the body), one monotonic clock; publisher on a confirm channel without a window, consumer prefetch + ack each',
            },
          };
        } finally {
          await publishers?.terminate();
          await consumers.terminate();
        }
      });
    },
  };
}

// ---- 4. a backlog: publish it, then drain it ------------------------------------------------------------------------

const BACKLOG_BODY_BYTES = 100;

const backlogWorkload: Workload = {
  id: 'backlog',
  freshBroker: true,
  title: `backlog of ${sizeLabel(BACKLOG_BODY_BYTES)} messages`,
  async run(broker, params, log) {
    return withQueue(broker, 'backlog', async (queue) => {
      const idle = broker.sample()?.rssBytes ?? NaN;
      const published = await publishPhase(broker, queue, params.backlog, BACKLOG_BODY_BYTES, params, `${broker.name} backlog publish`, log);
      const problems = failedClientNote(published.report);
      const stored = await queueDepth(broker, queue);
      if (stored !== published.report.done) problems.push(`the queue holds ${formatNumber(stored)} after ${formatNumber(published.report.done)} confirms`);
      const diskBytes = directoryBytes(broker.dataDir);
      const drained = await consumePhase(broker, queue, published.report.done, params, `${broker.name} backlog drain`, log);
      const left = await queueDepth(broker, queue);
      if (drained.report.done < published.report.done) problems.push(`${formatNumber(published.report.done - drained.report.done)} messages not received`);
      if (left > 0) problems.push(`${formatNumber(left)} messages left in the queue after the drain`);
      const publishRate = published.report.done / published.report.seconds;
      const drainRate = drained.report.done / drained.report.seconds;
      const peak = Math.max(published.resources.brokerRssPeakBytes, drained.resources.brokerRssPeakBytes);
      return {
        workload: 'backlog',
        broker: broker.name,
        status: 'ok',
        error: null,
        figures: { publishPerSecond: publishRate, drainPerSecond: drainRate, peakRssBytes: peak, heldRssBytes: published.resources.brokerRssEndBytes },
        problems,
        notes:
          `publish ${formatNumber(publishRate)} msg/s (broker CPU ${formatPercent(published.resources.brokerCpu)}), drain ${formatNumber(drainRate)} msg/s (broker CPU ${formatPercent(drained.resources.brokerCpu)}); ` +
          `broker RSS idle ${formatMiB(idle)}, holding the backlog ${formatMiB(published.resources.brokerRssEndBytes)}, peak ${formatMiB(peak)}; data on disk ${formatBytes(diskBytes)}`,
        // CPU is the drain's; a disturbance of either phase counts.
        resources: { ...drained.resources, brokerRssPeakBytes: peak, otherCpu: Math.max(published.resources.otherCpu, drained.resources.otherCpu) },
        details: {
          messages: params.backlog,
          bodyBytes: BACKLOG_BODY_BYTES,
          confirmed: published.report.done,
          received: drained.report.done,
          leftInQueue: left,
          publishSeconds: published.report.seconds,
          drainSeconds: drained.report.seconds,
          publishResources: published.resources,
          drainResources: drained.resources,
          idleRssBytes: idle,
          dataOnDiskBytes: diskBytes,
          publisherThread: clientThread(published.report),
          consumerThread: clientThread(drained.report),
          rss: 'sum over the broker process (RabbitMQ: beam.smp and its helper processes), sampled every sampleIntervalMs; peak over publish and drain',
        },
      };
    });
  },
};

// ---- warm-up ------------------------------------------------------------------------------------------------------

/**
 * Untimed, before the first workload on a broker: publish and drain a few thousand messages on a scratch queue, so
 * the first measurement does not pay for a cold broker (Weir's JIT, first files and allocations on either side).
 */
export async function warmUp(broker: Broker, params: WorkloadParameters, log: (text: string) => void): Promise<void> {
  const count = Math.min(params.count, 50_000);
  const began = now();
  await withQueue(broker, 'warmup', async (queue) => {
    const published = await publishPhase(broker, queue, count, params.sizes[0]!, params, `${broker.name} warm-up publish`, log);
    await consumePhase(broker, queue, published.report.done, params, `${broker.name} warm-up consume`, log);
  });
  log(`${broker.name}: warmed up with ${formatNumber(count)} messages in ${formatNumber(now() - began, 1)} s (untimed)`);
}

/** Every workload, in the order they run on each broker. */
export function workloads(params: WorkloadParameters): Workload[] {
  return [...params.sizes.map(publishWorkload), consumeWorkload(params.sizes[0]!), ...params.rates.map((rate) => latencyWorkload(rate, params.sizes[0]!)), backlogWorkload];
}

export function failedMeasurement(workload: string, broker: string, error: unknown): Measurement {
  return { workload, broker, status: 'failed', error: errorText(error), figures: {}, problems: [], notes: `FAILED: ${errorText(error).split('\n')[0]}`, resources: null, details: {} };
}

