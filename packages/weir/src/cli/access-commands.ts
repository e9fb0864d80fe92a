import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { isWeirClientError } from 'weir-client';
import { clientCommand, type CommonOptions, withClient } from './client-commands.js';
import { printJson, printTable } from './output.js';
import { serverOption } from './program.js';

/**
 * Users, virtual hosts and permissions (RabbitMQ's model) and definitions export / import:
 * `weir user|vhost|permission …` and `weir definitions export|import`.
 */
export function registerAccessCommands(program: Command): void {
  registerUserCommands(program);
  registerVhostCommands(program);
  registerPermissionCommands(program);
  registerDefinitionsCommands(program);
}

/** `a,b` → ['a', 'b']; spaces around names and empty names dropped. */
function parseTags(value: string): string[] {
  return value
    .split(',')
    .map((tag) => tag.trim())
    .filter((tag) => tag !== '');
}

/** What a change prints: `json` with --json, else `text`. */
function report(options: CommonOptions, json: unknown, text: string): void {
  if (options.json) printJson(json);
  else process.stdout.write(`${text}\n`);
}

function registerUserCommands(program: Command): void {
  const user = program.command('user').description('add, delete and list users; change passwords and tags');

  clientCommand(user, 'add', 'create a user')
    .argument('<name>', 'user name')
    .argument('<password>', 'password (the broker keeps only a salted hash)')
    .option('--tags <tags>', 'comma-separated tags, e.g. administrator,monitoring', parseTags, [])
    .action(async (name: string, password: string, options: CommonOptions & { tags: string[] }) => {
      await withClient(options, (client) => client.admin().addUser(name, password, options.tags));
      report(options, { added: name, tags: options.tags }, `added user ${name}${options.tags.length > 0 ? ` with tags ${options.tags.join(', ')}` : ''}`);
    });

  clientCommand(user, 'delete', 'delete a user and its permissions')
    .argument('<name>', 'user name')
    .action(async (name: string, options: CommonOptions) => {
      await withClient(options, (client) => client.admin().deleteUser(name));
      report(options, { deleted: name }, `deleted user ${name}`);
    });

  clientCommand(user, 'passwd', "change a user's password")
    .argument('<name>', 'user name')
    .argument('<password>', 'the new password')
    .action(async (name: string, password: string, options: CommonOptions) => {
      await withClient(options, (client) => client.admin().changePassword(name, password));
      report(options, { changed: name }, `changed the password of user ${name}`);
    });

  clientCommand(user, 'tags', "replace a user's tags (none given: no tags)")
    .argument('<name>', 'user name')
    .argument('[tags]', 'comma-separated tags, e.g. administrator,monitoring')
    .action(async (name: string, tags: string | undefined, options: CommonOptions) => {
      const list = parseTags(tags ?? '');
      await withClient(options, (client) => client.admin().setUserTags(name, list));
      report(options, { user: name, tags: list }, `user ${name} now has ${list.length > 0 ? `tags ${list.join(', ')}` : 'no tags'}`);
    });

  clientCommand(user, 'list', 'list users and their tags').action(async (options: CommonOptions) => {
    const users = await withClient(options, (client) => client.admin().listUsers());
    if (options.json) return printJson(users);
    printTable(['user', 'tags'], users.map((entry) => [entry.name, entry.tags.join(', ')]));
  });
}

function registerVhostCommands(program: Command): void {
  const vhost = program.command('vhost').description('add, delete and list virtual hosts');

  clientCommand(vhost, 'add', 'create a virtual host')
    .argument('<name>', 'virtual host name')
    .action(async (name: string, options: CommonOptions) => {
      await withClient(options, (client) => client.admin().addVhost(name));
      report(options, { added: name }, `added virtual host ${name}`);
    });

  clientCommand(vhost, 'delete', 'delete a virtual host, everything in it and every permission on it')
    .argument('<name>', 'virtual host name')
    .action(async (name: string, options: CommonOptions) => {
      await withClient(options, (client) => client.admin().deleteVhost(name));
      report(options, { deleted: name }, `deleted virtual host ${name}`);
    });

  clientCommand(vhost, 'list', 'list virtual hosts').action(async (options: CommonOptions) => {
    const vhosts = await withClient(options, (client) => client.admin().listVhosts());
    if (options.json) return printJson(vhosts);
    printTable(['vhost'], vhosts.map((name) => [name]));
  });
}

function registerPermissionCommands(program: Command): void {
  const permission = program
    .command('permission')
    .description("set, clear and list users' permissions: regular expressions over queue and exchange names, matched anywhere in the name unless anchored (^…$); '' grants nothing");

  clientCommand(permission, 'set', "set (replace) a user's permissions on a virtual host")
    .argument('<user>', 'user name')
    .argument('<vhost>', 'virtual host')
    .argument('<configure>', 'resources the user may create, delete or change, e.g. ".*" or "^orders\\."')
    .argument('<write>', 'resources the user may publish to')
    .argument('<read>', 'resources the user may consume from')
    .action(async (user: string, vhost: string, configure: string, write: string, read: string, options: CommonOptions) => {
      await withClient(options, (client) => client.admin().setPermissions(user, vhost, { configure, write, read }));
      report(options, { user, vhost, configure, write, read }, `set permissions of user ${user} on virtual host ${vhost}: configure ${shown(configure)}, write ${shown(write)}, read ${shown(read)}`);
    });

  clientCommand(permission, 'clear', "remove a user's permissions on a virtual host")
    .argument('<user>', 'user name')
    .argument('<vhost>', 'virtual host')
    .action(async (user: string, vhost: string, options: CommonOptions) => {
      await withClient(options, (client) => client.admin().clearPermissions(user, vhost));
      report(options, { user, vhost, cleared: true }, `cleared permissions of user ${user} on virtual host ${vhost}`);
    });

  clientCommand(permission, 'list', 'list permissions')
    .option('--vhost <vhost>', 'only on this virtual host')
    .option('--user <user>', "only this user's")
    .action(async (options: CommonOptions & { vhost?: string; user?: string }) => {
      const permissions = await withClient(options, (client) =>
        client.admin().listPermissions({ ...(options.vhost === undefined ? {} : { vhost: options.vhost }), ...(options.user === undefined ? {} : { user: options.user }) }),
      );
      if (options.json) return printJson(permissions);
      printTable(
        ['vhost', 'user', 'configure', 'write', 'read'],
        permissions.map((entry) => [entry.vhost, entry.user, shown(entry.configure), shown(entry.write), shown(entry.read)]),
      );
    });
}

/** '' would print as nothing at all; show it as typed. */
function shown(pattern: string): string {
  return pattern === '' ? "''" : pattern;
}

function registerDefinitionsCommands(program: Command): void {
  const definitions = program.command('definitions').description("export and import users, virtual hosts and permissions (and what protocol layers add) in RabbitMQ's definitions format");

  definitions
    .command('export')
    .description('print the definitions as JSON, or write them to a file')
    .addOption(serverOption())
    .option('-f, --file <file>', 'write to this file instead of standard output')
    .action(async (options: CommonOptions & { file?: string }) => {
      const document = await withClient(options, (client) => client.admin().exportDefinitions());
      const text = `${JSON.stringify(document, null, 2)}\n`;
      if (options.file === undefined) {
        process.stdout.write(text);
        return;
      }
      // It holds password hashes: readable by its owner only.
      await writeFile(options.file, text, { mode: 0o600 });
      process.stderr.write(`exported ${counts(document)} to ${options.file}\n`);
    });

  clientCommand(definitions, 'import', 'create or update what a definitions file describes (ours, or a RabbitMQ export); deletes nothing')
    .argument('<file>', 'the JSON file (- for standard input)')
    .action(async (file: string, options: CommonOptions) => {
      const text = await readDefinitions(file);
      const imported = await withClient(options, (client) => client.admin().importDefinitions(text)).catch((error: unknown) => {
        if (isWeirClientError(error, 'INVALID_ARGUMENT')) throw new Error(`${file}: ${error.message}; nothing was imported`);
        throw error;
      });
      if (options.json) return printJson(imported);
      const applied = Object.entries(imported.applied).map(([key, count]) => `${count} ${key}`);
      process.stdout.write(`imported ${applied.length > 0 ? applied.join(', ') : 'nothing'} from ${file}\n`);
      if (imported.skipped.length > 0) process.stdout.write(`skipped (not supported by Weir): ${imported.skipped.join(', ')}\n`);
    });
}

/** The file's text, checked to be JSON here so a mistake names the file. */
async function readDefinitions(file: string): Promise<string> {
  let text: string;
  try {
    text = file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`);
  }
  try {
    JSON.parse(text);
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  return text;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** "2 users, 3 vhosts, 2 permissions" for the arrays of a definitions document. */
function counts(document: Record<string, unknown>): string {
  return Object.entries(document)
    .filter((entry): entry is [string, unknown[]] => Array.isArray(entry[1]))
    .map(([key, entries]) => `${entries.length} ${key}`)
    .join(', ');
}
