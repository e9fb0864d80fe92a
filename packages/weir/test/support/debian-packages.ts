import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/**
 * Debian packages a test needs (a second client, a tool): installed on demand with apt-get when their binary is
 * missing. Tests that need them fail, with what to install, when that is impossible — they never skip silently.
 */

/** Whether `binary` is an executable file in a directory of PATH. */
export function onPath(binary: string): boolean {
  for (const directory of (process.env.PATH ?? '').split(delimiter)) {
    if (directory === '') continue;
    try {
      accessSync(join(directory, binary), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** apt-get update runs once per process, before the first install. */
let updated: Promise<void> | null = null;
/** Installs run one at a time (dpkg takes a lock). */
let installing: Promise<unknown> = Promise.resolve();

/**
 * Makes sure `probeBinary` is on PATH, installing `packages` when it is not (`apt-get update` once, then
 * `apt-get install -y --no-install-recommends`). Rejects with a message naming the packages to install when it
 * cannot: no apt-get, not root, or apt-get failed.
 */
export function ensureDebianPackages(packages: string[], probeBinary: string): Promise<void> {
  return ensureInstalled(packages, probeBinary, () => onPath(probeBinary));
}

/** As ensureDebianPackages, for what a binary on PATH does not show (a Python module): `present` says. */
export async function ensureInstalled(packages: string[], what: string, present: () => boolean): Promise<void> {
  if (present()) return;
  const missing = `${what} is not installed; it comes with the Debian package${packages.length === 1 ? '' : 's'} ${packages.join(', ')}`;
  const hint = `install with: apt-get update && apt-get install -y --no-install-recommends ${packages.join(' ')}`;
  if (process.platform !== 'linux' || !onPath('apt-get')) throw new Error(`${missing}, and apt-get is not available to install ${packages.length === 1 ? 'it' : 'them'} here; ${hint}`);
  if (process.getuid?.() !== 0) throw new Error(`${missing}; installing needs root (this runs as uid ${process.getuid?.()}); ${hint}`);
  const install = installing.then(async () => {
    if (present()) return;
    updated ??= run(['update'], hint);
    await updated;
    await run(['-o', 'DPkg::Lock::Timeout=120', 'install', '-y', '--no-install-recommends', ...packages], hint);
  });
  installing = install.catch(() => {});
  await install;
  if (!present()) throw new Error(`apt-get installed ${packages.join(', ')}, but ${what} is still not available (PATH ${process.env.PATH ?? ''})`);
}

function run(args: string[], hint: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('apt-get', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('error', (error) => reject(new Error(`could not run apt-get ${args.join(' ')}: ${error.message}; ${hint}`)));
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`apt-get ${args.join(' ')} failed (${signal ?? `exit ${code}`}); ${hint}\n${output.trim().split('\n').slice(-15).join('\n')}`));
    });
  });
}
