import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** strace attached to a running process and all its threads, writing to a file until `stop`. */
export interface StraceSession {
  readonly pid: number;
  /** Detaches (SIGINT) and waits for strace to finish writing. */
  stop(): Promise<void>;
}

/**
 * Attaches `strace -f -tt -yy -xx` to `pid` for `syscalls`, with strings of up to `maxString` bytes (`-s`). Resolves
 * once strace reports the process attached, so calls made after that are in the trace.
 */
export async function attachStrace(pid: number, output: string, syscalls: readonly string[], maxString = 1 << 20): Promise<StraceSession> {
  const child = spawn('strace', ['-f', '-tt', '-yy', '-xx', '-s', String(maxString), '-o', output, '-e', `trace=${syscalls.join(',')}`, '-p', String(pid)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stderr! });
    lines.on('line', (line) => {
      stderr += `${line}\n`;
      if (/Process \d+ attached/.test(line)) resolve();
    });
    child.once('error', (error) => reject(new Error(`could not run strace: ${error.message}`)));
    child.once('exit', (code) => reject(new Error(`strace exited with ${code} before attaching to ${pid}: ${stderr.trim()}`)));
  });
  return {
    pid: child.pid!,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      await exited;
    },
  };
}
