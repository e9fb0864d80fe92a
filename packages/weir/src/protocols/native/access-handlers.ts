import type { BrokerCore } from '../../broker/broker-core.js';
import { invalidArgument } from '../../broker/errors.js';
import type { HandlerTable } from './native-connection.js';

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

/** Users, virtual hosts, permissions and definitions (broker/access) over the native protocol. */
export function accessHandlers(broker: BrokerCore): Pick<HandlerTable, AccessApi> {
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
