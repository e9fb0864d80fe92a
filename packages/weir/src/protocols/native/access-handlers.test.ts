import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BrokerCore } from '../../broker/broker-core.js';
import { ErrorCode, isWeirError } from '../../core/errors.js';
import { accessHandlers } from './access-handlers.js';
import type { ConnectionContext, Handler } from './native-connection.js';
import { protocolErrorOf } from './error-mapping.js';

/** A broker whose access and definitions record every call, so a refused request can be seen not to reach them. */
function recordingBroker(): { broker: BrokerCore; calls: string[] } {
  const calls: string[] = [];
  const recorder = (result: unknown) =>
    new Proxy(
      {},
      {
        get: (_target, name) => (..._args: unknown[]) => {
          calls.push(String(name));
          return result;
        },
      },
    );
  const broker = { access: recorder([]), definitions: recorder(Promise.resolve({ applied: {}, skipped: [] })) } as unknown as BrokerCore;
  return { broker, calls };
}

function contextFrom(peerAddress: string): ConnectionContext {
  return { connectionId: 'c1', clientId: 'test', remoteAddress: `${peerAddress}:5000`, peerAddress, closed: new AbortController().signal, push: () => true, whenWritable: (resume) => resume() };
}

const bodies: Record<string, unknown> = {
  ListUsers: {},
  AddUser: { name: 'mallory', password: 'p', tags: ['administrator'] },
  DeleteUser: { name: 'guest' },
  ChangePassword: { name: 'guest', password: 'p' },
  SetUserTags: { name: 'guest', tags: [] },
  ListVhosts: {},
  AddVhost: { name: 'v' },
  DeleteVhost: { name: '/' },
  ListPermissions: { user: null, vhost: null },
  SetPermissions: { user: 'guest', vhost: '/', configure: '.*', write: '.*', read: '.*' },
  ClearPermissions: { user: 'guest', vhost: '/' },
  ExportDefinitions: {},
  ImportDefinitions: { definitions: Buffer.from('{}') },
};

describe('native: user management from loopback only', () => {
  it('native: every access API refuses a peer that is not on loopback, before touching the broker', async () => {
    const { broker, calls } = recordingBroker();
    const handlers = accessHandlers(broker);
    assert.deepEqual(Object.keys(handlers).sort(), Object.keys(bodies).sort(), 'every access API is covered');
    for (const peer of ['192.0.2.7', '::ffff:10.1.2.3', '2001:db8::1', '']) {
      for (const [api, handler] of Object.entries(handlers) as Array<[string, Handler<'ListUsers'>]>) {
        let refused: unknown = null;
        try {
          await handler(bodies[api] as never, contextFrom(peer));
        } catch (error) {
          refused = error;
        }
        assert.ok(isWeirError(refused, ErrorCode.AccessRefused), `${api} from "${peer}": ${String(refused)}`);
        assert.match((refused as Error).message, /user management is allowed only from the broker's machine/);
        assert.deepEqual(protocolErrorOf(refused), { name: 'ACCESS_REFUSED', message: (refused as Error).message, unexpected: false });
      }
    }
    assert.deepEqual(calls, [], 'nothing reached the broker');
  });

  it('native: loopback peers (IPv4, IPv6 and IPv4-mapped) may manage users', async () => {
    const { broker, calls } = recordingBroker();
    const handlers = accessHandlers(broker);
    for (const peer of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) {
      assert.deepEqual(await handlers.ListUsers({}, contextFrom(peer)), { users: [] }, peer);
      await handlers.AddUser({ name: 'alice', password: 'p', tags: [] }, contextFrom(peer));
    }
    assert.deepEqual(calls, ['listUsers', 'addUser', 'listUsers', 'addUser', 'listUsers', 'addUser', 'listUsers', 'addUser']);
  });
});
