/**
 * What a result was measured on: figures without their hardware, kernel, filesystem and commit are not comparable,
 * so every report carries them.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  platform: string;
  arch: string;
  kernel: string;
  node: string;
  /** The broker's data directory (or where a suite put its data) when known, and the filesystem type there. */
  dataDir: string | null;
  filesystem: string | null;
}

export interface CommitInfo {
  sha: string | null;
  /** True when the work tree had uncommitted changes: the figures may not belong to `sha` alone. */
  dirty: boolean | null;
}

function run(command: string, args: string[], cwd?: string): string | null {
  try {
    return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** The filesystem type holding `dir`: `df -T` names ext4 precisely (`stat -f` says "ext2/ext3"), `stat -f` is the fallback. */
export function filesystemType(dir: string): string {
  const df = run('df', ['-T', '-P', dir]);
  if (df !== null) {
    const fields = df.split('\n')[1]?.trim().split(/\s+/);
    if (fields !== undefined && fields.length >= 2 && fields[1]) return fields[1];
  }
  return run('stat', ['-f', '-c', '%T', dir]) ?? 'unknown';
}

export function machineInfo(dataDir: string | null = null): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    memoryBytes: os.totalmem(),
    platform: os.platform(),
    arch: os.arch(),
    kernel: os.release(),
    node: process.version,
    dataDir,
    filesystem: dataDir === null || !existsSync(dataDir) ? null : filesystemType(dataDir),
  };
}

/**
 * The commit of the git checkout rooted at `checkoutRoot`, or null when there is none there. Only that directory
 * counts: an installed copy inside someone else's repository must not report that repository's commit.
 */
export function commitInfo(checkoutRoot: string): CommitInfo | null {
  if (!existsSync(join(checkoutRoot, '.git'))) return null;
  const sha = run('git', ['rev-parse', 'HEAD'], checkoutRoot);
  if (sha === null) return null;
  const status = run('git', ['status', '--porcelain', '--untracked-files=no'], checkoutRoot);
  return { sha, dirty: status === null ? null : status.length > 0 };
}

export function describeMachine(machine: MachineInfo, commit: CommitInfo | null): string {
  const memory = `${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB`;
  const sha = commit?.sha == null ? 'unknown' : `${commit.sha.slice(0, 12)}${commit.dirty ? ' (+ uncommitted changes)' : ''}`;
  return [
    `machine: ${machine.cores} cores (${machine.cpuModel}), ${memory} RAM, ${machine.platform}/${machine.arch} kernel ${machine.kernel}, Node ${machine.node}`,
    `data:    ${machine.dataDir ?? 'unknown'}${machine.filesystem === null ? '' : ` (${machine.filesystem})`}`,
    `commit:  ${sha}`,
  ].join('\n');
}
