import type { AccessControl, AccessEntities, Permission, StoredUser } from './access-control.js';
import { type DefinitionsSection, entriesOf, invalidAt, SectionOrder, stringAt } from './definitions.js';
import { DEFAULT_HASHING_ALGORITHM, HASHING_ALGORITHMS, type HashingAlgorithm, hashPassword, isHashingAlgorithm, storedHashProblem } from './password-hash.js';
import { compileProblem, PERMISSION_KINDS } from './permission-patterns.js';
import { nameProblem, normalizeTags, tagProblem } from './validation.js';

/**
 * AccessControl's definitions section: `users`, `vhosts` and `permissions` as RabbitMQ exports them (3.6 on), so
 * a RabbitMQ export imports with working passwords, and ours imports into RabbitMQ. Fields Weir has no use for
 * (limits, description, metadata, default_queue_type, …) are ignored on import.
 */
export function accessDefinitions(access: AccessControl): DefinitionsSection {
  return {
    keys: ['users', 'vhosts', 'permissions'],
    order: SectionOrder.access,
    export: () => {
      const { users, vhosts, permissions } = access.entities();
      return {
        users: users.map((user) => ({ name: user.name, password_hash: user.passwordHash, hashing_algorithm: user.hashingAlgorithm, tags: user.tags })),
        vhosts: vhosts.map((name) => ({ name })),
        permissions: permissions.map(({ user, vhost, configure, write, read }) => ({ user, vhost, configure, write, read })),
      };
    },
    validate: (definitions) => void parseAccessDefinitions(definitions, access),
    import: (definitions) => access.importEntities(parseAccessDefinitions(definitions, access)),
  };
}

/** Checks every entry (INVALID_ARGUMENT naming it) and turns them into AccessControl records. */
export function parseAccessDefinitions(definitions: Record<string, unknown>, access: AccessControl): AccessEntities {
  const version = [definitions.rabbitmq_version, definitions.rabbit_version].find((value): value is string => typeof value === 'string');
  const vhosts = entriesOf(definitions, 'vhosts').map(([entry, path]) => nameAt(entry, path, 'name'));
  const users = entriesOf(definitions, 'users').map(([entry, path]) => userOf(entry, path, version));
  const permissions = entriesOf(definitions, 'permissions').map(([entry, path]) => permissionOf(entry, path));
  const userNames = new Set(users.map((user) => user.name));
  const vhostNames = new Set(vhosts);
  permissions.forEach((permission, index) => {
    if (!userNames.has(permission.user) && !access.hasUser(permission.user)) {
      throw invalidAt(`permissions[${index}].user`, `user "${permission.user}" is neither in the definitions nor on the broker`);
    }
    if (!vhostNames.has(permission.vhost) && !access.hasVhost(permission.vhost)) {
      throw invalidAt(`permissions[${index}].vhost`, `virtual host "${permission.vhost}" is neither in the definitions nor on the broker`);
    }
  });
  return { vhosts, users, permissions };
}

function nameAt(entry: Record<string, unknown>, path: string, field: string): string {
  const name = stringAt(entry, path, field);
  const problem = nameProblem(name);
  if (problem !== null) throw invalidAt(`${path}.${field}`, problem);
  return name;
}

/**
 * A user with `password_hash` (and `hashing_algorithm`), or with a clear-text `password` (hashed here), or with
 * neither: a user without a password, as in RabbitMQ.
 */
function userOf(entry: Record<string, unknown>, path: string, version: string | undefined): StoredUser {
  const name = nameAt(entry, path, 'name');
  const tags = tagsOf(entry, path);
  if (entry.password !== undefined) {
    if (entry.password_hash !== undefined) throw invalidAt(path, 'has both password and password_hash; give one');
    const password = stringAt(entry, path, 'password');
    return { name, passwordHash: password === '' ? '' : hashPassword(password), hashingAlgorithm: DEFAULT_HASHING_ALGORITHM, tags };
  }
  const passwordHash = entry.password_hash === undefined ? '' : stringAt(entry, path, 'password_hash');
  const hashingAlgorithm = algorithmOf(entry, path, version);
  const problem = storedHashProblem(passwordHash, hashingAlgorithm);
  if (problem !== null) throw invalidAt(`${path}.password_hash`, problem);
  return { name, passwordHash, hashingAlgorithm, tags };
}

/** Missing: what RabbitMQ assumes, MD5 for exports of 3.0–3.5 (refused: too weak to keep) and SHA-256 otherwise. */
function algorithmOf(entry: Record<string, unknown>, path: string, version: string | undefined): HashingAlgorithm {
  const algorithm = entry.hashing_algorithm;
  if (algorithm === undefined) {
    if (version !== undefined && /^3\.[0-5]\./.test(version)) {
      throw invalidAt(`${path}.hashing_algorithm`, `missing, so MD5 as in every RabbitMQ ${version} export; Weir accepts ${HASHING_ALGORITHMS.join(' and ')}: set a new password with a clear-text "password" field, or export from RabbitMQ 3.6 or later after changing it`);
    }
    return DEFAULT_HASHING_ALGORITHM;
  }
  if (!isHashingAlgorithm(algorithm)) throw invalidAt(`${path}.hashing_algorithm`, `must be ${HASHING_ALGORITHMS.join(' or ')}, not ${JSON.stringify(algorithm)}`);
  return algorithm;
}

/** RabbitMQ 3.9 and later export an array; earlier versions a comma-separated string. Missing: none. */
function tagsOf(entry: Record<string, unknown>, path: string): string[] {
  const tags = entry.tags;
  if (tags === undefined) return [];
  const list = typeof tags === 'string' ? tags.split(',') : tags;
  if (!Array.isArray(list)) throw invalidAt(`${path}.tags`, 'must be an array of strings or a comma-separated string');
  list.forEach((tag: unknown, index) => {
    const problem = tagProblem(tag);
    if (problem !== null) throw invalidAt(`${path}.tags[${index}]`, problem);
  });
  return normalizeTags(list as string[]);
}

function permissionOf(entry: Record<string, unknown>, path: string): Permission {
  const permission: Permission = { user: nameAt(entry, path, 'user'), vhost: nameAt(entry, path, 'vhost'), configure: '', write: '', read: '' };
  for (const kind of PERMISSION_KINDS) {
    const pattern = stringAt(entry, path, kind);
    const problem = compileProblem(pattern);
    if (problem !== null) throw invalidAt(`${path}.${kind}`, `${JSON.stringify(pattern)} is not a valid regular expression: ${problem}`);
    permission[kind] = pattern;
  }
  return permission;
}
