/**
 * Benchmark clients in worker threads (native, queue and amqp suites). Each worker has its own event loop and
 * connection, as a separate application would, so a busy consumer does not slow a producer down and the main thread
 * stays free to orchestrate and sample. Workers count progress in shared memory, so the main thread can read a rate at
 * any moment and notice a stall. Each worker reports its figures once, at the end.
 *
 * Main thread: WorkerPool starts the workers and waits until each is connected ('ready'). The suite then posts its
 * own messages (go, finish), reads counters, and collects the reports. Worker: serveWorker runs the suite's work in a
 * pool's worker; workerInbox, signalReady and expectMessage talk to the pool. The clients measure with monotonicNs,
 * threadMeter and latencySummary.
 */
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { GcMeter, now } from './report.js';

export { latencySummary, type LatencySummary, monotonicNs } from '../packages/weir/src/perf/latency.js';

export type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

// ---- the main-thread side -------------------------------------------------------------------------------------------

/** What the pool adds to each worker's config. */
export interface WorkerIdentity {
  /** The pool's role: a suite module's worker entry runs only in workers started for it. */
  role: string;
  index: number;
  /** Int32 counters of every worker of the pool (and the stop flag, if it keeps one). */
  counters: SharedArrayBuffer;
  /** Where this worker's counters begin. */
  base: number;
}

/** A worker's config as the suite writes it. */
export type WorkerInput<Config extends WorkerIdentity> = DistributiveOmit<Config, keyof WorkerIdentity>;

export interface PoolOptions<Config extends WorkerIdentity> {
  /**
   * The URL of the suite module that calls serveWorker (its import.meta.url). Each worker imports it after
   * registering tsx, because workers do not inherit tsx's loader hooks on Node 20.
   */
  module: string;
  role: string;
  /** Int32 counters per worker. */
  slotsPerWorker: number;
  /** Keep slot STOP_SLOT as a stop flag ahead of the workers' counters (see stop()). */
  stopSlot: boolean;
  /** The worker as errors name it, e.g. "producer 0". */
  name(config: Config): string;
  /** Node flags of the worker's thread; without them it inherits this process's. */
  execArgv?(config: Config): string[];
  /** How long results() waits when not told (default 120 s). */
  resultsTimeoutMs?: number;
}

/** The int32 slot a pool with `stopSlot` keeps as its stop flag: nonzero once the main thread called stop(). */
export const STOP_SLOT = 0;

type FromWorker<Report> = { type: 'ready' } | { type: 'done'; report: Report } | { type: 'failed'; error: string };

/** Client workers, started and connected before any `go`, counting progress in shared memory. */
export class WorkerPool<Config extends WorkerIdentity, Report, ToWorker> {
  private readonly counters: Int32Array;

  private constructor(
    private readonly options: PoolOptions<Config>,
    private readonly workers: ReadonlyArray<{ worker: Worker; config: Config; threadId: number }>,
    counters: SharedArrayBuffer,
    private readonly reports: ReadonlyArray<Promise<Report>>,
  ) {
    this.counters = new Int32Array(counters);
  }

  /** Starts one worker per input and resolves once every one has signalled ready (rejects if one fails first). */
  static async start<Config extends WorkerIdentity, Report, ToWorker>(
    options: PoolOptions<Config>,
    inputs: ReadonlyArray<WorkerInput<Config>>,
  ): Promise<WorkerPool<Config, Report, ToWorker>> {
    const first = options.stopSlot ? 1 : 0;
    const counters = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * (first + inputs.length * options.slotsPerWorker));
    const boot =
      `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})` +
      `.then(({ register }) => { register(); return import(${JSON.stringify(options.module)}); })` +
      `.catch((error) => { console.error(error); process.exit(1); });`;
    const workers: Array<{ worker: Worker; config: Config; threadId: number }> = [];
    const ready: Array<Promise<void>> = [];
    const reports: Array<Promise<Report>> = [];
    inputs.forEach((input, index) => {
      const config = { ...input, role: options.role, index, counters, base: first + index * options.slotsPerWorker } as unknown as Config;
      const execArgv = options.execArgv?.(config);
      const worker = new Worker(boot, { eval: true, workerData: config, ...(execArgv === undefined ? {} : { execArgv }) });
      // Kept now: a worker that has exited no longer tells its thread id.
      workers.push({ worker, config, threadId: worker.threadId });
      const name = options.name(config);
      let markReady!: () => void;
      let failReady!: (error: Error) => void;
      ready.push(
        new Promise<void>((resolve, reject) => {
          markReady = resolve;
          failReady = reject;
        }),
      );
      const report = new Promise<Report>((resolve, reject) => {
        const fail = (error: Error): void => {
          failReady(error);
          reject(error);
        };
        worker.on('message', (message: FromWorker<Report>) => {
          if (message.type === 'ready') markReady();
          else if (message.type === 'done') resolve(message.report);
          else fail(new Error(`${name} failed: ${message.error}`));
        });
        worker.once('error', (error) => fail(error));
        worker.once('exit', (code) => fail(new Error(`${name} exited (code ${code}) before reporting`)));
      });
      // Nobody may await it (a failed start terminates the pool): not an unhandled rejection.
      report.catch(() => {});
      reports.push(report);
    });
    const pool = new WorkerPool<Config, Report, ToWorker>(options, workers, counters, reports);
    try {
      await Promise.all(ready);
    } catch (error) {
      await pool.terminate();
      throw error;
    }
    return pool;
  }

  /** Every worker with its config, e.g. to find the CPU profile each thread wrote (named by thread id). */
  get threads(): ReadonlyArray<{ threadId: number; config: Config }> {
    return this.workers.map(({ threadId, config }) => ({ threadId, config }));
  }

  post(message: ToWorker): void {
    for (const { worker } of this.workers) worker.postMessage(message);
  }

  /** One counter (`slot` within each worker's counters), summed over the workers. */
  sum(slot: number): number {
    let total = 0;
    for (const { config } of this.workers) total += Atomics.load(this.counters, config.base + slot);
    return total;
  }

  /** Raises the stop flag; workers that poll it finish their work and report. */
  stop(): void {
    if (!this.options.stopSlot) throw new Error('this pool keeps no stop flag');
    Atomics.store(this.counters, STOP_SLOT, 1);
  }

  /** Waits for every worker's report (a failed worker rejects it); terminates the workers afterwards or after `timeoutMs`. */
  async results(timeoutMs = this.options.resultsTimeoutMs ?? 120_000): Promise<Report[]> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`client workers did not finish within ${timeoutMs / 1000} s`)), timeoutMs);
    });
    try {
      return await Promise.race([Promise.all(this.reports), timeout]);
    } finally {
      clearTimeout(timer);
      await this.terminate();
    }
  }

  async terminate(): Promise<void> {
    await Promise.all(this.workers.map(({ worker }) => worker.terminate().catch(() => 0)));
  }
}

// ---- the worker side ------------------------------------------------------------------------------------------------

/**
 * The worker entry of a suite module. It runs `work` in a worker that a pool started for `role`, and nowhere else:
 * the main thread imports the same module. The pool gets the report, or the failure.
 */
export function serveWorker<Config extends WorkerIdentity, Report>(role: string, work: (config: Config) => Promise<Report>): void {
  if (isMainThread || (workerData as { role?: unknown } | null)?.role !== role) return;
  const port = parentPort!;
  work(workerData as Config).then(
    (report) => port.postMessage({ type: 'done', report } satisfies FromWorker<Report>),
    (error: unknown) => port.postMessage({ type: 'failed', error: error instanceof Error ? (error.stack ?? error.message) : String(error) } satisfies FromWorker<Report>),
  );
}

/** Tells the pool this worker is connected and waits for `go`. The pool's start() resolves once every worker sent it. */
export function signalReady(): void {
  parentPort!.postMessage({ type: 'ready' } satisfies FromWorker<never>);
}

/**
 * The main thread's messages to this worker, one at a time, in order: `receive()` resolves with the next, kept from
 * before the call if it came early. Call it once, at the worker's start, before anything can arrive.
 */
export function workerInbox<T>(): () => Promise<T> {
  const inbox: T[] = [];
  const waiters: Array<(message: T) => void> = [];
  parentPort!.on('message', (message: T) => {
    const waiter = waiters.shift();
    if (waiter !== undefined) waiter(message);
    else inbox.push(message);
  });
  return () => (inbox.length > 0 ? Promise.resolve(inbox.shift()!) : new Promise((resolve) => waiters.push(resolve)));
}

/** The next message, which must be of `type`: anything else is a protocol error between the suite's two sides. */
export async function expectMessage<T extends { type: string }, K extends string>(receive: () => Promise<T>, type: K): Promise<Extract<T, { type: K }>> {
  const message = await receive();
  if (message.type !== type) throw new Error(`expected ${type}, got ${message.type}`);
  return message as Extract<T, { type: K }>;
}

export function expectGo<T extends { type: string }>(receive: () => Promise<T>): Promise<Extract<T, { type: 'go' }>> {
  return expectMessage(receive, 'go');
}

// ---- measuring in a worker ------------------------------------------------------------------------------------------

export interface ThreadLoad {
  /** Wall time from threadMeter() to stop(). */
  seconds: number;
  /** Event-loop utilisation of this thread meanwhile (1: never idle). */
  elu: number;
  /** Share of that time in garbage-collection pauses. */
  gcShare: number;
}

/** Starts measuring this thread's wall time, event-loop utilisation and GC share; `stop()` ends the window. */
export function threadMeter(): { stop(): Promise<ThreadLoad> } {
  const gcMeter = new GcMeter();
  gcMeter.start();
  const eluStart = performance.eventLoopUtilization();
  const began = now();
  return {
    async stop() {
      const seconds = now() - began;
      const elu = performance.eventLoopUtilization(eluStart).utilization;
      // Last: GcMeter.stop() waits for late GC entries, which must not count as wall time or loop load.
      const gc = await gcMeter.stop();
      return { seconds, elu, gcShare: gc.share };
    },
  };
}
