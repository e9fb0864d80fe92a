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
    server = spawn(launcher, ['serve', '--data-dir', directory, '--port', '0', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
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
    assert.equal((JSON.parse(found.stdout) as Array<{ body: string }>)[0]!.body, 'one');
    const byKey = await run(['message', 'get', '--key', 'user-1', '--json', '--server', address]);
    assert.equal((JSON.parse(byKey.stdout) as unknown[]).length, 3);
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
