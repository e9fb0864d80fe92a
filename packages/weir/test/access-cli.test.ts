import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type BrokerProcess, startBrokerProcess } from './support/broker-process.js';
import { runCli } from './support/cli-process.js';

/** `weir user|vhost|permission|definitions` against real brokers, as an operator runs them. */
const rabbitExport = fileURLToPath(new URL('./fixtures/rabbitmq-definitions.json', import.meta.url));

describe('cli: users, virtual hosts, permissions and definitions', { timeout: 120_000 }, () => {
  let directory = '';
  let first: BrokerProcess;
  let second: BrokerProcess;
  const on = (broker: BrokerProcess) => ['--server', `localhost:${broker.port}`];
  /** Runs a command against the first broker and expects it to succeed. */
  const ok = async (...args: string[]) => {
    const result = await runCli([...args, ...on(first)]);
    assert.equal(result.code, 0, `weir ${args.join(' ')}: ${result.stderr}`);
    return result;
  };
  const fails = async (args: string[], code: number, stderr: RegExp) => {
    const result = await runCli([...args, ...on(first)]);
    assert.equal(result.code, code, `weir ${args.join(' ')} exits ${code}: ${result.stderr}`);
    assert.match(result.stderr, stderr);
  };

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'weir-access-cli-'));
    [first, second] = await Promise.all([startBrokerProcess(join(directory, 'first')), startBrokerProcess(join(directory, 'second'))]);
  });

  after(async () => {
    await Promise.all([first?.stop(), second?.stop()]);
    await rm(directory, { recursive: true, force: true });
  });

  it('cli: users: add with tags, list, change password and tags, delete; a fresh broker has guest', async () => {
    assert.deepEqual(JSON.parse((await ok('user', 'list', '--json')).stdout), [{ name: 'guest', tags: ['administrator'] }]);
    assert.equal((await ok('user', 'add', 'orders-app', 's3cret', '--tags', 'monitoring, management')).stdout, 'added user orders-app with tags monitoring, management\n');
    assert.equal((await ok('user', 'add', 'temp', 'x')).stdout, 'added user temp\n');
    assert.equal((await ok('user', 'passwd', 'orders-app', 'n3w-s3cret')).stdout, 'changed the password of user orders-app\n');
    assert.equal((await ok('user', 'tags', 'temp', 'administrator')).stdout, 'user temp now has tags administrator\n');
    assert.deepEqual(JSON.parse((await ok('user', 'list', '--json')).stdout), [
      { name: 'guest', tags: ['administrator'] },
      { name: 'orders-app', tags: ['monitoring', 'management'] },
      { name: 'temp', tags: ['administrator'] },
    ]);
    assert.equal((await ok('user', 'delete', 'temp')).stdout, 'deleted user temp\n');
    assert.match((await ok('user', 'list')).stdout, /user +│ tags[\s\S]*orders-app +│ monitoring, management/);
  });

  it('cli: vhosts and permissions: add, set, list, clear', async () => {
    assert.equal((await ok('vhost', 'add', 'orders')).stdout, 'added virtual host orders\n');
    await ok('vhost', 'add', 'scratch');
    assert.deepEqual(JSON.parse((await ok('vhost', 'list', '--json')).stdout), ['/', 'orders', 'scratch']);
    assert.equal(
      (await ok('permission', 'set', 'orders-app', 'orders', '^orders\\.', '^(orders\\..*|amq\\.default)$', '')).stdout,
      "set permissions of user orders-app on virtual host orders: configure ^orders\\., write ^(orders\\..*|amq\\.default)$, read ''\n",
    );
    await ok('permission', 'set', 'orders-app', 'scratch', '.*', '.*', '.*');
    assert.deepEqual(JSON.parse((await ok('permission', 'list', '--vhost', 'orders', '--json')).stdout), [
      { user: 'orders-app', vhost: 'orders', configure: '^orders\\.', write: '^(orders\\..*|amq\\.default)$', read: '' },
    ]);
    assert.match((await ok('permission', 'list')).stdout, /vhost +│ user +│ configure +│ write +│ read[\s\S]*orders +│ orders-app +│ \^orders\\\. +│ .* +│ '' /);
    assert.equal((await ok('permission', 'clear', 'orders-app', 'scratch')).stdout, 'cleared permissions of user orders-app on virtual host scratch\n');
    assert.deepEqual(
      (JSON.parse((await ok('permission', 'list', '--user', 'orders-app', '--json')).stdout) as Array<{ vhost: string }>).map((entry) => entry.vhost),
      ['orders'],
    );
    await ok('permission', 'set', 'orders-app', 'scratch', '.*', '.*', '.*');
    assert.equal((await ok('vhost', 'delete', 'scratch')).stdout, 'deleted virtual host scratch\n');
    assert.deepEqual(
      (JSON.parse((await ok('permission', 'list', '--user', 'orders-app', '--json')).stdout) as Array<{ vhost: string }>).map((entry) => entry.vhost),
      ['orders'],
      "the vhost's permissions went with it",
    );
  });

  it('cli: mistakes: a clear message and a non-zero exit', async () => {
    await fails(['user', 'delete', 'nobody'], 1, /^weir: user "nobody" does not exist\n$/);
    await fails(['user', 'add', 'orders-app', 'x'], 1, /^weir: user "orders-app" already exists\n$/);
    await fails(['user', 'passwd', 'nobody', 'x'], 1, /^weir: user "nobody" does not exist\n$/);
    await fails(['user', 'add', '', 'x'], 1, /^weir: a user name must not be empty\n$/);
    await fails(['vhost', 'add', 'orders'], 1, /^weir: virtual host "orders" already exists\n$/);
    await fails(['vhost', 'delete', 'nowhere'], 1, /^weir: virtual host "nowhere" does not exist\n$/);
    await fails(['permission', 'set', 'orders-app', 'orders', '.*', '(', '.*'], 1, /^weir: the write permission "\(" is not a valid regular expression: .*Unterminated group\n$/);
    await fails(['permission', 'set', 'ghost', 'orders', '.*', '.*', '.*'], 1, /^weir: user "ghost" does not exist\n$/);
    await fails(['permission', 'set', 'orders-app', 'nowhere', '.*', '.*', '.*'], 1, /^weir: virtual host "nowhere" does not exist\n$/);
    await fails(['permission', 'list', '--vhost', 'nowhere'], 1, /virtual host "nowhere" does not exist/);
    await fails(['permission', 'set', 'orders-app', 'orders', '.*'], 2, /missing required argument 'write'/);
    await fails(['user', 'add', 'someone'], 2, /missing required argument 'password'/);
    await fails(['definitions', 'import', join(directory, 'missing.json')], 1, /^weir: cannot read .*missing\.json: ENOENT/);
    const notJson = join(directory, 'not.json');
    await writeFile(notJson, '{ "users": [ }');
    await fails(['definitions', 'import', notJson], 1, /^weir: .*not\.json is not valid JSON: /);
    const badEntry = join(directory, 'bad-entry.json');
    await writeFile(badEntry, JSON.stringify({ users: [{ name: 'a', password: 'x' }, { name: 'b', password: 'y' }, { name: 42, password: 'z' }] }));
    await fails(['definitions', 'import', badEntry], 1, /^weir: .*bad-entry\.json: users\[2\]\.name: must be a string; nothing was imported\n$/);
    assert.ok(!(JSON.parse((await ok('user', 'list', '--json')).stdout) as Array<{ name: string }>).some((user) => user.name === 'a'), 'nothing was imported');
  });

  it('cli: definitions: export to a file, import into a second broker, which then exports the same', async () => {
    const file = join(directory, 'definitions.json');
    const exported = await ok('definitions', 'export', '--file', file);
    // Sections other layers register (exchanges, queues, bindings) may follow the access ones.
    assert.ok(exported.stderr.startsWith('exported 2 users, 2 vhosts, 2 permissions') && exported.stderr.endsWith(` to ${file}\n`), exported.stderr);
    assert.equal((await stat(file)).mode & 0o777, 0o600, 'password hashes: owner only');
    const document = JSON.parse(await readFile(file, 'utf8')) as { users: Array<{ name: string; password_hash: string; hashing_algorithm: string }> };
    assert.deepEqual(
      document.users.map((user) => [user.name, user.hashing_algorithm, Buffer.from(user.password_hash, 'base64').length]),
      [
        ['guest', 'rabbit_password_hashing_sha256', 36],
        ['orders-app', 'rabbit_password_hashing_sha256', 36],
      ],
    );
    const toStdout = await ok('definitions', 'export');
    assert.deepEqual(JSON.parse(toStdout.stdout), document);

    const imported = await runCli(['definitions', 'import', file, ...on(second)]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.ok(imported.stdout.startsWith('imported 2 users, 2 vhosts, 2 permissions') && imported.stdout.endsWith(` from ${file}\n`), imported.stdout);
    const again = await runCli(['definitions', 'export', ...on(second)]);
    assert.deepEqual(JSON.parse(again.stdout), document, 'same users (and password hashes), vhosts and permissions');
  });

  it('cli: definitions: a RabbitMQ export imports, with what Weir does not support reported as skipped', async () => {
    const imported = await runCli(['definitions', 'import', rabbitExport, ...on(second)]);
    assert.equal(imported.code, 0, imported.stderr);
    assert.match(imported.stdout, /^imported 5 users, 2 vhosts, 5 permissions(, [^\n]*)? from .*rabbitmq-definitions\.json\n/);
    assert.match(imported.stdout, /\nskipped \(not supported by Weir\): topic_permissions, parameters, global_parameters, policies/);
    const users = await runCli(['user', 'list', '--json', ...on(second)]);
    assert.deepEqual(
      (JSON.parse(users.stdout) as Array<{ name: string }>).map((user) => user.name),
      ['cert-only', 'guest', 'legacy-monitor', 'ops-admin', 'orders-app'],
    );
    const fromStdin = await runCli(['definitions', 'import', '-', '--json', ...on(second)], JSON.stringify({ vhosts: [{ name: 'piped' }] }));
    assert.equal(fromStdin.code, 0, fromStdin.stderr);
    assert.deepEqual(JSON.parse(fromStdin.stdout), { applied: { vhosts: 1 }, skipped: [] });
  });
});
