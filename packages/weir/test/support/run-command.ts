import { execFile } from 'node:child_process';

export interface CommandResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs a program a test drives (a second client, a script): a non-zero exit is returned, not thrown; one that does not
 * finish within `timeoutMs` is killed and rejects, with what it printed, so a hang fails the test instead of stalling it.
 */
export function runCommand(command: string, args: string[], options: { timeoutMs: number; input?: Buffer | string }): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { encoding: 'buffer', timeout: options.timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const failure = error as (Error & { code?: number | string; killed?: boolean; signal?: string }) | null;
      if (failure !== null && (failure.killed === true || typeof failure.code !== 'number')) {
        reject(new Error(`${command} ${args.join(' ')} did not finish (${failure.signal ?? failure.code ?? failure.message}):\n${stdout.toString()}${stderr.toString()}`));
        return;
      }
      resolve({ code: failure === null ? 0 : (failure.code as number), stdout, stderr: stderr.toString() });
    });
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}
