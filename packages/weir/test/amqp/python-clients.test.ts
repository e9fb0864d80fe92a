import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { WeirServer } from '../../src/server/weir-server.js';
import { ensureInstalled } from '../support/debian-packages.js';
import { runCommand } from '../support/run-command.js';

/**
 * Python's AMQP clients from Debian against Weir: pika, and kombu (Celery's messaging library) with py-amqp under
 * it. Each script in ./python asserts what it sees and prints a line per step; a failure shows the step and Python's
 * traceback. Debian's own interpreter runs them, since its packages install into its dist-packages.
 */

const PYTHON = '/usr/bin/python3';
const SCRIPTS = fileURLToPath(new URL('./python/', import.meta.url));
const SCRIPT_TIMEOUT_MS = 60_000;

function importable(modules: string): boolean {
  return spawnSync(PYTHON, ['-c', `import ${modules}`], { stdio: 'ignore' }).status === 0;
}

async function runScript(name: string, port: number): Promise<{ code: number; output: string }> {
  const { code, stdout, stderr } = await runCommand(PYTHON, [join(SCRIPTS, name), String(port)], { timeoutMs: SCRIPT_TIMEOUT_MS });
  return { code, output: stdout.toString() + stderr };
}

describe('Python AMQP clients (Debian) against Weir', () => {
  let dataDir: string;
  let server: WeirServer;

  before(
    async () => {
      await ensureInstalled(['python3', 'python3-pika', 'python3-kombu'], `${PYTHON} with pika and kombu`, () => importable('pika, kombu, amqp'));
      dataDir = await mkdtemp(join(tmpdir(), 'weir-python-clients-'));
      server = await WeirServer.start({ dataDir, port: 0, amqpPort: 0, logLevel: 'silent' });
    },
    { timeout: 300_000 },
  );
  after(async () => {
    await server?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('pika: confirms, properties and typed headers, mandatory returns, prefetch, publish-then-get order, tx, channel exceptions, heartbeats', async () => {
    const { code, output } = await runScript('pika_client.py', server.amqpPort);
    assert.equal(code, 0, output);
    assert.match(output, /heartbeats and close/);
  });

  it('kombu and py-amqp: get and consume after publishing, JSON tasks with headers, SimpleQueue', async () => {
    const { code, output } = await runScript('kombu_client.py', server.amqpPort);
    assert.equal(code, 0, output);
    assert.match(output, /^kombu$/m);
  });
});
