import { isLoopbackAddress } from '../../broker/access/loopback.js';
import type { BrokerCore } from '../../broker/broker-core.js';
import { invalidArgument } from '../../broker/errors.js';
import { ErrorCode, WeirError } from '../../core/errors.js';
import type { ConnectionContext, Handler, HandlerTable } from './native-connection.js';

type AccessApi =
  | 'ListUsers'
  | 'AddUser'
  | 'DeleteUser'
  | 'ChangePassword'
  | 'SetUserTags'
  | 'ListVhosts'
  | 'AddVhost'
  | 'DeleteVhost'
  | 'ListPermissions'
  | 'SetPermissions'
  | 'ClearPermissions'
  | 'ExportDefinitions'
  | 'ImportDefinitions';

/**
 * The native protocol has no authentication yet, and the listener binds every interface by default: anyone who can
 * reach the port could otherwise add an administrator or export the password hashes. Until it authenticates, user
 * management is served only to peers on the broker's own machine. ACCESS_REFUSED otherwise.
 */
export function requireLoopbackPeer(api: AccessApi, context: Pick<ConnectionContext, 'peerAddress'>): void {
  if (isLoopbackAddress(context.peerAddress)) return;
  throw new WeirError(
    ErrorCode.AccessRefused,
    `${api} refused: user management is allowed only from the broker's machine (a loopback connection), and this connection comes from ${context.peerAddress || 'an unknown address'}; the native protocol has no authentication yet`,
  );
}

/** Users, virtual hosts, permissions and definitions (broker/access) over the native protocol, to loopback peers only. */
export function accessHandlers(broker: BrokerCore): Pick<HandlerTable, AccessApi> {
  const handlers = unguardedAccessHandlers(broker);
  const guarded: Partial<Record<AccessApi, Handler<AccessApi>>> = {};
  for (const api of Object.keys(handlers) as AccessApi[]) {
    const handler = handlers[api] as Handler<AccessApi>;
    guarded[api] = (body, context) => {
      requireLoopbackPeer(api, context);
      return handler(body, context);
    };
  }
  return guarded as Pick<HandlerTable, AccessApi>;
}

function unguardedAccessHandlers(broker: BrokerCore): Pick<HandlerTable, AccessApi> {
  const { access, definitions } = broker;
  return {
    ListUsers: () => ({ users: access.listUsers() }),
    AddUser: async (body) => {
      await access.addUser(body.name, body.password, body.tags);
      return {};
    },
    DeleteUser: async (body) => {
      await access.deleteUser(body.name);
      return {};
    },
    ChangePassword: async (body) => {
      await access.changePassword(body.name, body.password);
      return {};
    },
    SetUserTags: async (body) => {
      await access.setTags(body.name, body.tags);
      return {};
    },
    ListVhosts: () => ({ vhosts: access.listVhosts() }),
    AddVhost: async (body) => {
      await access.addVhost(body.name);
      return {};
    },
    DeleteVhost: async (body) => {
      await access.deleteVhost(body.name);
      return {};
    },
    ListPermissions: (body) => ({ permissions: access.listPermissions({ ...(body.user === null ? {} : { user: body.user }), ...(body.vhost === null ? {} : { vhost: body.vhost }) }) }),
    SetPermissions: async (body) => {
      await access.setPermissions(body.user, body.vhost, body.configure, body.write, body.read);
      return {};
    },
    ClearPermissions: async (body) => {
      await access.clearPermissions(body.user, body.vhost);
      return {};
    },
    ExportDefinitions: async () => ({ definitions: Buffer.from(JSON.stringify(await definitions.export(), null, 2), 'utf8') }),
    ImportDefinitions: async (body) => {
      let document: unknown;
      try {
        document = JSON.parse(Buffer.from(body.definitions).toString('utf8'));
      } catch (error) {
        throw invalidArgument(`the definitions are not valid JSON: ${(error as Error).message}`);
      }
      const report = await definitions.import(document);
      return { applied: Object.entries(report.applied).map(([key, count]) => ({ key, count })), skipped: report.skipped };
    },
  };
}
