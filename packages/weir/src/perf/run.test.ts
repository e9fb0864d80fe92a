import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PerfConsumer, PerfDriver } from './driver.js';
import { resolvePerfOptions, type RawPerfOptions } from './options.js';
import { ProgressLine } from './progress-line.js';
import { formatReport, type PerfReport, REPORT_FORMAT } from './report.js';
import { runPerf, shares } from './run.js';

/** A broker in memory: sends are acknowledged on the next turn and handed to the destination's consumers in turn. */
function memoryDriver(options: { ackDelayMs?: number } = {}): { driver: PerfDriver; created: () => number; removed: () => number } {
  const consumers = new Map<number, Array<(body: Buffer) => void>>();
  const backlog = new Map<number, Buffer[]>();
  let next = 0;
  let created = 0;
  let removed = 0;
  let fanout = false;
  const deliver = (destination: number, body: Buffer): void => {
    const readers = fanout ? [...consumers.values()].flat() : (consumers.get(destination) ?? []);
    if (readers.length === 0) backlog.set(destination, [...(backlog.get(destination) ?? []), body]);
    else if (fanout) for (const reader of readers) reader(body);
    else readers[next++ % readers.length]!(body);
  };
  const driver: PerfDriver = {
    async setUp(layout) {
      fanout = layout.kind === 'fanout';
      created += layout.destinations;
    },
    async producer() {
      return {
        send: (destination, bodies) =>
          new Promise<void>((resolve) =>
            setTimeout(() => {
              for (const body of bodies) deliver(destination, body);
              resolve();
            }, options.ackDelayMs ?? 0),
          ),
        flush: async () => {},
        close: async () => {},
      };
    },
    async consumer(destination, _index, onMessage): Promise<PerfConsumer> {
      consumers.set(destination, [...(consumers.get(destination) ?? []), onMessage]);
      const waiting = backlog.get(destination) ?? [];
      backlog.delete(destination);
      setImmediate(() => waiting.forEach(onMessage));
      return { close: async () => void consumers.delete(destination) };
    },
    async tearDown() {
      removed = created;
    },
    async close() {},
  };
  return { driver, created: () => created, removed: () => removed };
}

const quiet = new ProgressLine({ isTTY: false } as NodeJS.WriteStream);

async function perf(scenario: string, raw: RawPerfOptions, driver = memoryDriver()): Promise<PerfReport> {
  return runPerf(resolvePerfOptions(scenario, raw), { driver: async () => driver.driver, progress: quiet });
}

describe('perf run and report', () => {
  it('splits a count over producers', () => {
    assert.deepEqual(shares(10, 3), [4, 3, 3]);
    assert.deepEqual(shares(2, 4), [1, 1, 0, 0]);
  });

  it('produce: counts every acknowledged message, with ack latency, machine and parameters', async () => {
    const driver = memoryDriver();
    const report = await perf('produce', { count: '5000', producers: '2', batch: '10', window: '100', size: '256' }, driver);
    assert.equal(report.format, REPORT_FORMAT);
    assert.equal(report.error, null);
    assert.equal(report.parameters.scenario, 'produce');
    assert.equal(report.parameters.messageBytes, 256);
    assert.deepEqual(report.totals, { sent: 5000, acked: 5000, failed: 0, delivered: 0, expectedDeliveries: null });
    assert.equal(report.phases.length, 1);
    assert.equal(report.throughput.name, 'produce');
    assert.equal(report.throughput.messages, 5000);
    assert.equal(report.throughput.bytes, 5000 * 256);
    assert.ok(report.throughput.seconds > 0);
    assert.ok(Math.abs(report.throughput.messagesPerSecond - 5000 / report.throughput.seconds) < 1e-6);
    assert.ok(Math.abs(report.throughput.megabytesPerSecond - (5000 * 256) / 1e6 / report.throughput.seconds) < 1e-9);
    assert.equal(report.latency?.kind, 'ack');
    assert.equal(report.latency?.measuredFrom, 'send');
    assert.equal(report.latency?.count, 5000);
    assert.ok(report.machine.cores >= 1 && report.machine.memoryBytes > 0 && report.machine.node === process.version);
    assert.ok(report.resources.client.cpu > 0);
    assert.equal(report.resources.broker, null, 'no --broker-pid: not sampled');
    assert.match(report.warnings.join('\n'), /closed-loop run/);
    assert.equal(driver.removed(), 1, 'what setUp made is removed');
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(report)));
    assert.match(formatReport(report), /produce\s+5,000/);
  });

  it('e2e at a fixed rate: latencies from intended send times, over the measured window only', async () => {
    const report = await perf('e2e', { rate: '2000', duration: '0.5s', warmup: '0.2s', consumers: '2' }, memoryDriver({ ackDelayMs: 2 }));
    assert.equal(report.error, null);
    assert.deepEqual(report.phases.map((phase) => phase.name), ['produce', 'deliver']);
    assert.equal(report.totals.delivered, report.totals.acked);
    assert.equal(report.latency?.kind, 'delivery');
    assert.equal(report.latency?.measuredFrom, 'intended-send');
    // 0.5 s at 2,000 msg/s after the warm-up: about 1,000 messages count, not the 1,400 sent.
    assert.ok(report.latency!.count >= 950 && report.latency!.count <= 1050, `${report.latency!.count} messages in the window`);
    assert.ok(report.latency!.p50Ms >= 1, 'the 2 ms acknowledgement delay shows in the latency');
    assert.ok(Math.abs(report.throughput.messagesPerSecond - 2000) < 200, `${report.throughput.messagesPerSecond} msg/s delivered`);
    assert.equal(report.scheduleBehind, 0);
    assert.deepEqual(report.warnings, []);
  });

  it('backlog: a fill phase, then a drain phase that reads every message', async () => {
    const report = await perf('backlog', { count: '3000' });
    assert.equal(report.error, null);
    assert.deepEqual(report.phases.map((phase) => [phase.name, phase.messages]), [['fill', 3000], ['drain', 3000]]);
    assert.equal(report.throughput.name, 'drain');
    assert.equal(report.latency, null, 'time spent waiting in a backlog is not a latency');
  });

  it('fanout: every subscriber gets every message', async () => {
    const report = await perf('fanout', { count: '500', consumers: '3' });
    assert.equal(report.totals.expectedDeliveries, 1500);
    assert.equal(report.totals.delivered, 1500);
    assert.equal(report.throughput.messages, 1500);
  });

  it('a failed send ends the run with the error in the report', async () => {
    const failing = memoryDriver();
    failing.driver.producer = async () => ({ send: async () => Promise.reject(new Error('broker unavailable')), flush: async () => {}, close: async () => {} });
    const report = await perf('produce', { count: '100' }, failing);
    assert.equal(report.error, 'broker unavailable');
    assert.ok(report.totals.failed > 0);
    assert.match(formatReport(report), /error: broker unavailable/);
  });
});
