import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ErrorCode } from '../../core/errors.js';
import { NodeFileSystem } from '../../storage/io/node-file-system.js';
import { MemoryKeyValueStore } from '../../storage/memory-message-store.js';
import { MetadataStore } from '../../storage/metadata-store.js';
import { memoryBroker, rejectsWith, throwsWith } from '../test-support.js';
import { AccessControl } from './access-control.js';
import { verifyPassword } from './password-hash.js';

async function fresh(): Promise<{ access: AccessControl; metadata: MemoryKeyValueStore }> {
  const metadata = new MemoryKeyValueStore();
  return { access: await AccessControl.open(metadata), metadata };
}

const INVALID_CREDENTIALS = (name: string) => ({ ok: false, reason: `invalid credentials for user ${name}` });

describe('access: AccessControl', () => {
  it("access: the first open creates vhost '/' and guest/guest, administrator, with all permissions on '/'", async () => {
    const { access } = await fresh();
    assert.deepEqual(access.listVhosts(), ['/']);
    assert.deepEqual(access.listUsers(), [{ name: 'guest', tags: ['administrator'] }]);
    assert.deepEqual(access.listPermissions(), [{ user: 'guest', vhost: '/', configure: '.*', write: '.*', read: '.*' }]);
    assert.deepEqual(access.authenticate('guest', 'guest', '127.0.0.1'), { ok: true, user: 'guest' });
  });

  it('access: a later open does not seed again, even once every vhost and guest are gone', async () => {
    const { access, metadata } = await fresh();
    await access.deleteVhost('/');
    await access.deleteUser('guest');
    const reopened = await AccessControl.open(metadata);
    assert.deepEqual(reopened.listVhosts(), []);
    assert.deepEqual(reopened.listUsers(), []);
  });

  it('access: everything is kept in the metadata store and survives a restart', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'weir-access-'));
    try {
      const fs = new NodeFileSystem();
      const first = await MetadataStore.open(fs, directory);
      const access = await AccessControl.open(first);
      await access.addVhost('orders');
      await access.addUser('app', 'pw', ['monitoring']);
      await access.setPermissions('app', 'orders', '', '^orders\\.', '.*');
      await first.close();
      const second = await MetadataStore.open(fs, directory);
      const reopened = await AccessControl.open(second);
      assert.deepEqual(reopened.listVhosts(), ['/', 'orders']);
      assert.deepEqual(reopened.authenticate('app', 'pw', '10.1.2.3'), { ok: true, user: 'app' });
      assert.ok(reopened.check('app', 'orders', 'write', 'orders.eu'));
      assert.deepEqual(
        second.entries('access/').map(([key]) => key),
        ['access/permission/%2F/guest', 'access/permission/orders/app', 'access/seeded', 'access/user/app', 'access/user/guest', 'access/vhost/%2F', 'access/vhost/orders'],
        'the documented key layout, names with / escaped',
      );
      await second.close();
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it('access: BrokerCore opens it on the store metadata as core.access, with core.definitions', async () => {
    const { broker, store } = await memoryBroker();
    try {
      await broker.access.addUser('via-core', 'pw');
      assert.ok(store.metadata.has('access/user/via-core'));
      const exported = (await broker.definitions.export()) as { users: Array<{ name: string }> };
      assert.deepEqual(
        exported.users.map((user) => user.name),
        ['guest', 'via-core'],
      );
    } finally {
      await broker.close();
    }
  });

  describe('users', () => {
    it('access: add, list (by name, tags trimmed and each once), change tags, delete', async () => {
      const { access } = await fresh();
      await access.addUser('zed', 'pw1');
      await access.addUser('amy', 'pw2', [' monitoring ', 'management', 'monitoring', '']);
      assert.deepEqual(access.listUsers(), [
        { name: 'amy', tags: ['monitoring', 'management'] },
        { name: 'guest', tags: ['administrator'] },
        { name: 'zed', tags: [] },
      ]);
      await access.setTags('zed', ['administrator']);
      assert.deepEqual(access.listUsers().find((user) => user.name === 'zed')?.tags, ['administrator']);
      await access.deleteUser('zed');
      assert.ok(!access.hasUser('zed'));
      assert.deepEqual(access.authenticate('zed', 'pw1', '127.0.0.1'), INVALID_CREDENTIALS('zed'));
    });

    it('access: a user name is taken once; unknown users are UNKNOWN_USER', async () => {
      const { access } = await fresh();
      await rejectsWith(access.addUser('guest', 'x'), ErrorCode.UserExists);
      await rejectsWith(access.deleteUser('nobody'), ErrorCode.UnknownUser);
      await rejectsWith(access.changePassword('nobody', 'x'), ErrorCode.UnknownUser);
      await rejectsWith(access.setTags('nobody', []), ErrorCode.UnknownUser);
      await assert.rejects(access.deleteUser('nobody'), { message: 'user "nobody" does not exist' });
      await assert.rejects(access.addUser('guest', 'x'), { message: 'user "guest" already exists' });
    });

    it('access: bad names, passwords and tags are INVALID_ARGUMENT saying what is wrong', async () => {
      const { access } = await fresh();
      await assert.rejects(access.addUser('', 'pw'), { code: ErrorCode.InvalidArgument, message: 'a user name must not be empty' });
      await assert.rejects(access.addUser('a\nb', 'pw'), { message: 'a user name must not contain control characters' });
      await assert.rejects(access.addUser('x'.repeat(256), 'pw'), { message: 'a user name must be at most 255 bytes' });
      await assert.rejects(access.addUser('\uD800', 'pw'), { message: 'a user name must be valid Unicode' });
      await assert.rejects(access.addUser('ok', ''), { message: 'a password must be a non-empty string' });
      await assert.rejects(access.addUser('ok', 'pw', ['a,b']), { message: 'tag 1 ("a,b") must not contain a comma' });
      await assert.rejects(access.addUser('ok', 'pw', [7 as unknown as string]), { message: 'tag 1 (7) must be a string' });
      assert.ok(!access.hasUser('ok'), 'nothing written');
    });

    it('access: a changed password replaces the old one', async () => {
      const { access } = await fresh();
      await access.addUser('app', 'old');
      await access.changePassword('app', 'new');
      assert.deepEqual(access.authenticate('app', 'new', '::1'), { ok: true, user: 'app' });
      assert.deepEqual(access.authenticate('app', 'old', '::1'), INVALID_CREDENTIALS('app'));
    });

    it('access: passwords are stored only as salted hashes', async () => {
      const { access, metadata } = await fresh();
      await access.addUser('app', 'plain-text-secret');
      const stored = metadata.get('access/user/app') as { passwordHash: string; hashingAlgorithm: string };
      assert.ok(!JSON.stringify(stored).includes('plain-text-secret'));
      assert.equal(stored.hashingAlgorithm, 'rabbit_password_hashing_sha256');
      assert.ok(verifyPassword('plain-text-secret', stored.passwordHash, 'rabbit_password_hashing_sha256'));
    });
  });

  describe('authenticate', () => {
    it('access: unknown user and wrong password give the same text', async () => {
      const { access } = await fresh();
      await access.addUser('app', 'right');
      assert.deepEqual(access.authenticate('app', 'wrong', '10.0.0.1'), INVALID_CREDENTIALS('app'));
      assert.deepEqual(access.authenticate('ghost', 'right', '10.0.0.1'), INVALID_CREDENTIALS('ghost'));
      assert.deepEqual(access.authenticate('app', '', '10.0.0.1'), INVALID_CREDENTIALS('app'));
      assert.deepEqual(access.authenticate('app', 'right', '10.0.0.1'), { ok: true, user: 'app' });
    });

    it('access: guest may connect only from a loopback address (loopback_users), checked after the password', async () => {
      const { access } = await fresh();
      for (const local of ['127.0.0.1', '127.9.9.9', '::1', '::ffff:127.0.0.1']) assert.deepEqual(access.authenticate('guest', 'guest', local), { ok: true, user: 'guest' }, local);
      for (const remote of ['10.0.0.5', '192.168.1.1', '::ffff:10.0.0.5', 'fe80::1']) {
        assert.deepEqual(access.authenticate('guest', 'guest', remote), { ok: false, reason: 'user guest may connect only from localhost' }, remote);
      }
      assert.deepEqual(access.authenticate('guest', 'wrong', '10.0.0.5'), INVALID_CREDENTIALS('guest'), 'the password is checked first');
    });

    it('access: the loopback users are configurable', async () => {
      const access = await AccessControl.open(new MemoryKeyValueStore(), { loopbackUsers: [] });
      assert.deepEqual(access.authenticate('guest', 'guest', '10.0.0.5'), { ok: true, user: 'guest' });
    });
  });

  describe('vhosts', () => {
    it('access: add, list (sorted), has, delete', async () => {
      const { access } = await fresh();
      await access.addVhost('zeta');
      await access.addVhost('alpha/beta');
      assert.deepEqual(access.listVhosts(), ['/', 'alpha/beta', 'zeta']);
      assert.ok(access.hasVhost('alpha/beta'));
      assert.ok(!access.hasVhost('alpha'));
      await access.deleteVhost('zeta');
      assert.deepEqual(access.listVhosts(), ['/', 'alpha/beta']);
    });

    it('access: VHOST_EXISTS, UNKNOWN_VHOST, INVALID_ARGUMENT', async () => {
      const { access } = await fresh();
      await assert.rejects(access.addVhost('/'), { code: ErrorCode.VhostExists, message: 'virtual host "/" already exists' });
      await assert.rejects(access.deleteVhost('nope'), { code: ErrorCode.UnknownVhost, message: 'virtual host "nope" does not exist' });
      await assert.rejects(access.addVhost(''), { code: ErrorCode.InvalidArgument, message: 'a virtual host name must not be empty' });
    });

    it("access: deleting a vhost removes its permissions (only its), then tells the observers and waits for them", async () => {
      const { access } = await fresh();
      await access.addVhost('orders');
      await access.addUser('app', 'pw');
      await access.setPermissions('app', 'orders', '.*', '.*', '.*');
      await access.setPermissions('app', '/', '', '', '.*');
      const seen: string[] = [];
      let finished = false;
      access.onVhostDeleted((name) => void seen.push(`sync ${name}`));
      const remove = access.onVhostDeleted(async (name) => {
        await new Promise((resolve) => setImmediate(resolve));
        assert.ok(!access.hasVhost(name), 'told after the vhost is gone');
        finished = true;
      });
      await access.deleteVhost('orders');
      assert.deepEqual(seen, ['sync orders']);
      assert.ok(finished, 'deleteVhost waited for the async observer');
      assert.deepEqual(access.listPermissions({ user: 'app' }), [{ user: 'app', vhost: '/', configure: '', write: '', read: '.*' }]);
      assert.ok(!access.canAccessVhost('app', 'orders'));
      remove();
      await access.addVhost('again');
      await access.deleteVhost('again');
      assert.deepEqual(seen, ['sync orders', 'sync again'], 'a removed observer is not told');
    });

    it('access: a failing observer does not stop the others; the delete has happened and the call rejects with its error', async () => {
      const { access } = await fresh();
      await access.addVhost('doomed');
      const told: string[] = [];
      access.onVhostDeleted(() => {
        throw new Error('observer broke');
      });
      access.onVhostDeleted((name) => void told.push(name));
      await assert.rejects(access.deleteVhost('doomed'), { message: 'observer broke' });
      assert.deepEqual(told, ['doomed']);
      assert.ok(!access.hasVhost('doomed'));
    });
  });

  describe('permissions', () => {
    it('access: set replaces, clear removes, list filters by user and vhost, sorted by vhost then user', async () => {
      const { access } = await fresh();
      await access.addVhost('orders');
      await access.addUser('app', 'pw');
      await access.addUser('bob', 'pw');
      await access.setPermissions('bob', 'orders', '', '', '.*');
      await access.setPermissions('app', 'orders', '^app\\.', '.*', '.*');
      await access.setPermissions('app', 'orders', '', '.*', '.*');
      assert.deepEqual(access.listPermissions({ vhost: 'orders' }), [
        { user: 'app', vhost: 'orders', configure: '', write: '.*', read: '.*' },
        { user: 'bob', vhost: 'orders', configure: '', write: '', read: '.*' },
      ]);
      assert.deepEqual(
        access.listPermissions({ user: 'app', vhost: 'orders' }).map((permission) => permission.user),
        ['app'],
      );
      assert.deepEqual(
        access.listPermissions().map((permission) => `${permission.vhost} ${permission.user}`),
        ['/ guest', 'orders app', 'orders bob'],
      );
      await access.clearPermissions('app', 'orders');
      await access.clearPermissions('app', 'orders');
      assert.deepEqual(
        access.listPermissions({ vhost: 'orders' }).map((permission) => permission.user),
        ['bob'],
      );
    });

    it('access: an invalid regular expression is INVALID_ARGUMENT naming which one; unknown user or vhost are refused', async () => {
      const { access } = await fresh();
      await assert.rejects(access.setPermissions('guest', '/', '.*', '(', '.*'), {
        code: ErrorCode.InvalidArgument,
        message: /^the write permission "\(" is not a valid regular expression: .*Unterminated group/,
      });
      await assert.rejects(access.setPermissions('guest', '/', '[', '.*', '.*'), { message: /^the configure permission "\["/ });
      await assert.rejects(access.setPermissions('guest', '/', '.*', '.*', '*'), { message: /^the read permission "\*"/ });
      await rejectsWith(access.setPermissions('nobody', '/', '.*', '.*', '.*'), ErrorCode.UnknownUser);
      await rejectsWith(access.setPermissions('guest', 'nowhere', '.*', '.*', '.*'), ErrorCode.UnknownVhost);
      await rejectsWith(access.clearPermissions('nobody', '/'), ErrorCode.UnknownUser);
      await rejectsWith(access.clearPermissions('guest', 'nowhere'), ErrorCode.UnknownVhost);
      throwsWith(() => access.listPermissions({ user: 'nobody' }), ErrorCode.UnknownUser);
      throwsWith(() => access.listPermissions({ vhost: 'nowhere' }), ErrorCode.UnknownVhost);
      assert.deepEqual(access.listPermissions({ user: 'guest' })[0]?.write, '.*', 'nothing changed');
    });

    it("access: canAccessVhost needs a permission entry there, even one of three ''", async () => {
      const { access } = await fresh();
      await access.addVhost('orders');
      await access.addUser('app', 'pw');
      assert.ok(!access.canAccessVhost('app', 'orders'));
      await access.setPermissions('app', 'orders', '', '', '');
      assert.ok(access.canAccessVhost('app', 'orders'));
      assert.ok(!access.check('app', 'orders', 'read', 'anything'));
      assert.ok(!access.canAccessVhost('app', '/'));
      assert.ok(!access.canAccessVhost('nobody', 'orders'));
      assert.ok(!access.canAccessVhost('app', 'nowhere'));
    });

    it('access: check matches the kind of access against its own pattern, in that vhost only', async () => {
      const { access } = await fresh();
      await access.addVhost('orders');
      await access.addUser('app', 'pw');
      await access.setPermissions('app', 'orders', '^app-', 'orders', '^(amq\\.gen.*|replies)$');
      assert.ok(access.check('app', 'orders', 'configure', 'app-queue'));
      assert.ok(!access.check('app', 'orders', 'configure', 'my-app-queue'), 'anchored with ^');
      assert.ok(access.check('app', 'orders', 'write', 'orders'));
      assert.ok(access.check('app', 'orders', 'write', 'eu.orders.v2'), 'unanchored: matches inside the name');
      assert.ok(!access.check('app', 'orders', 'write', 'payments'));
      assert.ok(access.check('app', 'orders', 'read', 'amq.gen-3f1c'));
      assert.ok(!access.check('app', 'orders', 'read', 'replies-old'));
      assert.ok(!access.check('app', '/', 'read', 'replies'), 'no permissions in the other vhost');
      assert.ok(!access.check('nobody', 'orders', 'read', 'replies'));
    });

    it('access: deleting a user removes its permissions everywhere', async () => {
      const { access } = await fresh();
      await access.addVhost('orders');
      await access.addUser('app', 'pw');
      await access.setPermissions('app', 'orders', '.*', '.*', '.*');
      await access.setPermissions('app', '/', '.*', '.*', '.*');
      await access.deleteUser('app');
      assert.deepEqual(
        access.listPermissions().map((permission) => permission.user),
        ['guest'],
      );
      await access.addUser('app', 'pw');
      assert.ok(!access.canAccessVhost('app', 'orders'), 'a new user of the same name starts with nothing');
    });
  });
});
