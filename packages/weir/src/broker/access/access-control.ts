import { ErrorCode } from '../../core/errors.js';
import type { KeyValueStore } from '../../storage/message-store.js';
import { brokerError, invalidArgument, type MetadataOp } from '../errors.js';
import { isLoopbackAddress } from './loopback.js';
import { DEFAULT_HASHING_ALGORITHM, type HashingAlgorithm, hashPassword, verifyPassword } from './password-hash.js';
import { compileProblem, PERMISSION_KINDS, type PermissionKind, PermissionPatterns } from './permission-patterns.js';
import { nameProblem, normalizeTags, tagProblem } from './validation.js';

const USER_PREFIX = 'access/user/';
const VHOST_PREFIX = 'access/vhost/';
const PERMISSION_PREFIX = 'access/permission/';
/** Written with the defaults, so that deleting every vhost (and guest) does not bring guest/guest back at the next start. */
const SEEDED_KEY = 'access/seeded';

export interface StoredUser {
  name: string;
  /** RabbitMQ's format (password-hash.ts); '' for a user without a password, who cannot log in with one. */
  passwordHash: string;
  hashingAlgorithm: HashingAlgorithm;
  tags: string[];
}

export interface Permission {
  user: string;
  vhost: string;
  configure: string;
  write: string;
  read: string;
}

export type AuthenticationResult = { ok: true; user: string } | { ok: false; reason: string };

/** Told after a vhost and its permissions are deleted, e.g. to delete the vhost's queues and exchanges. */
export type VhostDeletedListener = (vhost: string) => void | Promise<void>;

export interface AccessControlOptions {
  /** Users who may connect only from a loopback address (RabbitMQ's loopback_users); default ['guest']. */
  loopbackUsers?: readonly string[];
}

/** What a definitions export holds and an import writes. */
export interface AccessEntities {
  vhosts: string[];
  users: StoredUser[];
  permissions: Permission[];
}

/** Names may hold '/' (the vhost '/'), which separates key parts: escape it, and '%' so the escape is unambiguous. */
function keyPart(name: string): string {
  return name.replace(/[%/]/g, (character) => (character === '%' ? '%25' : '%2F'));
}

const userKey = (name: string) => USER_PREFIX + keyPart(name);
const vhostKey = (name: string) => VHOST_PREFIX + keyPart(name);
/** Vhost first, so one vhost's permissions share a key prefix. */
const permissionKey = (user: string, vhost: string) => `${PERMISSION_PREFIX}${keyPart(vhost)}/${keyPart(user)}`;

const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const byVhostThenUser = (a: Permission, b: Permission) => (a.vhost !== b.vhost ? (a.vhost < b.vhost ? -1 : 1) : a.user < b.user ? -1 : a.user > b.user ? 1 : 0);

/** Hashed against when the user is unknown, so the answer takes as long as for a wrong password. */
const UNKNOWN_USER_HASH = hashPassword('', DEFAULT_HASHING_ALGORITHM);

function checkName(what: string, name: unknown): asserts name is string {
  const problem = nameProblem(name);
  if (problem !== null) throw invalidArgument(`a ${what} name ${problem}`);
}

function checkPassword(password: unknown): asserts password is string {
  if (typeof password !== 'string' || password.length === 0) throw invalidArgument('a password must be a non-empty string');
}

function checkedTags(tags: unknown): string[] {
  if (!Array.isArray(tags)) throw invalidArgument('tags must be an array of strings');
  for (const [index, tag] of tags.entries()) {
    const problem = tagProblem(tag);
    if (problem !== null) throw invalidArgument(`tag ${index + 1} (${JSON.stringify(tag)}) ${problem}`);
  }
  return normalizeTags(tags as string[]);
}

/**
 * Users, virtual hosts and permissions, RabbitMQ's model: a user authenticates with a password; a user may use a vhost
 * when it holds permissions there; permissions are three regular expressions (configure, write, read) over resource
 * names in that vhost (permission-patterns.ts says how they match).
 *
 * State lives only in the metadata store (`access/user/<name>`, `access/vhost/<name>`,
 * `access/permission/<vhost>/<user>`, names with '%' and '/' escaped), read back on every call: the store's map is in
 * memory and sees each write at call time, and after a failed write it reverts to what is durable, which this class
 * then sees too. Each change resolves once durable; one call is one atomic write.
 */
export class AccessControl {
  private readonly patterns = new PermissionPatterns();
  private readonly vhostDeletedListeners = new Set<VhostDeletedListener>();
  private readonly loopbackUsers: ReadonlySet<string>;

  private constructor(
    private readonly metadata: KeyValueStore,
    options: AccessControlOptions,
  ) {
    this.loopbackUsers = new Set(options.loopbackUsers ?? ['guest']);
  }

  /** On the first open, creates what RabbitMQ starts with: vhost '/', and user guest/guest, administrator, with all permissions on '/'. */
  static async open(metadata: KeyValueStore, options: AccessControlOptions = {}): Promise<AccessControl> {
    const access = new AccessControl(metadata, options);
    if (!metadata.has(SEEDED_KEY)) {
      const ops: MetadataOp[] = [{ key: SEEDED_KEY, value: true }];
      if (metadata.entries(VHOST_PREFIX).length === 0) {
        const guest: StoredUser = { name: 'guest', passwordHash: hashPassword('guest'), hashingAlgorithm: DEFAULT_HASHING_ALGORITHM, tags: ['administrator'] };
        const permission: Permission = { user: 'guest', vhost: '/', configure: '.*', write: '.*', read: '.*' };
        ops.push({ key: vhostKey('/'), value: { name: '/' } }, { key: userKey('guest'), value: guest }, { key: permissionKey('guest', '/'), value: permission });
      }
      await metadata.apply(ops);
    }
    return access;
  }

  // ---- users --------------------------------------------------------------------------------------------------------

  /** INVALID_ARGUMENT, USER_EXISTS. */
  async addUser(name: string, password: string, tags: readonly string[] = []): Promise<void> {
    checkName('user', name);
    checkPassword(password);
    const user: StoredUser = { name, passwordHash: hashPassword(password), hashingAlgorithm: DEFAULT_HASHING_ALGORITHM, tags: checkedTags(tags) };
    if (this.hasUser(name)) throw brokerError(ErrorCode.UserExists, `user "${name}" already exists`);
    await this.metadata.put(userKey(name), user);
  }

  /** Deletes the user and its permissions. UNKNOWN_USER. */
  async deleteUser(name: string): Promise<void> {
    this.requireUser(name);
    const ops: MetadataOp[] = [{ key: userKey(name), delete: true }];
    for (const permission of this.permissionsOf({ user: name })) ops.push({ key: permissionKey(permission.user, permission.vhost), delete: true });
    await this.metadata.apply(ops);
  }

  /** Hashes with the default algorithm, whatever the old hash used. UNKNOWN_USER, INVALID_ARGUMENT. */
  async changePassword(name: string, password: string): Promise<void> {
    const user = this.requireUser(name);
    checkPassword(password);
    await this.metadata.put(userKey(name), { ...user, passwordHash: hashPassword(password), hashingAlgorithm: DEFAULT_HASHING_ALGORITHM });
  }

  /** Replaces the user's tags. UNKNOWN_USER, INVALID_ARGUMENT. */
  async setTags(name: string, tags: readonly string[]): Promise<void> {
    const user = this.requireUser(name);
    await this.metadata.put(userKey(name), { ...user, tags: checkedTags(tags) });
  }

  listUsers(): Array<{ name: string; tags: string[] }> {
    return this.users().map((user) => ({ name: user.name, tags: [...user.tags] }));
  }

  hasUser(name: string): boolean {
    return this.metadata.has(userKey(name));
  }

  /**
   * Checks a password login. Unknown user and wrong password give the same answer, so it does not reveal which names
   * exist; a loopback user (guest) with the right password from elsewhere is refused with its own reason, as RabbitMQ
   * does. `remoteAddress` is the peer's IP address (socket.remoteAddress).
   */
  authenticate(name: string, password: string, remoteAddress: string): AuthenticationResult {
    const user = this.metadata.get(userKey(name)) as StoredUser | undefined;
    const matches = verifyPassword(password, user?.passwordHash ?? UNKNOWN_USER_HASH, user?.hashingAlgorithm ?? DEFAULT_HASHING_ALGORITHM);
    if (user === undefined || !matches) return { ok: false, reason: `invalid credentials for user ${name}` };
    if (this.loopbackUsers.has(name) && !isLoopbackAddress(remoteAddress)) return { ok: false, reason: `user ${name} may connect only from localhost` };
    return { ok: true, user: name };
  }

  // ---- virtual hosts ------------------------------------------------------------------------------------------------

  /** INVALID_ARGUMENT, VHOST_EXISTS. */
  async addVhost(name: string): Promise<void> {
    checkName('virtual host', name);
    if (this.hasVhost(name)) throw brokerError(ErrorCode.VhostExists, `virtual host "${name}" already exists`);
    await this.metadata.put(vhostKey(name), { name });
  }

  /**
   * Deletes the vhost and every permission on it, then tells the onVhostDeleted listeners and waits for them. The vhost
   * is gone even when a listener fails; the call then rejects with the first failure. UNKNOWN_VHOST.
   */
  async deleteVhost(name: string): Promise<void> {
    this.requireVhost(name);
    const ops: MetadataOp[] = [{ key: vhostKey(name), delete: true }];
    for (const permission of this.permissionsOf({ vhost: name })) ops.push({ key: permissionKey(permission.user, permission.vhost), delete: true });
    await this.metadata.apply(ops);
    const outcomes = await Promise.allSettled([...this.vhostDeletedListeners].map(async (listener) => listener(name)));
    const failure = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failure !== undefined) throw failure.reason;
  }

  /** Returns the function that removes the listener. */
  onVhostDeleted(listener: VhostDeletedListener): () => void {
    this.vhostDeletedListeners.add(listener);
    return () => this.vhostDeletedListeners.delete(listener);
  }

  listVhosts(): string[] {
    return this.metadata
      .entries(VHOST_PREFIX)
      .map(([, value]) => (value as { name: string }).name)
      .sort();
  }

  hasVhost(name: string): boolean {
    return this.metadata.has(vhostKey(name));
  }

  // ---- permissions --------------------------------------------------------------------------------------------------

  /** Sets (replaces) the user's three patterns on the vhost. INVALID_ARGUMENT naming the bad pattern, UNKNOWN_USER, UNKNOWN_VHOST. */
  async setPermissions(user: string, vhost: string, configure: string, write: string, read: string): Promise<void> {
    const permission: Permission = { user, vhost, configure, write, read };
    for (const kind of PERMISSION_KINDS) {
      const pattern: unknown = permission[kind];
      if (typeof pattern !== 'string') throw invalidArgument(`the ${kind} permission must be a string (a regular expression)`);
      const problem = compileProblem(pattern);
      if (problem !== null) throw invalidArgument(`the ${kind} permission ${JSON.stringify(pattern)} is not a valid regular expression: ${problem}`);
    }
    this.requireUser(user);
    this.requireVhost(vhost);
    await this.metadata.put(permissionKey(user, vhost), permission);
  }

  /** Removes the user's permissions on the vhost (nothing to do when there are none). UNKNOWN_USER, UNKNOWN_VHOST. */
  async clearPermissions(user: string, vhost: string): Promise<void> {
    this.requireUser(user);
    this.requireVhost(vhost);
    const key = permissionKey(user, vhost);
    if (this.metadata.has(key)) await this.metadata.delete(key);
  }

  /** By vhost, then user. A filter naming a user or vhost that does not exist is UNKNOWN_USER / UNKNOWN_VHOST. */
  listPermissions(filter: { user?: string; vhost?: string } = {}): Permission[] {
    if (filter.user !== undefined) this.requireUser(filter.user);
    if (filter.vhost !== undefined) this.requireVhost(filter.vhost);
    return this.permissionsOf(filter).map((permission) => ({ ...permission }));
  }

  /** Whether the user may open the vhost: it holds permissions there, even if all three are ''. */
  canAccessVhost(user: string, vhost: string): boolean {
    return this.hasVhost(vhost) && this.metadata.has(permissionKey(user, vhost));
  }

  /** Whether the user may do `kind` on the resource (a queue or exchange name) in the vhost. */
  check(user: string, vhost: string, kind: PermissionKind, resource: string): boolean {
    const permission = this.metadata.get(permissionKey(user, vhost)) as Permission | undefined;
    return permission !== undefined && this.patterns.matches(permission[kind], resource);
  }

  // ---- definitions --------------------------------------------------------------------------------------------------

  /** Everything, password hashes included, for a definitions export. */
  entities(): AccessEntities {
    return {
      vhosts: this.listVhosts(),
      users: this.users().map((user) => ({ ...user, tags: [...user.tags] })),
      permissions: this.permissionsOf({}).map((permission) => ({ ...permission })),
    };
  }

  /**
   * Creates or replaces vhosts, users and permissions in one atomic write, deleting nothing (a definitions import).
   * The records must be valid (access-definitions.ts checks them); a permission must name a user and a vhost that
   * exist or are among those given, else nothing is written: UNKNOWN_USER, UNKNOWN_VHOST.
   */
  async importEntities(entities: AccessEntities): Promise<void> {
    const vhosts = new Set(entities.vhosts);
    const users = new Set(entities.users.map((user) => user.name));
    for (const permission of entities.permissions) {
      if (!users.has(permission.user)) this.requireUser(permission.user);
      if (!vhosts.has(permission.vhost)) this.requireVhost(permission.vhost);
    }
    await this.metadata.apply([
      ...entities.vhosts.map((name) => ({ key: vhostKey(name), value: { name } })),
      ...entities.users.map((user) => ({ key: userKey(user.name), value: user })),
      ...entities.permissions.map((permission) => ({ key: permissionKey(permission.user, permission.vhost), value: permission })),
    ]);
  }

  // ---- helpers ------------------------------------------------------------------------------------------------------

  private users(): StoredUser[] {
    return this.metadata
      .entries(USER_PREFIX)
      .map(([, value]) => value as StoredUser)
      .sort(byName);
  }

  private permissionsOf(filter: { user?: string; vhost?: string }): Permission[] {
    const prefix = filter.vhost === undefined ? PERMISSION_PREFIX : `${PERMISSION_PREFIX}${keyPart(filter.vhost)}/`;
    return this.metadata
      .entries(prefix)
      .map(([, value]) => value as Permission)
      .filter((permission) => filter.user === undefined || permission.user === filter.user)
      .sort(byVhostThenUser);
  }

  private requireUser(name: string): StoredUser {
    const user = this.metadata.get(userKey(name)) as StoredUser | undefined;
    if (user === undefined) throw brokerError(ErrorCode.UnknownUser, `user "${name}" does not exist`);
    return user;
  }

  private requireVhost(name: string): void {
    if (!this.hasVhost(name)) throw brokerError(ErrorCode.UnknownVhost, `virtual host "${name}" does not exist`);
  }
}
