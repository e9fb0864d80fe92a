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
 *   send time, until the latency window has passed.
 * - latency: consume like `consume`; each delivery's latency is receive time − scheduled send time.
 * The scheduled time, not the moment publish() was called, is the start: a publisher that falls behind (the broker
 * pushing back, the loop stalled) shows up as latency instead of quietly lowering the rate (coordinated omission).
 */
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { randomFillSync } from 'node:crypto';
import { connect, type ChannelModel, type ConsumeMessage } from 'amqplib';
import type { Histogram } from 'hdr-histogram-js';
import { newHistogram } from './broker-process.js';
import { errorText, GcMeter, now } from './report.js';

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

export interface LatencySummary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

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
  sendLag: { p50Ms: number; p99Ms: number; maxMs: number } | null;
  /** paced: messages still unsent when the schedule ended (the loop could not keep up). */
  behind: number;
  /** Event-loop utilisation of the thread while working (1: never idle) and its share in GC pauses. */
  elu: number;
  gcShare: number;
}

/** Sent by the main thread: start (with the latency schedule, on one monotonic clock), or stop consuming. */
export type ToClient = { type: 'go'; t0: bigint; windowStart: bigint; windowEnd: bigint } | { type: 'finish' };
type FromClient = { type: 'ready' } | { type: 'done'; report: ClientReport } | { type: 'failed'; error: string };

const WORKER_ROLE = 'weir-bench-amqp-client';
/** Int32 counters per worker: done, sent, failed. */
const SLOTS = 3;
const DONE = 0;
const SENT = 1;
const FAILED = 2;

function emptyReport(): ClientReport {
  return { done: 0, sent: 0, failed: 0, redelivered: 0, firstError: null, seconds: 0, blocked: 0, inWindow: 0, latency: null, confirmLatency: null, sendLag: null, behind: 0, elu: 0, gcShare: 0 };
}

function summary(histogram: Histogram): LatencySummary {
  const ms = (micros: number): number => micros / 1000;
  return {
    count: histogram.totalCount,
    p50Ms: ms(histogram.getValueAtPercentile(50)),
    p90Ms: ms(histogram.getValueAtPercentile(90)),
    p99Ms: ms(histogram.getValueAtPercentile(99)),
    p999Ms: ms(histogram.getValueAtPercentile(99.9)),
    maxMs: ms(histogram.maxValue),
    meanMs: ms(histogram.mean),
  };
}

/** process.hrtime is CLOCK_MONOTONIC, the same clock in every thread of the process: sender and receiver agree on it. */
export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

// ---- the worker side ------------------------------------------------------------------------------------------------

interface WorkerContext {
  task: ClientTask;
  report: ClientReport;
  counters: Int32Array;
  base: number;
  receive: () => Promise<ToClient>;
}

async function clientWorker(config: { task: ClientTask; index: number; counters: SharedArrayBuffer }): Promise<void> {
  const port = parentPort!;
  const inbox: ToClient[] = [];
  const waiters: Array<(message: ToClient) => void> = [];
  port.on('message', (message: ToClient) => {
    const waiter = waiters.shift();
    if (waiter !== undefined) waiter(message);
    else inbox.push(message);
  });
  const receive = (): Promise<ToClient> => (inbox.length > 0 ? Promise.resolve(inbox.shift()!) : new Promise((resolve) => waiters.push(resolve)));
  const context: WorkerContext = { task: config.task, report: emptyReport(), counters: new Int32Array(config.counters), base: config.index * SLOTS, receive };
  let model: ChannelModel | null = null;
  try {
    model = await connectWithin(config.task.url, 10);
    model.on('blocked', () => context.report.blocked++);
    model.on('close', (error?: Error) => {
      if (error !== undefined) context.report.firstError ??= `connection closed: ${errorText(error)}`;
    });
    const work = { publish: runPublisher, consume: runConsumer, paced: runPaced, latency: runConsumer }[config.task.kind];
    const report = await work(context, model);
    await model.close().catch(() => {});
    port.postMessage({ type: 'done', report } satisfies FromClient);
  } catch (error) {
    await model?.close().catch(() => {});
    port.postMessage({ type: 'failed', error: error instanceof Error ? (error.stack ?? error.message) : String(error) } satisfies FromClient);
  }
}

async function expectGo(receive: () => Promise<ToClient>): Promise<Extract<ToClient, { type: 'go' }>> {
  const message = await receive();
  if (message.type !== 'go') throw new Error(`expected go, got ${message.type}`);
  return message;
}

/** Event-loop utilisation and GC share of this thread from now until `stop()`. */
function threadMeter(): { stop(): Promise<{ elu: number; gcShare: number }> } {
  const gc = new GcMeter();
  gc.start();
  const from = performance.eventLoopUtilization();
  return {
    async stop() {
      const elu = performance.eventLoopUtilization(from).utilization;
      return { elu, gcShare: (await gc.stop()).share };
    },
  };
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
  parentPort!.postMessage({ type: 'ready' } satisfies FromClient);
  await expectGo(context.receive);
  const meter = threadMeter();
  const began = now();
  let outstanding = 0;
  let wake: (() => void) | null = null;
  const onConfirm = (error: unknown): void => {
    outstanding--;
    if (error === null || error === undefined) Atomics.store(counters, base + DONE, ++report.done);
    else {
      report.firstError ??= `nack: ${errorText(error)}`;
      Atomics.store(counters, base + FAILED, ++report.failed);
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
    Atomics.store(counters, base + SENT, ++report.sent);
    // false: the socket's buffer is full; carrying on would only queue frames in memory.
    if (!writable) await waitFor(once(channel, 'drain'));
  }
  while (outstanding > 0) await waitFor(new Promise<void>((resolve) => (wake = resolve)));
  report.seconds = now() - began;
  const load = await meter.stop();
  await channel.close().catch(() => {});
  return { ...report, ...load };
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
  parentPort!.postMessage({ type: 'ready' } satisfies FromClient);
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
    Atomics.store(counters, base + DONE, ++report.done);
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
  const load = await meter.stop();
  // Cancel first, so nothing more arrives; closing the channel hands anything unacked back to the queue.
  await channel.cancel(consumerTag).catch(() => {});
  await channel.close().catch(() => {});
  if (histogram !== null) report.latency = summary(histogram);
  return { ...report, ...load };
}

/**
 * Sends every message that has come due, each carrying its scheduled time. Timers only resolve whole milliseconds, so
 * the last stretch before a due time is slept in Atomics.wait (sub-millisecond) from a setImmediate callback, after the
 * event loop has done its I/O (as the native suite's paced producer does).
 */
async function runPaced(context: WorkerContext, model: ChannelModel): Promise<ClientReport> {
  const task = context.task as Extract<ClientTask, { kind: 'paced' }>;
  const { report, counters, base } = context;
  const channel = await model.createConfirmChannel();
  const failure = channelFailure(channel, context);
  const template = randomFillSync(Buffer.allocUnsafe(Math.max(12, task.bodyBytes)));
  parentPort!.postMessage({ type: 'ready' } satisfies FromClient);
  const go = await expectGo(context.receive);
  const meter = threadMeter();
  const t0 = go.t0;
  const intervalNs = 1e9 / task.rate;
  // The schedule runs 0.25 s past the window, so the window's last messages meet the same load as the rest.
  const stopAtNs = Number(go.windowEnd - t0) + 0.25e9;
  const windowStartNs = Number(go.windowStart - t0);
  const windowEndNs = Number(go.windowEnd - t0);
  const lag = newHistogram();
  const confirmed = newHistogram();
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  let outstanding = 0;
  let drained: (() => void) | null = null;
  const settle = (error: unknown, intendedNs: number | null): void => {
    outstanding--;
    if (error === null || error === undefined) {
      if (intendedNs !== null) confirmed.recordValue(Math.max(1, Math.round((Number(monotonicNs() - t0) - intendedNs) / 1000)));
      Atomics.store(counters, base + DONE, ++report.done);
    } else {
      report.firstError ??= `nack: ${errorText(error)}`;
      Atomics.store(counters, base + FAILED, ++report.failed);
    }
    if (outstanding === 0 && drained !== null) drained();
  };
  const began = now();
  await Promise.race([
    failure,
    new Promise<void>((resolve) => {
      const tick = (): void => {
        const elapsed = Number(monotonicNs() - t0);
        const due = elapsed < 0 ? 0 : Math.min(Math.floor(elapsed / intervalNs) + 1, Math.ceil(stopAtNs / intervalNs));
        while (report.sent < due) {
          const intendedNs = Math.round(report.sent * intervalNs);
          const body = Buffer.allocUnsafe(template.byteLength);
          template.copy(body);
          body.writeBigInt64LE(t0 + BigInt(intendedNs), 0);
          body.writeUInt32LE(report.sent >>> 0, 8);
          const inWindow = intendedNs >= windowStartNs && intendedNs < windowEndNs;
          outstanding++;
          channel.sendToQueue(task.queue, body, { persistent: true }, (error: unknown) => settle(error, inWindow ? intendedNs : null));
          lag.recordValue(Math.max(1, Math.round((elapsed - intendedNs) / 1000)));
          report.sent++;
        }
        Atomics.store(counters, base + SENT, report.sent);
        if (report.sent * intervalNs >= stopAtNs) {
          report.behind = Math.max(0, Math.min(Math.floor(Number(monotonicNs() - t0) / intervalNs) + 1, Math.ceil(stopAtNs / intervalNs)) - report.sent);
          resolve();
          return;
        }
        const untilNextMs = (report.sent * intervalNs - Number(monotonicNs() - t0)) / 1e6;
        if (untilNextMs > 2) {
          setTimeout(tick, Math.floor(untilNextMs) - 1);
          return;
        }
        setImmediate(() => {
          const remainingMs = (report.sent * intervalNs - Number(monotonicNs() - t0)) / 1e6;
          if (remainingMs > 0.02) Atomics.wait(sleeper, 0, 0, Math.min(remainingMs, 0.2));
          tick();
        });
      };
      setTimeout(tick, Math.max(0, Math.floor(Number(t0 - monotonicNs()) / 1e6) - 1));
    }),
  ]);
  report.seconds = now() - began;
  if (outstanding > 0) await Promise.race([failure, new Promise<void>((resolve) => (drained = resolve))]);
  const load = await meter.stop();
  await channel.close().catch(() => {});
  report.sendLag = { p50Ms: lag.getValueAtPercentile(50) / 1000, p99Ms: lag.getValueAtPercentile(99) / 1000, maxMs: lag.maxValue / 1000 };
  report.confirmLatency = summary(confirmed);
  return { ...report, ...load };
}

// ---- the main-thread side -------------------------------------------------------------------------------------------

/** Client workers, started and connected before `go`, counting progress in shared memory. */
export class ClientPool {
  private readonly counters: Int32Array;

  private constructor(
    private readonly workers: Worker[],
    counters: SharedArrayBuffer,
    private readonly reports: Array<Promise<ClientReport>>,
  ) {
    this.counters = new Int32Array(counters);
  }

  static async start(tasks: readonly ClientTask[]): Promise<ClientPool> {
    const counters = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * tasks.length * SLOTS);
    // Workers do not inherit tsx's loader hooks on Node 20: register them in the worker, then load this very module.
    const boot =
      `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})` +
      `.then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })` +
      `.catch((error) => { console.error(error); process.exit(1); });`;
    const workers: Worker[] = [];
    const ready: Array<Promise<void>> = [];
    const reports: Array<Promise<ClientReport>> = [];
    tasks.forEach((task, index) => {
      const worker = new Worker(boot, { eval: true, workerData: { role: WORKER_ROLE, task, index, counters } });
      workers.push(worker);
      let markReady!: () => void;
      let failReady!: (error: Error) => void;
      ready.push(
        new Promise<void>((resolve, reject) => {
          markReady = resolve;
          failReady = reject;
        }),
      );
      const report = new Promise<ClientReport>((resolve, reject) => {
        const fail = (error: Error): void => {
          failReady(error);
          reject(error);
        };
        worker.on('message', (message: FromClient) => {
          if (message.type === 'ready') markReady();
          else if (message.type === 'done') resolve(message.report);
          else fail(new Error(`${task.kind} client: ${message.error}`));
        });
        worker.once('error', (error) => fail(error));
        worker.once('exit', (code) => fail(new Error(`${task.kind} client exited (code ${code}) before reporting`)));
      });
      report.catch(() => {});
      reports.push(report);
    });
    const pool = new ClientPool(workers, counters, reports);
    try {
      await Promise.all(ready);
    } catch (error) {
      await pool.terminate();
      throw error;
    }
    return pool;
  }

  go(t0 = monotonicNs(), windowStart = 0n, windowEnd = 0n): void {
    for (const worker of this.workers) worker.postMessage({ type: 'go', t0, windowStart, windowEnd } satisfies ToClient);
  }

  finish(): void {
    for (const worker of this.workers) worker.postMessage({ type: 'finish' } satisfies ToClient);
  }

  /** Confirmed (publishers) or received (consumers) so far, summed over the workers. */
  done(): number {
    return this.sum(DONE);
  }

  sent(): number {
    return this.sum(SENT);
  }

  failed(): number {
    return this.sum(FAILED);
  }

  private sum(slot: number): number {
    let total = 0;
    for (let index = 0; index < this.workers.length; index++) total += Atomics.load(this.counters, index * SLOTS + slot);
    return total;
  }

  /** Every worker's report; a worker that fails rejects it. Terminates them after `timeoutMs`. */
  async reportsWithin(timeoutMs: number): Promise<ClientReport[]> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the clients did not finish within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    try {
      return await Promise.race([Promise.all(this.reports), timeout]);
    } finally {
      clearTimeout(timer);
      await this.terminate();
    }
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map((worker) => worker.terminate().catch(() => 0)));
  }
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === WORKER_ROLE) {
  void clientWorker(workerData as { task: ClientTask; index: number; counters: SharedArrayBuffer });
}
