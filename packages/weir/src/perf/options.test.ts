import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCount, parseDuration, parseSize, PerfUsageError, redactUrl, resolvePerfOptions } from './options.js';

const rejects = (scenario: string, raw: Parameters<typeof resolvePerfOptions>[1], pattern: RegExp): void => {
  assert.throws(() => resolvePerfOptions(scenario, raw), (error: unknown) => error instanceof PerfUsageError && pattern.test(error.message));
};

describe('perf options', () => {
  it('parses sizes, durations and counts with their units', () => {
    assert.equal(parseSize('--size', '100'), 100);
    assert.equal(parseSize('--size', '1k'), 1024);
    assert.equal(parseSize('--size', '64KiB'), 65_536);
    assert.equal(parseSize('--size', '1m'), 1_048_576);
    assert.equal(parseDuration('--duration', '30s'), 30);
    assert.equal(parseDuration('--duration', '500ms'), 0.5);
    assert.equal(parseDuration('--duration', '2m'), 120);
    assert.equal(parseDuration('--duration', '7'), 7);
    assert.equal(parseCount('--count', '1_000_000'), 1_000_000);
    assert.equal(parseCount('--count', '1,000'), 1000);
    assert.throws(() => parseSize('--size', '1 parsec'), /--size must be a size in bytes such as 100, 1k or 64KiB, got "1 parsec"/);
    assert.throws(() => parseDuration('--duration', 'soon'), /--duration must be a duration such as 30s/);
    assert.throws(() => parseCount('--producers', '0'), /--producers must be a whole number of at least 1, got "0"/);
    assert.throws(() => parseCount('--count', '1.5'), /--count must be a whole number/);
  });

  it('fills in defaults per scenario and protocol', () => {
    const produce = resolvePerfOptions('produce', {}).parameters;
    assert.equal(produce.protocol, 'native');
    assert.equal(produce.target, 'localhost:7654');
    assert.equal(produce.count, null);
    assert.equal(produce.durationSeconds, 10);
    assert.equal(produce.consumers, 0);
    assert.equal(produce.acks, 'durable');
    assert.equal(produce.window, 10_000);
    assert.equal(resolvePerfOptions('consume', {}).parameters.count, 100_000);
    assert.equal(resolvePerfOptions('backlog', {}).parameters.count, 1_000_000);
    assert.equal(resolvePerfOptions('fanout', {}).parameters.consumers, 4);
    assert.equal(resolvePerfOptions('e2e', {}, { WEIR_SERVER: 'broker.example:9000' }).parameters.target, 'broker.example:9000');
    const amqp = resolvePerfOptions('queues', { protocol: 'amqp', amqpUrl: 'amqp://app:secret@mq:5673/' });
    assert.equal(amqp.amqpUrl, 'amqp://app:secret@mq:5673/');
    assert.equal(amqp.parameters.target, 'amqp://app:***@mq:5673/', 'reports never carry the password');
    assert.equal(amqp.parameters.window, 1000);
  });

  it('takes every option it documents', () => {
    const settings = resolvePerfOptions('e2e', {
      size: '4k', duration: '30s', warmup: '5s', producers: '2', consumers: '3', partitions: '16', queues: '2', acks: 'written',
      prefetch: '50', linger: '0', rate: '20000', json: 'out.json', brokerPid: '1234', brokerDataDir: '/var/lib/weir',
    });
    assert.deepEqual(
      { ...settings.parameters },
      {
        scenario: 'e2e', protocol: 'native', target: 'localhost:7654', messageBytes: 4096, count: null, durationSeconds: 30, warmupSeconds: 5,
        producers: 2, consumers: 3, partitions: 16, queues: 2, acks: 'written', autoAck: false, batch: 1, window: 10_000, prefetch: 50,
        lingerMs: 0, rate: 20_000,
      },
    );
    assert.equal(settings.jsonPath, 'out.json');
    assert.equal(settings.brokerPid, 1234);
    assert.equal(settings.brokerDataDir, '/var/lib/weir');
  });

  it('rejects contradictions with a message that says what to fix', () => {
    rejects('stream', {}, /the scenario must be produce, consume, e2e, backlog, fanout or queues, got "stream"/);
    rejects('produce', { count: '10', duration: '5s' }, /either --count or --duration, not both/);
    rejects('consume', { duration: '5s' }, /reads a backlog of --count messages; it takes no --duration/);
    rejects('backlog', { rate: '100' }, /takes no --rate/);
    rejects('produce', { count: '10', warmup: '1s' }, /--warmup applies to timed runs/);
    rejects('produce', { size: '4' }, /--size must be at least 8 bytes/);
    rejects('produce', { consumers: '2' }, /the produce scenario runs no consumers/);
    rejects('produce', { batch: '100', window: '10' }, /--batch \(100\) cannot be larger than --window \(10\)/);
    rejects('e2e', { rate: '1000', batch: '10' }, /--batch applies to closed-loop runs/);
    rejects('e2e', { rate: '2', producers: '4' }, /at least one message per second per producer/);
    rejects('produce', { protocol: 'mqtt' }, /--protocol must be native or amqp, got "mqtt"/);
    rejects('produce', { protocol: 'amqp', partitions: '4' }, /--partitions applies to --protocol native only/);
    rejects('produce', { protocol: 'amqp', broker: 'x:1' }, /use --amqp-url/);
    rejects('produce', { protocol: 'amqp', acks: 'written' }, /over AMQP use none .* or durable/);
    rejects('produce', { amqpUrl: 'amqp://x' }, /--amqp-url applies to --protocol amqp only/);
    rejects('e2e', { autoAck: true }, /--auto-ack applies to --protocol amqp only/);
    rejects('e2e', { protocol: 'amqp', amqpUrl: 'http://x' }, /must be an amqp:\/\/ or amqps:\/\/ URL/);
    rejects('e2e', { broker: 'localhost' }, /--broker must be host:port/);
    rejects('fanout', { queues: '2' }, /--queues does not apply/);
    rejects('e2e', { acks: 'all' }, /--acks must be none, written or durable, got "all"/);
    rejects('e2e', { brokerPid: 'self' }, /--broker-pid must be a whole number/);
    rejects('e2e', { protocol: 'amqp', prefetch: '70000' }, /at most 65,535 over AMQP/);
  });

  it('hides only the password of an AMQP URL', () => {
    assert.equal(redactUrl('amqp://guest:guest@localhost:5672'), 'amqp://guest:***@localhost:5672');
    assert.equal(redactUrl('amqp://localhost'), 'amqp://localhost');
  });
});
