import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * The quick start, as a user runs it: `./weir serve` from the repository root (here with a temporary data directory
 * and port 0), then the CLI against it.
 */
const root = fileURLToPath(new URL('../../../', import.meta.url));
const launcher = join(root, 'weir');

function run(args: string[], input?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(launcher, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input ?? '');
  });
}

describe('cli: the quick start and the CLI tour', { timeout: 120_000 }, () => {
  let directory = '';
  let server: ChildProcess;
  let address = '';

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'weir-cli-'));
    server = spawn(launcher, ['serve', '--data-dir', directory, '--port', '0', '--amqp-port', '0', '--log-level', 'warn', '--trace', '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: server.stdout! });
    address = await new Promise<string>((resolve, reject) => {
      lines.on('line', (line) => {
        const match = /listening on (\S+):(\d+)/.exec(line);
        if (match) resolve(`localhost:${match[2]}`);
      });
      server.once('exit', (code) => reject(new Error(`weir serve exited with ${code}`)));
    });
  });

  after(async () => {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
    await rm(directory, { recursive: true, force: true });
  });

  it('cli: create a topic, produce from stdin, consume, describe the group, look a message up', async () => {
    const created = await run(['topic', 'create', 'tour', '--partitions', '3', '--server', address]);
    assert.equal(created.code, 0, created.stderr);
    const produced = await run(['produce', 'tour', '--key', 'user-1', '--header', 'source=cli', '--server', address], 'one\ntwo\nthree\n');
    assert.equal(produced.code, 0, produced.stderr);
    assert.match(produced.stderr, /3 message\(s\) acknowledged as durable/);
    const consumed = await run(['consume', 'tour', '--group', 'readers', '--exit-when-idle', '1000', '--server', address]);
    assert.equal(consumed.code, 0, consumed.stderr);
    assert.deepEqual(consumed.stdout.trim().split('\n'), ['one', 'two', 'three'], 'same key, one partition, in order');
    const described = await run(['group', 'describe', 'readers', '--json', '--server', address]);
    assert.equal(described.code, 0, described.stderr);
    const lag = (JSON.parse(described.stdout) as { lag: Array<{ lag: number; committedOffset: number }> }).lag;
    assert.equal(lag.length, 3, 'one lag row per partition');
    assert.equal(lag.reduce((sum, entry) => sum + entry.lag, 0), 0, 'everything consumed and committed');
    assert.equal(lag.filter((entry) => entry.committedOffset === 3).length, 1, 'the keyed partition is committed past all three');
    const json = await run(['consume', 'tour', '--json', '--max', '1', '--server', address]);
    const first = JSON.parse(json.stdout.trim().split('\n')[0]!) as { id: string; headers: Record<string, string> };
    assert.equal(first.headers.source, 'cli');
    const found = await run(['message', 'get', '--id', first.id, '--json', '--server', address]);
    assert.equal(found.code, 0, found.stderr);
    const [entry] = JSON.parse(found.stdout) as Array<{ body: string; partition: number; offset: number; trace: Array<{ kind: string; topic: string; partition: number; offset: number }> }>;
    assert.equal(entry!.body, 'one');
    assert.deepEqual(
      entry!.trace.filter((event) => event.kind === 'stored').map((event) => [event.topic, event.partition, event.offset]),
      [['tour', entry!.partition, entry!.offset]],
      'the trace says where it is stored',
    );
    const timeline = await run(['message', 'get', '--id', first.id, '--server', address]);
    assert.equal(timeline.code, 0, timeline.stderr);
    assert.match(timeline.stdout, new RegExp(`trace of tour/${entry!.partition}@${entry!.offset} \\(id ${first.id}\\):\\n  \\S+Z  stored +tour/${entry!.partition}@${entry!.offset}`));
    const byKey = await run(['message', 'get', '--key', 'user-1', '--json', '--server', address]);
    const keyed = JSON.parse(byKey.stdout) as Array<{ trace: unknown[] }>;
    assert.equal(keyed.length, 3);
    assert.ok(keyed.every((message) => message.trace.length >= 1), 'each message found comes with its trace');

    const producers = await run(['producer', 'list', '--json', '--server', address]);
    assert.equal(producers.code, 0, producers.stderr);
    const seen = JSON.parse(producers.stdout) as Array<{ producerId: number; messages: number; duplicates: number; gaps: number }>;
    assert.ok(seen.some((producer) => producer.messages === 3 && producer.duplicates === 0 && producer.gaps === 0), producers.stdout);
    const producerTable = await run(['producer', 'list', '--server', address]);
    assert.match(producerTable.stdout, /producer id.*epoch.*partitions.*batches.*messages.*duplicates.*gaps.*last seen/);
  });

  it('cli: work queues: produce with priority and TTL, consume with acks, peek, describe, reject to the dead-letter topic', async () => {
    assert.equal((await run(['topic', 'create', 'jobs', '--server', address])).code, 0);
    const plain = await run(['produce', 'jobs', '--server', address], 'low-1\nlow-2\n');
    assert.equal(plain.code, 0, plain.stderr);
    const urgent = await run(['produce', 'jobs', '-m', 'urgent', '--priority', '9', '--ttl-ms', '600000', '--server', address]);
    assert.equal(urgent.code, 0, urgent.stderr);
    const first = await run(['consume', 'jobs', '--group', 'workers', '--mode', 'shared', '--count', '1', '--server', address]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'urgent\n', 'the highest priority first');
    assert.match(first.stderr, /1 message\(s\) acknowledged/);

    const peeked = await run(['queue', 'peek', 'jobs', '--group', 'workers', '--json', '--server', address]);
    assert.equal(peeked.code, 0, peeked.stderr);
    const ready = JSON.parse(peeked.stdout) as Array<{ body: string; deliveries: number; offset: number }>;
    assert.deepEqual(
      ready.map((entry) => [entry.body, entry.deliveries]),
      [
        ['low-1', 0],
        ['low-2', 0],
      ],
      'peeking consumes nothing, and the consume above took no more than it acknowledged',
    );
    const table = await run(['queue', 'peek', 'jobs', '--group', 'workers', '--server', address]);
    assert.match(table.stdout, /deliveries[\s\S]*low-1/);
    const described = await run(['queue', 'describe', 'workers', '--json', '--server', address]);
    const description = JSON.parse(described.stdout) as { mode: string; settings: { maxDeliveries: number }; topics: Array<{ topic: string; ready: number; inflight: number; consumers: unknown[] }> };
    assert.equal(description.mode, 'shared');
    assert.equal(description.settings.maxDeliveries, 16);
    assert.deepEqual(
      description.topics.map((topic) => [topic.topic, topic.ready, topic.inflight, topic.consumers.length]),
      [['jobs', 2, 0, 0]],
    );
    const human = await run(['queue', 'describe', 'workers', '--server', address]);
    assert.match(human.stdout, /group workers: shared, no filter/);
    assert.match(human.stdout, /ack timeout 30s/);
    assert.match(human.stdout, /max length unlimited, max bytes unlimited \(drop-head\)/);

    const rejected = await run(['consume', 'jobs', '--group', 'workers', '--mode', 'shared', '--count', '1', '--reject', '--server', address]);
    assert.equal(rejected.stdout, 'low-1\n');
    assert.match(rejected.stderr, /1 message\(s\) rejected/);
    const dead = await run(['consume', 'workers.dlq', '--json', '--max', '1', '--server', address]);
    const letter = JSON.parse(dead.stdout.trim()) as { body: string; headers: Record<string, string> };
    assert.equal(letter.body, 'low-1');
    assert.equal(letter.headers['weir.dlq.reason'], 'rejected');
    assert.equal(letter.headers['weir.dlq.deliveries'], '1');
    // The original's trace tells its story: stored, delivered, rejected, dead-lettered (where to).
    const story = await run(['message', 'get', '--id', letter.headers['weir.dlq.id']!, '--server', address]);
    assert.equal(story.code, 0, story.stderr);
    assert.match(story.stdout, /delivered +jobs\/0@0 to workers\/\S+ \(\S+\), delivery 1\n/);
    assert.match(story.stdout, /rejected +jobs\/0@0 by workers\/\S+: rejected with weir consume --reject\n/);
    assert.match(story.stdout, /dead-lettered +jobs\/0@0 in workers → workers\.dlq\/0@0 \(rejected after 1 deliveries\): rejected with weir consume --reject\n/);
    const storyJson = await run(['message', 'get', '--id', letter.headers['weir.dlq.id']!, '--json', '--server', address]);
    const kinds = (JSON.parse(storyJson.stdout) as Array<{ trace: Array<{ kind: string }> }>)[0]!.trace.map((event) => event.kind);
    assert.deepEqual(kinds, ['stored', 'delivered', 'rejected', 'dead-lettered']);
    const rest = await run(['consume', 'jobs', '--group', 'workers', '--mode', 'shared', '--json', '--exit-when-idle', '500', '--server', address]);
    assert.equal(rest.code, 0, rest.stderr);
    const last = JSON.parse(rest.stdout.trim()) as { body: string; deliveryCount: number };
    assert.deepEqual([last.body, last.deliveryCount], ['low-2', 1]);
    assert.match(rest.stderr, /^1 message\(s\) acknowledged$/m, 'counted without --count too');

    assert.equal((await run(['topic', 'create', 'reminders', '--server', address])).code, 0);
    const dueAt = Date.now() + 2500;
    const delayed = await run(['produce', 'reminders', '-m', 'wake up', '--deliver-at', String(dueAt), '--server', address]);
    assert.equal(delayed.code, 0, delayed.stderr);
    assert.match(delayed.stderr, /1 message\(s\) acknowledged as durable \(held by the broker until due\)/);
    const woken = await run(['consume', 'reminders', '--group', 'sleepers', '--mode', 'shared', '--count', '1', '--server', address]);
    assert.equal(woken.stdout, 'wake up\n');
    assert.ok(Date.now() >= dueAt, 'not delivered before its time');
  });

  it('cli: work-queue mistakes say what to fix', async () => {
    const badPriority = await run(['produce', 'jobs', '-m', 'x', '--priority', '10', '--server', address]);
    assert.equal(badPriority.code, 2);
    assert.match(badPriority.stderr, /--priority must be from 0 to 9/);
    const badDelay = await run(['produce', 'jobs', '-m', 'x', '--delay-ms', '-5', '--server', address]);
    assert.equal(badDelay.code, 2);
    assert.match(badDelay.stderr, /--delay-ms must be at least 0/);
    const both = await run(['produce', 'jobs', '-m', 'x', '--delay-ms', '5', '--deliver-at', '2030-01-01T00:00:00Z', '--server', address]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /cannot be used with/);
    const prefetchAlone = await run(['consume', 'jobs', '--prefetch', '5', '--server', address]);
    assert.equal(prefetchAlone.code, 2);
    assert.match(prefetchAlone.stderr, /--prefetch applies to work queues: add --mode shared/);
    const noGroup = await run(['consume', 'jobs', '--mode', 'key_shared', '--server', address]);
    assert.equal(noGroup.code, 2);
    assert.match(noGroup.stderr, /needs --group/);
    const badFilter = await run(['consume', 'jobs', '--group', 'filtered', '--mode', 'shared', '--sql', 'region =', '--server', address]);
    assert.equal(badFilter.code, 1);
    assert.match(badFilter.stderr, /position 8/);
    const notShared = await run(['queue', 'describe', 'readers', '--server', address]);
    assert.equal(notShared.code, 1);
    assert.match(notShared.stderr, /not a shared group/);
  });

  it('cli: mistakes get a message that says what to fix and exit status 2', async () => {
    const wrongFlag = await run(['topic', 'create', 'x', '--partitons', '3', '--server', address]);
    assert.equal(wrongFlag.code, 2);
    assert.match(wrongFlag.stderr, /unknown option '--partitons'/);
    assert.match(wrongFlag.stderr, /--partitions/, 'suggests the right flag');
    const badNumber = await run(['topic', 'create', 'x', '--partitions', 'many', '--server', address]);
    assert.equal(badNumber.code, 2);
    assert.match(badNumber.stderr, /--partitions must be a whole number/);
    const badFrom = await run(['consume', 'tour', '--from', 'yesterday', '--server', address]);
    assert.equal(badFrom.code, 2);
    assert.match(badFrom.stderr, /ISO-8601/);
    const unknownTopic = await run(['topic', 'describe', 'nope', '--server', address]);
    assert.equal(unknownTopic.code, 1);
    assert.match(unknownTopic.stderr, /nope/);
  });
});
