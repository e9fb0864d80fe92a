import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ChannelModel, connect, type GetMessage } from 'amqplib';
import { WeirServer } from '../../src/server/weir-server.js';
import { ensureDebianPackages } from '../support/debian-packages.js';
import { type CommandResult, runCommand } from '../support/run-command.js';

/**
 * Debian's amqp-tools (rabbitmq-c's command-line clients) as a second client, independent of amqplib: declare,
 * publish, consume and get through them, and cross-check with amqplib in both directions.
 *
 * Flags as `--help` gives them for amqp-tools 0.11: `-s/--server` and `--port` (a port inside --server still works
 * but is deprecated), `-q` queue, `-d` durable (declare-queue), `-r` routing key, `-b` body, `-l` one message per
 * stdin line, `-p` persistent, `-C` content type, `-H "key: value"` header (publish), `-c` count (consume, which runs
 * `<command>` once per message with the body on its stdin).
 */

const TOOL_TIMEOUT_MS = 10_000;

/** Runs an amqp-tools command; a non-zero exit is returned, not thrown; a hang is killed and fails the test. */
function tool(command: string, args: string[], input?: Buffer | string): Promise<CommandResult> {
  return runCommand(command, args, { timeoutMs: TOOL_TIMEOUT_MS, input });
}

describe('amqp-tools (rabbitmq-c) against Weir', () => {
  let dataDir: string;
  let server: WeirServer;
  let model: ChannelModel;
  let connection: string[];

  before(
    async () => {
      await ensureDebianPackages(['amqp-tools'], 'amqp-publish');
      dataDir = await mkdtemp(join(tmpdir(), 'weir-amqp-tools-'));
      server = await WeirServer.start({ dataDir, port: 0, amqpPort: 0, logLevel: 'silent' });
      connection = ['--server', '127.0.0.1', '--port', String(server.amqpPort)];
      model = await connect(`amqp://guest:guest@127.0.0.1:${server.amqpPort}`);
    },
    { timeout: 300_000 },
  );

  after(async () => {
    await model?.close().catch(() => {});
    await server?.close();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  });

  async function run(command: string, args: string[], input?: Buffer | string): Promise<Buffer> {
    const result = await tool(command, [...connection, ...args], input);
    assert.equal(result.code, 0, `${command} ${args.join(' ')} exited with ${result.code}: ${result.stderr}`);
    return result.stdout;
  }

  /** Ready messages of `queue`, as queue.declare-ok counts them. */
  async function messageCount(queue: string): Promise<number> {
    const channel = await model.createChannel();
    try {
      return (await channel.checkQueue(queue)).messageCount;
    } finally {
      await channel.close();
    }
  }

  /** Waits (without sleeping blind) until basic.get finds `queue` holding `count` messages: publishes are asynchronous. */
  async function untilCount(queue: string, count: number): Promise<void> {
    let seen = -1;
    for (let attempt = 0; attempt < 500 && seen !== count; attempt++) {
      seen = await messageCount(queue);
      if (seen !== count) await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(seen, count, `queue ${queue} holds ${seen} messages, expected ${count}`);
  }

  it('amqp-declare-queue -d declares a durable queue', async () => {
    const stdout = await run('amqp-declare-queue', ['-q', 'tools-q', '-d']);
    assert.equal(stdout.toString(), 'tools-q\n');
    assert.equal(await messageCount('tools-q'), 0);
    // Durable: redeclaring it as durable from amqplib is equivalent, as transient it is not.
    const channel = await model.createChannel();
    await channel.assertQueue('tools-q', { durable: true });
    await channel.close();
    const strict = await model.createChannel();
    strict.on('error', () => {});
    await assert.rejects(strict.assertQueue('tools-q', { durable: false }), /406.*inequivalent arg 'durable'/);
  });

  it('amqp-publish, then amqp-consume -c 3 cat, gets the bodies in order', async () => {
    await run('amqp-declare-queue', ['-q', 'tools-q', '-d']);
    for (const body of ['hello-1', 'hello-2', 'hello-3']) await run('amqp-publish', ['-r', 'tools-q', '-b', body]);
    await untilCount('tools-q', 3);
    const stdout = await run('amqp-consume', ['-q', 'tools-q', '-c', '3', 'cat']);
    assert.equal(stdout.toString(), 'hello-1hello-2hello-3');
    // Consumed with acks: the queue is empty, and amqp-get finds nothing (it exits with 2 on an empty queue).
    await untilCount('tools-q', 0);
    const empty = await tool('amqp-get', [...connection, '-q', 'tools-q']);
    assert.equal(empty.code, 2, `amqp-get on an empty queue exited with ${empty.code}: ${empty.stderr}`);
    assert.equal(empty.stdout.length, 0);
  });

  it('amqp-publish -l publishes one message per line; amqp-get takes them one at a time', async () => {
    await run('amqp-declare-queue', ['-q', 'tools-lines']);
    await run('amqp-publish', ['-r', 'tools-lines', '-l'], 'alpha\nbeta\ngamma\n');
    await untilCount('tools-lines', 3);
    // rabbitmq-c keeps each line's newline in the body (getline); amqplib sees the same bytes as amqp-get.
    const channel = await model.createChannel();
    const first = await channel.get('tools-lines', { noAck: true });
    assert.ok(first !== false);
    assert.equal(first.content.toString(), 'alpha\n');
    await channel.close();
    const got: string[] = [];
    for (let i = 0; i < 2; i++) got.push((await run('amqp-get', ['-q', 'tools-lines'])).toString());
    assert.deepEqual(got, ['beta\n', 'gamma\n']);
    assert.equal(await messageCount('tools-lines'), 0);
  });

  it('amqp-publish properties (persistent, content type, headers) arrive as amqplib reads them', async () => {
    const channel = await model.createChannel();
    await channel.assertQueue('tools-props', { durable: true });
    await run('amqp-publish', ['-r', 'tools-props', '-p', '-C', 'application/json', '-E', 'utf-8', '-t', 'reply-here', '-H', 'x-origin: amqp-tools', '-b', '{"n":1}']);
    let message: GetMessage | false = false;
    for (let attempt = 0; attempt < 500 && message === false; attempt++) message = await channel.get('tools-props', { noAck: true });
    assert.ok(message !== false, 'the message never arrived');
    assert.equal(message.content.toString(), '{"n":1}');
    assert.equal(message.properties.deliveryMode, 2);
    assert.equal(message.properties.contentType, 'application/json');
    assert.equal(message.properties.contentEncoding, 'utf-8');
    assert.equal(message.properties.replyTo, 'reply-here');
    assert.equal(String(message.properties.headers?.['x-origin']), 'amqp-tools');
    assert.equal(message.fields.routingKey, 'tools-props');
    assert.equal(message.fields.exchange, '');
    await channel.close();
  });

  it('amqplib publishes (with confirms), amqp-consume receives the same bytes, a body over frame-max included', async () => {
    const channel = await model.createConfirmChannel();
    await channel.assertQueue('tools-cross', { durable: true });
    // 300 KB of binary: more than two frames at the broker's frame-max of 128 KiB, so rabbitmq-c reassembles it.
    const large = Buffer.alloc(300 * 1024);
    for (let i = 0; i < large.length; i++) large[i] = (i * 131 + 7) & 0xff;
    const bodies = [Buffer.from('from amqplib 1'), large, Buffer.from('from amqplib 3 \u00e9\u4e2d')];
    for (const body of bodies) channel.sendToQueue('tools-cross', body, { persistent: true });
    await channel.waitForConfirms();
    await untilCount('tools-cross', 3);
    const stdout = await run('amqp-consume', ['-q', 'tools-cross', '-c', '3', 'cat']);
    const expected = Buffer.concat(bodies);
    assert.equal(stdout.length, expected.length, `amqp-consume wrote ${stdout.length} bytes, expected ${expected.length}`);
    assert.equal(createHash('sha256').update(stdout).digest('hex'), createHash('sha256').update(expected).digest('hex'));
    assert.ok(stdout.equals(expected));
    await untilCount('tools-cross', 0);
    await channel.close();
  });

  it('amqp-tools publishes through an exchange binding made with amqplib', async () => {
    const channel = await model.createChannel();
    await channel.assertExchange('tools-x', 'topic', { durable: false });
    await channel.assertQueue('tools-bound', { durable: false });
    await channel.bindQueue('tools-bound', 'tools-x', 'tools.*.created');
    await run('amqp-publish', ['-e', 'tools-x', '-r', 'tools.order.created', '-b', 'routed']);
    await run('amqp-publish', ['-e', 'tools-x', '-r', 'tools.order.deleted', '-b', 'not routed']);
    await untilCount('tools-bound', 1);
    assert.equal((await run('amqp-get', ['-q', 'tools-bound'])).toString(), 'routed');
    await channel.close();
  });

  it('amqp-tools is refused a missing queue with 404 (a non-zero exit naming it)', async () => {
    const result = await tool('amqp-get', [...connection, '-q', 'tools-no-such-queue']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /NOT_FOUND.*tools-no-such-queue|404/);
  });
});
