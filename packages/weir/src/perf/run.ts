/**
 * Runs one `weir perf` scenario against a running broker and measures it: producers (closed loop with a window of
 * unacknowledged messages, or paced at a fixed rate), consumers, counters, latency histograms, a timeline sampled
 * every half second (broker RSS and CPU from /proc when its pid is known), and the report.
 *
 * Every body starts with a send time on the monotonic clock — the intended one under --rate — so a consumer in this
 * process can tell each message's end-to-end latency. Clients share this process's event loop; to offer more load
 * than one process can, run several `weir perf` processes side by side.
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { AmqpDriver } from './amqp-driver.js';
import { type ConsumerKind, errorText, type PerfConsumer, type PerfDriver, type PerfProducer } from './driver.js';
import { formatNumber } from './format.js';
import { type Histogram, latencyMicros, latencySummary, monotonicNs, newHistogram } from './latency.js';
import { commitInfo, machineInfo } from './machine.js';
import { NativeDriver } from './native-driver.js';
import type { PerfParameters, PerfSettings } from './options.js';
import { brokerDataDir, ProcessSampler } from './process-sampler.js';
import { ProgressLine } from './progress-line.js';
import { type LatencyResult, type PerfReport, type PhaseResult, phaseResult, REPORT_FORMAT, type TimelinePoint } from './report.js';
import { intendedOffsetNs, runSchedule } from './schedule.js';

const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The repository root when this package sits in a checkout of it (packages/weir). */
const checkoutRoot = resolve(packageRoot, '../..');
const VERSION = (JSON.parse(readFileSync(resolve(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;

/** A drain that delivers nothing for this long is over: the remaining messages are reported missing. */
const IDLE_TIMEOUT_NS = 10_000_000_000n;
const TIMELINE_INTERVAL_MS = 500;

export interface RunHooks {
  /** Where the live progress line goes (default: stdout, shown only when it is a terminal). */
  progress?: ProgressLine;
  /** Makes the driver; tests and the benchmark suites may bring their own. */
  driver?: (parameters: PerfParameters, runId: string) => Promise<PerfDriver>;
}

/** Counters and histograms of one run, updated by every producer and consumer (one event loop: no locking). */
class RunState {
  sent = 0;
  acked = 0;
  failed = 0;
  delivered = 0;
  deliveredBytes = 0;
  lastAckNs = 0n;
  lastDeliveryNs = 0n;
  firstError: string | null = null;
  /** Latencies count for messages whose clock started inside [windowStartNs, windowEndNs). */
  windowStartNs = 0n;
  windowEndNs = BigInt(Number.MAX_SAFE_INTEGER) * 1_000_000n;
  readonly ackLatency: Histogram = newHistogram();
  readonly deliveryLatency: Histogram = newHistogram();
  recordDeliveryLatency = false;
  phase = 'setup';

  get aborted(): boolean {
    return this.firstError !== null;
  }

  fail(count: number, error: unknown): void {
    this.failed += count;
    this.firstError ??= errorText(error);
  }

  onAck(count: number, startNs: bigint): void {
    const now = monotonicNs();
    this.acked += count;
    this.lastAckNs = now;
    if (startNs >= this.windowStartNs && startNs < this.windowEndNs) this.ackLatency.recordValueWithCount(latencyMicros(now, startNs), count);
  }

  onDelivery(body: Buffer): void {
    const now = monotonicNs();
    this.delivered++;
    this.deliveredBytes += body.byteLength;
    this.lastDeliveryNs = now;
    if (this.recordDeliveryLatency && body.byteLength >= 8) {
      const startNs = body.readBigInt64LE(0);
      if (startNs >= this.windowStartNs && startNs < this.windowEndNs) this.deliveryLatency.recordValue(latencyMicros(now, startNs));
    }
  }
}

interface Snapshot {
  ns: bigint;
  acked: number;
  delivered: number;
  deliveredBytes: number;
}

function snapshot(state: RunState): Snapshot {
  return { ns: monotonicNs(), acked: state.acked, delivered: state.delivered, deliveredBytes: state.deliveredBytes };
}

const seconds = (from: bigint, to: bigint): number => Number(to - from) / 1e9;

/** Splits `total` into `parts` shares that differ by at most one. */
export function shares(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, index) => Math.floor(total / parts) + (index < total % parts ? 1 : 0));
}

/** Samples the timeline, keeps the progress line fresh, and holds the broker sampler. */
class Monitor {
  readonly timeline: TimelinePoint[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly origin = monotonicNs();
  private previous: { ns: bigint; acked: number; delivered: number; cpuSeconds: number | null };

  constructor(
    private readonly state: RunState,
    private readonly sampler: ProcessSampler | null,
    private readonly progress: ProgressLine,
  ) {
    this.previous = { ns: this.origin, acked: 0, delivered: 0, cpuSeconds: sampler?.samples.at(-1)?.cpuSeconds ?? null };
    this.timer = setInterval(() => this.tick(), TIMELINE_INTERVAL_MS);
    this.timer.unref();
  }

  private tick(): void {
    const now = monotonicNs();
    const sample = this.sampler?.sample() ?? null;
    const elapsed = seconds(this.previous.ns, now);
    const brokerCpu = sample === null || this.previous.cpuSeconds === null || elapsed <= 0 ? null : (sample.cpuSeconds - this.previous.cpuSeconds) / elapsed;
    const { state } = this;
    this.timeline.push({ seconds: seconds(this.origin, now), phase: state.phase, acked: state.acked, delivered: state.delivered, brokerRssBytes: sample?.rssBytes ?? null, brokerCpu });
    const ackRate = elapsed > 0 ? (state.acked - this.previous.acked) / elapsed : 0;
    const deliveryRate = elapsed > 0 ? (state.delivered - this.previous.delivered) / elapsed : 0;
    this.progress.update(
      `${state.phase} ${formatNumber(seconds(this.origin, now), 1)} s | acked ${formatNumber(state.acked)} (${formatNumber(ackRate)} msg/s) | ` +
        `delivered ${formatNumber(state.delivered)} (${formatNumber(deliveryRate)} msg/s)` +
        (sample === null ? '' : ` | broker ${formatNumber(sample.rssBytes / 2 ** 20)} MiB`),
    );
    this.previous = { ns: now, acked: state.acked, delivered: state.delivered, cpuSeconds: sample?.cpuSeconds ?? null };
  }

  stop(): void {
    clearInterval(this.timer);
    this.progress.clear();
  }
}

/** Everything the phases share. */
class Run {
  readonly state = new RunState();
  readonly template: Buffer;
  private readonly producers: PerfProducer[] = [];
  private readonly consumers: PerfConsumer[] = [];
  readonly destinations: number;

  constructor(
    readonly parameters: PerfParameters,
    readonly driver: PerfDriver,
  ) {
    this.template = randomFillSync(Buffer.allocUnsafe(parameters.messageBytes));
    this.destinations = parameters.scenario === 'fanout' ? 1 : parameters.queues;
  }

  /** A body stamped with `startNs`: a copy, because clients may hold bodies until they are written. */
  body(startNs: bigint): Buffer {
    const body = Buffer.allocUnsafe(this.template.byteLength);
    this.template.copy(body);
    body.writeBigInt64LE(startNs, 0);
    return body;
  }

  async connectProducers(): Promise<void> {
    for (let index = 0; index < this.parameters.producers; index++) this.producers.push(await this.driver.producer(index));
  }

  /** Consumers on every destination (fanout: one per subscriber), subscribed before anything is sent. */
  async connectConsumers(): Promise<void> {
    const { consumers, scenario } = this.parameters;
    const onMessage = (body: Buffer): void => this.state.onDelivery(body);
    if (scenario === 'fanout') {
      for (let index = 0; index < consumers; index++) this.consumers.push(await this.driver.consumer(index, 0, onMessage));
      return;
    }
    for (let destination = 0; destination < this.destinations; destination++) {
      for (let index = 0; index < consumers; index++) this.consumers.push(await this.driver.consumer(destination, index, onMessage));
    }
  }

  /**
   * Runs every producer until its share of --count is acknowledged, or the warm-up and --duration are over; returns
   * snapshots at the start, at the end of the warm-up and at the end of the measured time.
   */
  async produce(): Promise<{ start: Snapshot; windowStart: Snapshot; windowEnd: Snapshot | null }> {
    const { parameters, state } = this;
    const start = snapshot(state);
    const t0 = start.ns;
    const warmupNs = BigInt(Math.round(parameters.warmupSeconds * 1e9));
    const timed = parameters.durationSeconds !== null;
    const endNs = timed ? t0 + warmupNs + BigInt(Math.round(parameters.durationSeconds! * 1e9)) : null;
    state.windowStartNs = t0 + warmupNs;
    if (endNs !== null) state.windowEndNs = endNs;
    let windowStart = start;
    let windowEnd: Snapshot | null = null;
    const timers: NodeJS.Timeout[] = [];
    if (warmupNs > 0n) timers.push(setTimeout(() => (windowStart = snapshot(state)), Number(warmupNs / 1_000_000n)));
    if (endNs !== null) timers.push(setTimeout(() => (windowEnd = snapshot(state)), Number((endNs - t0) / 1_000_000n)));
    const quotas = parameters.count === null ? this.producers.map(() => Infinity) : shares(parameters.count, this.producers.length);
    try {
      await Promise.all(
        this.producers.map((producer, index) =>
          parameters.rate === null ? this.closedLoop(producer, index, quotas[index]!, endNs) : this.paced(producer, index, quotas[index]!, t0, endNs),
        ),
      );
    } finally {
      for (const timer of timers) clearTimeout(timer);
    }
    // A run whose producers finished before the timer fired (slow acks past the end) takes its end from the clock.
    if (endNs !== null && windowEnd === null) windowEnd = snapshot(state);
    return { start, windowStart, windowEnd };
  }

  private async closedLoop(producer: PerfProducer, index: number, quota: number, endNs: bigint | null): Promise<void> {
    const { parameters, state } = this;
    const { batch, window } = parameters;
    let outstanding = 0;
    let sent = 0;
    let rounds = 0;
    let destination = index % this.destinations;
    let wake: (() => void) | null = null;
    const settled = (count: number): void => {
      outstanding -= count;
      const resume = wake;
      wake = null;
      resume?.();
    };
    while (sent < quota && !state.aborted && (endNs === null || monotonicNs() < endNs)) {
      if (outstanding + batch > window) {
        await new Promise<void>((resolve) => (wake = resolve));
        continue;
      }
      const count = Math.min(batch, quota - sent);
      const startNs = monotonicNs();
      const bodies = Array.from({ length: count }, () => this.body(startNs));
      outstanding += count;
      sent += count;
      state.sent += count;
      producer.send(destination, bodies).then(
        () => {
          state.onAck(count, startNs);
          settled(count);
        },
        (error: unknown) => {
          state.fail(count, error);
          settled(count);
        },
      );
      destination = (destination + 1) % this.destinations;
      // Sends that settle at once (acks none) would otherwise never let the sockets drain.
      if ((++rounds & 63) === 0) await yieldToLoop();
    }
    while (outstanding > 0) await new Promise<void>((resolve) => (wake = resolve));
  }

  /** Message i of producer k is due at t0 + (i × producers + k) / rate: together an even stream at --rate. */
  private async paced(producer: PerfProducer, index: number, quota: number, t0: bigint, endNs: bigint | null): Promise<void> {
    const { parameters, state } = this;
    const rate = parameters.rate! / parameters.producers;
    const start = t0 + BigInt(intendedOffsetNs(index, parameters.rate!));
    const stopAtNs = endNs !== null ? Number(endNs - start) : intendedOffsetNs(quota - 1, rate) + 1;
    let outstanding = 0;
    let drained: (() => void) | null = null;
    let destination = index % this.destinations;
    const settled = (): void => {
      outstanding--;
      if (outstanding === 0) drained?.();
    };
    if (quota <= 0) return;
    const outcome = await runSchedule({
      t0: start,
      rate,
      stopAtNs,
      send: (_i, intendedNs) => {
        const startNs = start + BigInt(intendedNs);
        outstanding++;
        state.sent++;
        producer.send(destination, [this.body(startNs)]).then(
          () => {
            state.onAck(1, startNs);
            settled();
          },
          (error: unknown) => {
            state.fail(1, error);
            settled();
          },
        );
        destination = (destination + 1) % this.destinations;
      },
      stopped: () => state.aborted,
    });
    this.behind += outcome.behind;
    if (outstanding > 0) await new Promise<void>((resolve) => (drained = resolve));
  }

  behind = 0;

  /** Waits until `expected` deliveries arrived, or none arrived for IDLE_TIMEOUT_NS; true when all did. */
  async awaitDeliveries(expected: number): Promise<boolean> {
    const { state } = this;
    let lastCount = state.delivered;
    let lastProgress = monotonicNs();
    while (state.delivered < expected) {
      await new Promise<void>((resolve) => setTimeout(resolve, 20));
      const now = monotonicNs();
      if (state.delivered !== lastCount) {
        lastCount = state.delivered;
        lastProgress = now;
      } else if (now - lastProgress > IDLE_TIMEOUT_NS) {
        return false;
      }
    }
    return true;
  }

  async closeClients(): Promise<void> {
    await Promise.all(this.consumers.map((consumer) => consumer.close().catch(() => {})));
    await Promise.all(this.producers.map((producer) => producer.close().catch(() => {})));
  }
}

function consumerKind(parameters: PerfParameters): ConsumerKind {
  return parameters.scenario === 'fanout' ? 'fanout' : parameters.scenario === 'queues' ? 'queue' : 'group';
}

async function makeDriver(settings: PerfSettings, runId: string): Promise<PerfDriver> {
  const { parameters } = settings;
  return parameters.protocol === 'native' ? new NativeDriver(parameters, runId) : AmqpDriver.create(settings.amqpUrl!, parameters, runId);
}

/** Runs the scenario of `settings` and returns its report (also when the run failed part-way: see `error`). */
export async function runPerf(settings: PerfSettings, hooks: RunHooks = {}): Promise<PerfReport> {
  const { parameters } = settings;
  const startedAt = new Date();
  const runId = `${startedAt.getTime().toString(36)}-${randomBytes(3).toString('hex')}`;
  const dataDir = settings.brokerDataDir ?? (settings.brokerPid === null ? null : brokerDataDir(settings.brokerPid));
  const machine = machineInfo(dataDir);
  const commit = commitInfo(checkoutRoot);
  const driver = hooks.driver === undefined ? await makeDriver(settings, runId) : await hooks.driver(parameters, runId);
  const run = new Run(parameters, driver);
  const { state } = run;
  const sampler = settings.brokerPid === null ? null : new ProcessSampler(settings.brokerPid, TIMELINE_INTERVAL_MS);
  if (sampler !== null && sampler.sample() === null) {
    await driver.close();
    throw new Error(`cannot sample the broker: no process ${settings.brokerPid} readable in /proc (--broker-pid needs a local broker on Linux)`);
  }
  const phases: PhaseResult[] = [];
  const warnings: string[] = [];
  let main: PhaseResult | null = null;
  let expectedDeliveries: number | null = null;
  let monitor: Monitor | null = null;
  let measureStart: { ns: bigint; cpu: NodeJS.CpuUsage; brokerCpu: number | null } | null = null;
  let measureEnd: { ns: bigint; cpu: NodeJS.CpuUsage; brokerCpu: number | null } | null = null;
  const mark = () => ({ ns: monotonicNs(), cpu: process.cpuUsage(), brokerCpu: sampler?.sample()?.cpuSeconds ?? null });
  const bytes = (messages: number): number => messages * parameters.messageBytes;
  const fanout = parameters.scenario === 'fanout' ? parameters.consumers : 1;

  try {
    const kind = consumerKind(parameters);
    await driver.setUp({ destinations: run.destinations, subscribers: parameters.scenario === 'fanout' ? parameters.consumers : 0, kind });
    await run.connectProducers();
    const delivering = parameters.scenario === 'e2e' || parameters.scenario === 'fanout' || parameters.scenario === 'queues';
    if (delivering) {
      await run.connectConsumers();
      state.recordDeliveryLatency = true;
    }
    monitor = new Monitor(state, sampler, hooks.progress ?? new ProgressLine());
    measureStart = mark();

    state.phase = parameters.scenario === 'consume' || parameters.scenario === 'backlog' ? 'fill' : 'produce';
    const produced = await run.produce();
    const producedEnd = produced.windowEnd ?? { ...snapshot(state), ns: state.lastAckNs > 0n ? state.lastAckNs : monotonicNs() };
    const producePhase = phaseResult(state.phase, producedEnd.acked - produced.windowStart.acked, bytes(producedEnd.acked - produced.windowStart.acked), seconds(produced.windowStart.ns, producedEnd.ns));
    phases.push(producePhase);
    main = producePhase;
    if (state.aborted) throw new Error(state.firstError!);
    // Without acknowledgements every message sent counts as written.
    const written = parameters.acks === 'none' ? state.sent : state.acked;

    if (delivering) {
      state.phase = 'drain';
      expectedDeliveries = written * fanout;
      const complete = await run.awaitDeliveries(expectedDeliveries);
      if (!complete) warnings.push(`only ${formatNumber(state.delivered)} of ${formatNumber(expectedDeliveries)} deliveries arrived (none for 10 s before giving up)`);
      const from = produced.windowStart;
      const to = produced.windowEnd ?? { ...snapshot(state), ns: state.lastDeliveryNs };
      main = phaseResult('deliver', to.delivered - from.delivered, to.deliveredBytes - from.deliveredBytes, seconds(from.ns, to.ns));
      phases.push(main);
    } else if (parameters.scenario !== 'produce') {
      state.phase = parameters.scenario === 'consume' ? 'consume' : 'drain';
      expectedDeliveries = written;
      const from = snapshot(state);
      await run.connectConsumers();
      const complete = await run.awaitDeliveries(expectedDeliveries);
      if (!complete) warnings.push(`only ${formatNumber(state.delivered)} of ${formatNumber(expectedDeliveries)} messages were read (none for 10 s before giving up)`);
      main = phaseResult(state.phase, state.delivered - from.delivered, state.deliveredBytes - from.deliveredBytes, seconds(from.ns, state.lastDeliveryNs > from.ns ? state.lastDeliveryNs : monotonicNs()));
      phases.push(main);
    }
    if (state.delivered > (expectedDeliveries ?? Infinity)) warnings.push(`${formatNumber(state.delivered - expectedDeliveries!)} more deliveries than messages written (redeliveries)`);
    if (run.behind > 0) warnings.push(`the sender fell ${formatNumber(run.behind)} messages behind its schedule: --rate ${formatNumber(parameters.rate!)} msg/s was not offered in full`);
    if (parameters.rate === null && (parameters.scenario !== 'consume' && parameters.scenario !== 'backlog')) {
      warnings.push('closed-loop run: latencies are measured from actual send times, which slow down with the broker; use --rate for latencies corrected for coordinated omission');
    }
  } catch (error) {
    state.firstError ??= errorText(error);
  } finally {
    measureEnd = mark();
    monitor?.stop();
    sampler?.stop();
    await run.closeClients();
    await driver.tearDown().catch(() => {});
    await driver.close().catch(() => {});
  }

  const latency = latencyResult(parameters, state);
  const span = measureStart === null ? 0 : seconds(measureStart.ns, measureEnd.ns);
  const clientCpu = measureStart === null || span <= 0 ? 0 : (measureEnd.cpu.user - measureStart.cpu.user + measureEnd.cpu.system - measureStart.cpu.system) / 1e6 / span;
  const brokerSamples = sampler?.samples ?? [];
  const broker =
    sampler === null || brokerSamples.length === 0 || measureStart?.brokerCpu == null || measureEnd.brokerCpu === null
      ? null
      : {
          pid: sampler.pid,
          cpu: span > 0 ? (measureEnd.brokerCpu - measureStart.brokerCpu) / span : 0,
          rssStartBytes: brokerSamples[0]!.rssBytes,
          rssPeakBytes: Math.max(...brokerSamples.map((sample) => sample.rssBytes)),
          rssEndBytes: brokerSamples.at(-1)!.rssBytes,
        };
  return {
    format: REPORT_FORMAT,
    tool: { name: 'weir perf', version: VERSION },
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    parameters,
    machine,
    commit,
    phases,
    throughput: main ?? phaseResult('none', 0, 0, 0),
    latency,
    totals: { sent: state.sent, acked: state.acked, failed: state.failed, delivered: state.delivered, expectedDeliveries },
    scheduleBehind: run.behind,
    resources: { broker, client: { cpu: clientCpu, rssPeakBytes: process.resourceUsage().maxRSS * 1024 } },
    timeline: monitor?.timeline ?? [],
    warnings,
    error: state.firstError,
  };
}

function latencyResult(parameters: PerfParameters, state: RunState): LatencyResult | null {
  const measuredFrom = parameters.rate === null ? 'send' : 'intended-send';
  if (state.recordDeliveryLatency) return { kind: 'delivery', measuredFrom, ...latencySummary(state.deliveryLatency) };
  if (parameters.scenario === 'produce') return { kind: 'ack', measuredFrom, ...latencySummary(state.ackLatency) };
  return null;
}
