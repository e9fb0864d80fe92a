import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startBrokerProcess, type BrokerProcess } from './support/broker-process.js';
import { runCli } from './support/cli-process.js';
import type { PerfReport } from '../src/perf/report.js';

describe('weir perf against a running broker', { timeout: 120_000 }, () => {
  let dir: string;
  let broker: BrokerProcess;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weir-perf-cli-'));
    broker = await startBrokerProcess(join(dir, 'data'));
  });

  after(async () => {
    await broker?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('produce: writes a JSON report with throughput, ack latency, machine and broker resources', async () => {
    const path = join(dir, 'produce.json');
    const result = await runCli(['perf', 'produce', '--broker', `127.0.0.1:${broker.port}`, '--duration', '1s', '--size', '200', '--broker-pid', String(broker.child.pid), '--json', path]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /phase\s+messages\s+seconds\s+msg\/s\s+MB\/s/);
    assert.ok(!result.stdout.includes('\r'), 'no progress line when stdout is not a terminal');
    const report = JSON.parse(await readFile(path, 'utf8')) as PerfReport;
    assert.equal(report.format, 'weir-perf/1');
    assert.equal(report.error, null);
    assert.equal(report.parameters.scenario, 'produce');
    assert.equal(report.parameters.messageBytes, 200);
    assert.ok(report.throughput.messages > 0, 'messages were acknowledged');
    assert.ok(report.throughput.messagesPerSecond > 0 && report.throughput.megabytesPerSecond > 0);
    assert.ok(report.totals.acked >= report.throughput.messages);
    assert.equal(report.totals.failed, 0);
    assert.ok(report.latency !== null && report.latency.kind === 'ack' && report.latency.count > 0);
    assert.ok(report.latency.p50Ms <= report.latency.p99Ms && report.latency.p99Ms <= report.latency.maxMs);
    assert.equal(report.machine.dataDir, join(dir, 'data'), 'found from the broker command line');
    assert.ok(report.machine.filesystem !== null);
    const resources = report.resources.broker;
    assert.ok(resources !== null, 'the broker was sampled');
    assert.equal(resources.pid, broker.child.pid);
    assert.ok(resources.cpu > 0 && resources.rssPeakBytes > 0);
    assert.ok(report.timeline.length >= 1 && report.timeline.some((point) => point.brokerRssBytes !== null));
  });

  it('e2e --rate: delivers every message, latencies from intended send times', async () => {
    const path = join(dir, 'e2e.json');
    const result = await runCli(['perf', 'e2e', '--broker', `127.0.0.1:${broker.port}`, '--rate', '500', '--duration', '1s', '--json', path]);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(await readFile(path, 'utf8')) as PerfReport;
    assert.equal(report.error, null);
    assert.equal(report.parameters.rate, 500);
    assert.equal(report.totals.delivered, report.totals.acked, 'every acknowledged message was delivered');
    assert.ok(report.totals.acked >= 490 && report.totals.acked <= 510, `${report.totals.acked} messages at 500 msg/s for 1 s`);
    assert.equal(report.latency?.kind, 'delivery');
    assert.equal(report.latency?.measuredFrom, 'intended-send');
    assert.ok(report.latency!.count >= 490);
    assert.deepEqual(report.phases.map((phase) => phase.name), ['produce', 'deliver']);
    assert.equal(report.resources.broker, null);
  });

  it('a mistake on the command line exits with status 2 and says what to fix', async () => {
    const result = await runCli(['perf', 'produce', '--count', '10', '--duration', '1s']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /give either --count or --duration, not both/);
  });
});
