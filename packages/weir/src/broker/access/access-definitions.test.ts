import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ErrorCode } from '../../core/errors.js';
import { MemoryKeyValueStore } from '../../storage/memory-message-store.js';
import { AccessControl } from './access-control.js';
import { accessDefinitions } from './access-definitions.js';
import { DefinitionsRegistry } from './definitions.js';

/** A RabbitMQ 3.13 export (users of both hashing algorithms and both tag forms, vhost metadata and limits, policies, …). */
const rabbitExport = JSON.parse(readFileSync(new URL('../../../test/fixtures/rabbitmq-definitions.json', import.meta.url), 'utf8')) as {
  users: Array<{ name: string; password_hash: string }>;
};

async function broker(): Promise<{ access: AccessControl; definitions: DefinitionsRegistry; metadata: MemoryKeyValueStore }> {
  const metadata = new MemoryKeyValueStore();
  const access = await AccessControl.open(metadata);
  const definitions = new DefinitionsRegistry();
  definitions.register(accessDefinitions(access));
  return { access, definitions, metadata };
}

/** RabbitMQ's SHA-256 scheme written out here, independently of password-hash.ts: base64(salt ‖ SHA-256(salt ‖ password)). */
function rabbitSha256(salt: Buffer, password: string): string {
  return Buffer.concat([salt, createHash('sha256').update(Buffer.concat([salt, Buffer.from(password, 'utf8')])).digest()]).toString('base64');
}

/** A copy of the export with one change. */
function edited(change: (document: Record<string, any>) => void): Record<string, unknown> {
  const copy = structuredClone(rabbitExport) as Record<string, any>;
  change(copy);
  return copy;
}

describe('access: definitions in RabbitMQ format', () => {
  it('access: the fixture holds genuine RabbitMQ sha256 hashes', () => {
    const orders = rabbitExport.users.find((user) => user.name === 'orders-app')!;
    const salt = Buffer.from(orders.password_hash, 'base64').subarray(0, 4);
    assert.equal(rabbitSha256(salt, 'orders-s3cret'), orders.password_hash);
  });

  it('access: a RabbitMQ export imports with working passwords, tags in both forms, permissions, and the rest reported as skipped', async () => {
    const { access, definitions } = await broker();
    const report = await definitions.import(rabbitExport);
    assert.deepEqual(report, {
      applied: { users: 5, vhosts: 2, permissions: 5 },
      skipped: ['topic_permissions', 'parameters', 'global_parameters', 'policies', 'queues', 'exchanges', 'bindings'],
    });
    assert.deepEqual(access.authenticate('orders-app', 'orders-s3cret', '10.0.0.7'), { ok: true, user: 'orders-app' }, 'sha256');
    assert.deepEqual(access.authenticate('ops-admin', 'Admin-Pa55!', '10.0.0.7'), { ok: true, user: 'ops-admin' }, 'sha512');
    assert.deepEqual(access.authenticate('legacy-monitor', 'watch-it', '10.0.0.7'), { ok: true, user: 'legacy-monitor' });
    assert.deepEqual(access.authenticate('orders-app', 'wrong', '10.0.0.7'), { ok: false, reason: 'invalid credentials for user orders-app' });
    assert.deepEqual(access.authenticate('cert-only', '', '127.0.0.1'), { ok: false, reason: 'invalid credentials for user cert-only' }, 'no password: no password login');
    assert.deepEqual(access.authenticate('guest', 'guest', '127.0.0.1'), { ok: true, user: 'guest' }, 'guest replaced by the imported one, same password');
    assert.deepEqual(access.listUsers(), [
      { name: 'cert-only', tags: [] },
      { name: 'guest', tags: ['administrator'] },
      { name: 'legacy-monitor', tags: ['monitoring', 'management'] },
      { name: 'ops-admin', tags: ['administrator', 'management'] },
      { name: 'orders-app', tags: [] },
    ]);
    assert.deepEqual(access.listVhosts(), ['/', 'orders']);
    assert.ok(access.check('orders-app', 'orders', 'write', 'amq.default'));
    assert.ok(access.check('orders-app', 'orders', 'read', 'orders.created'));
    assert.ok(!access.check('orders-app', 'orders', 'configure', 'payments'));
    assert.ok(access.canAccessVhost('legacy-monitor', 'orders'));
    assert.ok(!access.check('legacy-monitor', 'orders', 'read', 'orders.created'));
  });

  it('access: export → import into an empty broker gives the same users (passwords included), vhosts and permissions', async () => {
    const source = await broker();
    await source.definitions.import(rabbitExport);
    await source.access.addUser('local', 'pw-made-here', ['management']);
    await source.access.addVhost('a/b');
    await source.access.setPermissions('local', 'a/b', '', '^x', '.*');
    const exported = JSON.parse(JSON.stringify(await source.definitions.export())) as Record<string, unknown>;
    assert.deepEqual(Object.keys(exported), ['users', 'vhosts', 'permissions']);
    assert.deepEqual((exported.users as unknown[])[0], {
      name: 'cert-only',
      password_hash: '',
      hashing_algorithm: 'rabbit_password_hashing_sha256',
      tags: [],
    });

    const target = await broker();
    await target.access.deleteUser('guest');
    await target.access.deleteVhost('/');
    await target.definitions.import(exported);
    assert.deepEqual(target.access.entities(), source.access.entities());
    assert.deepEqual(target.access.authenticate('local', 'pw-made-here', '10.0.0.1'), { ok: true, user: 'local' });
    assert.deepEqual(target.access.authenticate('ops-admin', 'Admin-Pa55!', '10.0.0.1'), { ok: true, user: 'ops-admin' });
  });

  it('access: import creates and updates, deleting nothing', async () => {
    const { access, definitions } = await broker();
    await access.addUser('keep-me', 'pw');
    await access.addUser('orders-app', 'old-password', ['old-tag']);
    await definitions.import(rabbitExport);
    assert.ok(access.hasUser('keep-me'));
    assert.deepEqual(access.authenticate('orders-app', 'orders-s3cret', '10.0.0.1'), { ok: true, user: 'orders-app' });
    assert.deepEqual(access.listUsers().find((user) => user.name === 'orders-app')?.tags, []);
  });

  it('access: a clear-text password is hashed on import; a user with neither password field has none', async () => {
    const { access, definitions, metadata } = await broker();
    await definitions.import({ users: [{ name: 'plain', password: 'typed-in', tags: 'a, b' }, { name: 'nopass', tags: [] }] });
    assert.deepEqual(access.authenticate('plain', 'typed-in', '10.0.0.1'), { ok: true, user: 'plain' });
    assert.ok(!JSON.stringify(metadata.get('access/user/plain')).includes('typed-in'));
    assert.deepEqual(access.listUsers().find((user) => user.name === 'plain')?.tags, ['a', 'b']);
    assert.deepEqual(access.authenticate('nopass', '', '127.0.0.1'), { ok: false, reason: 'invalid credentials for user nopass' });
  });

  it('access: a missing hashing_algorithm is SHA-256, except in exports of RabbitMQ 3.0–3.5 (MD5, refused)', async () => {
    const salt = Buffer.from('01020304', 'hex');
    const user = { name: 'old', password_hash: rabbitSha256(salt, 'pw'), tags: '' };
    const { access, definitions } = await broker();
    await definitions.import({ rabbit_version: '3.6.6', users: [user] });
    assert.deepEqual(access.authenticate('old', 'pw', '10.0.0.1'), { ok: true, user: 'old' });
    await assert.rejects(definitions.import({ rabbit_version: '3.5.7', users: [user] }), {
      code: ErrorCode.InvalidArgument,
      message: /^users\[0\]\.hashing_algorithm: missing, so MD5 as in every RabbitMQ 3\.5\.7 export/,
    });
  });

  it('access: every bad entry is refused with its path, and nothing is imported', async () => {
    const cases: Array<[(document: Record<string, any>) => void, string | RegExp]> = [
      [(document) => (document.users[2].name = 42), 'users[2].name: must be a string'],
      [(document) => delete document.users[2].name, 'users[2].name: must be a string'],
      [(document) => (document.users[1].name = ''), 'users[1].name: must not be empty'],
      [(document) => (document.users[0].password_hash = 'not base64!'), 'users[0].password_hash: must be base64'],
      [(document) => (document.users[1].hashing_algorithm = 'rabbit_password_hashing_sha256'), /^users\[1\]\.password_hash: must decode to 36 bytes/],
      [(document) => (document.users[0].hashing_algorithm = 'rabbit_password_hashing_md5'), 'users[0].hashing_algorithm: must be rabbit_password_hashing_sha256 or rabbit_password_hashing_sha512, not "rabbit_password_hashing_md5"'],
      [(document) => (document.users[0].password = 'x'), 'users[0]: has both password and password_hash; give one'],
      [(document) => (document.users[0].tags = 7), 'users[0].tags: must be an array of strings or a comma-separated string'],
      [(document) => (document.users[0].tags = ['ok', 3]), 'users[0].tags[1]: must be a string'],
      [(document) => (document.vhosts[1].name = 'bad\u0000name'), 'vhosts[1].name: must not contain control characters'],
      [(document) => (document.permissions[3].write = '(orders'), /^permissions\[3\]\.write: "\(orders" is not a valid regular expression: /],
      [(document) => delete document.permissions[0].read, 'permissions[0].read: must be a string'],
      [(document) => (document.permissions[4].user = 'stranger'), 'permissions[4].user: user "stranger" is neither in the definitions nor on the broker'],
      [(document) => (document.permissions[3].vhost = 'elsewhere'), 'permissions[3].vhost: virtual host "elsewhere" is neither in the definitions nor on the broker'],
      [(document) => (document.users = 'all of them'), 'users: must be an array'],
    ];
    for (const [change, message] of cases) {
      const { access, definitions } = await broker();
      const before = access.entities();
      await assert.rejects(definitions.import(edited(change)), { code: ErrorCode.InvalidArgument, message }, String(message));
      assert.deepEqual(access.entities(), before, `nothing imported (${String(message)})`);
    }
  });

  it('access: permissions may name users and vhosts that already exist on the broker', async () => {
    const { access, definitions } = await broker();
    await access.addUser('app', 'pw');
    await definitions.import({ permissions: [{ user: 'app', vhost: '/', configure: '', write: '.*', read: '.*' }] });
    assert.ok(access.check('app', '/', 'write', 'x'));
  });
});
