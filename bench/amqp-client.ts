/**
 * AMQP 0-9-1 clients (amqplib) for the amqp suite, each in a worker thread of its own: its own event loop and
 * connection, as a separate application would have, so a busy consumer does not slow the publisher down and the main
 * thread stays free to sample the brokers. Progress is counted in shared memory (the main thread reads a rate at any
 * moment and notices a stall); each worker reports its figures once at the end.
 *
 * Tasks:
 * - publish: `count` persistent messages to the default exchange (routing key = queue) on a confirm channel, at most
 *   `window` unconfirmed, as fast as that allows.
 * - consume: basic.consume with prefetch `prefetch`, one basic.ack per message, until `expected` have arrived.
 * - paced: publish message i at t0 + i / rate (persistent, confirmed, no window), each body carrying its scheduled
 *   send time, until the latency window has passed (schedule.ts).
 * - latency: consume like `consume`; each delivery's latency is receive time − scheduled send time.
 * The scheduled time, not the moment publish() was called, is the start: a publisher that falls behind (the broker
 * pushing back, the loop stalled) shows up as latency instead of quietly lowering the rate (coordinated omission).
 * The worker-thread plumbing (pool, messages, meters) is client-workers.ts's.
 */
import { once } from 'node:events';
import { randomFillSync } from 'node:crypto';
import { connect, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { newHistogram } from './broker-process.js';
import {
  expectGo,
  latencySummary,
  type LatencySummary,
  monotonicNs,
  type PoolOptions,
  serveWorker,
  signalReady,
  threadMeter,
  workerInbox,
  type WorkerIdentity,
  type WorkerInput,
  WorkerPool,
} from './client-workers.js';
import { runSchedule, stampedBody, type ScheduledGo, type SendLag } from './schedule.js';
import { errorText, now } from './report.js';

// ---- connecting -----------------------------------------------------------------------------------------------------

export interface ServerInfo {
  product: string;
  version: string;
}

/** One connection attempt, bounded: a port that accepts TCP but never answers the handshake must not hang the run. */
export async function connectWithin(url: string, seconds: number): Promise<ChannelModel> {
  const attempt = connect(url, { timeout: seconds * 1000 });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no AMQP handshake within ${seconds} s`)), seconds * 1000);
  });
  try {
    const model = await Promise.race([attempt, timeout]);
    // A connection that fails later must not crash the thread with an unhandled 'error' event.
    model.on('error', () => {});
    return model;
  } catch (error) {
    void attempt.then((late) => late.close().catch(() => {}), () => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls until `url` completes an AMQP handshake, for at most `seconds`; `failure()` names a reason to stop early (the
 * broker process exited). Resolves with what the server says it is.
 */
export async function waitForAmqp(url: string, seconds: number, failure: () => string | null): Promise<ServerInfo> {
  const deadline = now() + seconds;
  let lastError = 'no attempt';
  for (;;) {
    const reason = failure();
    if (reason !== null) throw new Error(reason);
    try {
      const model = await connectWithin(url, Math.min(5, Math.max(1, deadline - now())));
      const properties = model.connection.serverProperties as { product?: string; version?: string };
      await model.close();
      return { product: String(properties.product ?? 'unknown'), version: String(properties.version ?? 'unknown') };
    } catch (error) {
      lastError = errorText(error);
    }
    if (now() >= deadline) throw new Error(`${url.replace(/\/\/[^@]*@/, '//')} did not accept an AMQP connection within ${seconds} s (last error: ${lastError})`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

// ---- tasks and reports ----------------------------------------------------------------------------------------------

interface TaskBase {
  url: string;
  queue: string;
}
export type ClientTask =
  | (TaskBase & { kind: 'publish'; count: number; bodyBytes: number; window: number })
  | (TaskBase & { kind: 'consume'; expected: number; prefetch: number })
  | (TaskBase & { kind: 'paced'; rate: number; bodyBytes: number })
  | (TaskBase & { kind: 'latency'; prefetch: number });

export interface ClientReport {
  /** Confirmed (publishers) or received and acked (consumers). */
  done: number;
  /** Publish calls made (publishers). */
  sent: number;
  /** Nacked or failed publishes. */
  failed: number;
  redelivered: number;
  firstError: string | null;
  /** From `go` to the last confirm (publish), the last delivery (consume), or the end of the schedule (paced). */
  seconds: number;
  /** The broker blocked the connection (a resource alarm) this many times. */
  blocked: number;
  /** latency: deliveries scheduled inside the measured window, and their latency. */
  inWindow: number;
  latency: LatencySummary | null;
  /** paced: time from scheduled send to the broker's confirm, in the window; how late the loop sent. */
  confirmLatency: LatencySummary | null;
  sendLag: SendLag | null;
  /** paced: messages still unsent when the schedule ended (the loop could not keep up). */
  behind: number;
  /** Event-loop utilisation of the thread while working (1: never idle) and its share in GC pauses. */
  elu: number;
  gcShare: number;
}

/** Sent by the main thread: start (with the latency schedule, on one monotonic clock), or stop consuming. */
export type ToClient = ScheduledGo | { type: 'finish' };

interface ClientConfig extends WorkerIdentity {
  task: ClientTask;
}

/** Int32 counters per worker, so the main thread can watch progress. */
export const SLOT = {
  /** Confirmed (publishers) or received (consumers). */
  done: 0,
  sent: 1,
  failed: 2,
} as const;

const POOL: PoolOptions<ClientConfig> = {
  module: import.meta.url,
  role: 'weir-bench-amqp-client',
  slotsPerWorker: 3,
  stopSlot: false,
  name: (config) => `${config.task.kind} client`,
};

export type ClientPool = WorkerPool<ClientConfig, ClientReport, ToClient>;

/** Client workers for `tasks`, one each, connected and waiting for `go`. */
export function startClients(tasks: readonly ClientTask[]): Promise<ClientPool> {
  return WorkerPool.start<ClientConfig, ClientReport, ToClient>(POOL, tasks.map((task): WorkerInput<ClientConfig> => ({ task })));
}

function emptyReport(): ClientReport {
  return { done: 0, sent: 0, failed: 0, redelivered: 0, firstError: null, seconds: 0, blocked: 0, inWindow: 0, latency: null, confirmLatency: null, sendLag: null, behind: 0, elu: 0, gcShare: 0 };
}

// ---- the worker side ------------------------------------------------------------------------------------------------

interface WorkerContext {
  task: ClientTask;
  report: ClientReport;
  counters: Int32Array;
  base: number;
  receive: () => Promise<ToClient>;
}

async function clientWorker(config: ClientConfig): Promise<ClientReport> {
  const receive = workerInbox<ToClient>();
  const context: WorkerContext = { task: config.task, report: emptyReport(), counters: new Int32Array(config.counters), base: config.base, receive };
  let model: ChannelModel | null = null;
  try {
    model = await connectWithin(config.task.url, 10);
    model.on('blocked', () => context.report.blocked++);
    model.on('close', (error?: Error) => {
      if (error !== undefined) context.report.firstError ??= `connection closed: ${errorText(error)}`;
    });
    const work = { publish: runPublisher, consume: runConsumer, paced: runPaced, latency: runConsumer }[config.task.kind];
    return await work(context, model);
  } finally {
    await model?.close().catch(() => {});
  }
}

/** The channel's fatal error, as a promise that only ever rejects: raced against waits that would otherwise hang. */
function channelFailure(channel: { once(event: 'close' | 'error', listener: (error?: Error) => void): unknown }, context: WorkerContext): Promise<never> {
  const failure = new Promise<never>((_, reject) => {
    channel.once('error', (error?: Error) => {
      context.report.firstError ??= `channel error: ${errorText(error)}`;
      reject(new Error(`channel error: ${errorText(error)}`));
    });
    channel.once('close', () => reject(new Error(`channel closed${context.report.firstError ? ` (${context.report.firstError})` : ''}`)));
  });
  failure.catch(() => {});
  return failure;
}

async function runPublisher(context: WorkerContext, model: ChannelModel): Promise<ClientReport> {
  const task = context.task as Extract<ClientTask, { kind: 'publish' }>;
  const { report, counters, base } = context;
  const channel = await model.createConfirmChannel();
  const failure = channelFailure(channel, context);
  const body = randomFillSync(Buffer.allocUnsafe(task.bodyBytes));
  signalReady();
  await expectGo(context.receive);
  const meter = threadMeter();
  const began = now();
  let outstanding = 0;
  let wake: (() => void) | null = null;
  const onConfirm = (error: unknown): void => {
    outstanding--;
    if (error === null || error === undefined) Atomics.store(counters, base + SLOT.done, ++report.done);
    else {
      report.firstError ??= `nack: ${errorText(error)}`;
      Atomics.store(counters, base + SLOT.failed, ++report.failed);
    }
    if (wake !== null && outstanding < task.window) {
      const resume = wake;
      wake = null;
      resume();
    }
  };
  const waitFor = (promise: Promise<unknown>): Promise<unknown> => Promise.race([promise, failure]);
  for (let index = 0; index < task.count; index++) {
    if (outstanding >= task.window) await waitFor(new Promise<void>((resolve) => (wake = resolve)));
    outstanding++;
    const writable = channel.sendToQueue(task.queue, body, { persistent: true }, onConfirm);
    Atomics.store(counters, base + SLOT.sent, ++report.sent);
    // false: the socket's buffer is full; carrying on would only queue frames in memory.
    if (!writable) await waitFor(once(channel, 'drain'));
  }
  while (outstanding > 0) await waitFor(new Promise<void>((resolve) => (wake = resolve)));
  report.seconds = now() - began;
  const { elu, gcShare } = await meter.stop();
  await channel.close().catch(() => {});
  return { ...report, elu, gcShare };
}

/** consume and latency: prefetch, ack each delivery on its own, until `expected` arrived or the main thread says finish. */
async function runConsumer(context: WorkerContext, model: ChannelModel): Promise<ClientReport> {
  const task = context.task as Extract<ClientTask, { kind: 'consume' | 'latency' }>;
  const { report, counters, base } = context;
  const channel = await model.createChannel();
  const failure = channelFailure(channel, context);
  await channel.prefetch(task.prefetch);
  const histogram = task.kind === 'latency' ? newHistogram() : null;
  const expected = task.kind === 'consume' ? task.expected : Infinity;
  signalReady();
  const go = await expectGo(context.receive);
  const meter = threadMeter();
  const began = now();
  let lastAt = began;
  let complete!: () => void;
  const completed = new Promise<void>((resolve) => (complete = resolve));
  const onMessage = (message: ConsumeMessage | null): void => {
    if (message === null) {
      report.firstError ??= 'the broker cancelled the consumer';
      complete();
      return;
    }
    if (histogram !== null && message.content.byteLength >= 8) {
      const scheduled = message.content.readBigInt64LE(0);
      const latencyNs = Number(monotonicNs() - scheduled);
      if (scheduled >= go.windowStart && scheduled < go.windowEnd) {
        histogram.recordValue(Math.max(1, Math.round(latencyNs / 1000)));
        report.inWindow++;
      }
    }
    if (message.fields.redelivered) report.redelivered++;
    channel.ack(message);
    Atomics.store(counters, base + SLOT.done, ++report.done);
    if (report.done >= expected) {
      lastAt = now();
      complete();
    }
  };
  const { consumerTag } = await channel.consume(task.queue, onMessage, { noAck: false });
  // The main thread's `finish` ends a latency consumer (it has no count to reach) or one that stalled.
  void context.receive().then((message) => {
    if (message.type === 'finish') complete();
  });
  await Promise.race([completed, failure]);
  report.seconds = (report.done >= expected ? lastAt : now()) - began;
  const { elu, gcShare } = await meter.stop();
  // Cancel first, so nothing more arrives; closing the channel hands anything unacked back to the queue.
  await channel.cancel(consumerTag).catch(() => {});
  await channel.close().catch(() => {});
  if (histogram !== null) report.latency = latencySummary(histogram);
  return { ...report, elu, gcShare };
}

/** Publishes on the schedule (schedule.ts); each body carries its scheduled send time and its sequence number. */
async function runPaced(context: WorkerContext, model: ChannelModel): Promise<ClientReport> {
  const task = context.task as Extract<ClientTask, { kind: 'paced' }>;
  const { report, counters, base } = context;
  const channel = await model.createConfirmChannel();
  const failure = channelFailure(channel, context);
  const template = randomFillSync(Buffer.allocUnsafe(Math.max(12, task.bodyBytes)));
  signalReady();
  const go = await expectGo(context.receive);
  const meter = threadMeter();
  const t0 = go.t0;
  const windowStartNs = Number(go.windowStart - t0);
  const windowEndNs = Number(go.windowEnd - t0);
  const confirmed = newHistogram();
  let outstanding = 0;
  let drained: (() => void) | null = null;
  const settle = (error: unknown, intendedNs: number | null): void => {
    outstanding--;
    if (error === null || error === undefined) {
      if (intendedNs !== null) confirmed.recordValue(Math.max(1, Math.round((Number(monotonicNs() - t0) - intendedNs) / 1000)));
      Atomics.store(counters, base + SLOT.done, ++report.done);
    } else {
      report.firstError ??= `nack: ${errorText(error)}`;
      Atomics.store(counters, base + SLOT.failed, ++report.failed);
    }
    if (outstanding === 0 && drained !== null) drained();
  };
  const began = now();
  const schedule = await Promise.race([
    failure,
    runSchedule({
      t0,
      rate: task.rate,
      // 0.25 s past the window, so the window's last messages meet the same load as the rest.
      stopAtNs: Number(go.windowEnd - t0) + 0.25e9,
      send(i, intendedNs) {
        const body = stampedBody(template, t0 + BigInt(intendedNs), i);
        const inWindow = intendedNs >= windowStartNs && intendedNs < windowEndNs;
        outstanding++;
        channel.sendToQueue(task.queue, body, { persistent: true }, (error: unknown) => settle(error, inWindow ? intendedNs : null));
        report.sent = i + 1;
      },
      progress: (sent) => Atomics.store(counters, base + SLOT.sent, sent),
    }),
  ]);
  report.seconds = now() - began;
  report.behind = schedule.behind;
  if (outstanding > 0) await Promise.race([failure, new Promise<void>((resolve) => (drained = resolve))]);
  const { elu, gcShare } = await meter.stop();
  await channel.close().catch(() => {});
  report.sendLag = schedule.sendLag;
  report.confirmLatency = latencySummary(confirmed);
  return { ...report, elu, gcShare };
}

serveWorker(POOL.role, clientWorker);
