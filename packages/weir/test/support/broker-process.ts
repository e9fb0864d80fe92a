import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * A broker in its own process (`weir serve`), for tests that kill it. Uses the compiled CLI when it exists (`npm test`
 * builds first; it starts faster), else the sources through tsx.
 */
export interface BrokerProcess {
  readonly port: number;
  /** The AMQP 0-9-1 port (`weir serve` prints "AMQP on port N"). */
  readonly amqpPort: number;
  readonly child: ChildProcess;
  /** Every line the broker printed so far (stdout and stderr), recovery's log lines before "listening" included. */
  readonly output: string[];
  /** SIGKILL: no shutdown of any kind. */
  kill(): Promise<void>;
  /** SIGTERM: the clean shutdown path. */
  stop(): Promise<void>;
}

const compiled = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const sources = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

/** Node arguments that run the `weir` command: the compiled CLI when it exists, else the sources through tsx. */
export function weirEntry(): string[] {
  return existsSync(compiled) ? [compiled] : ['--conditions=development', '--import', 'tsx', sources];
}

/** `env` is added to this process's environment for the broker (e.g. LD_PRELOAD of a fault library). */
export async function startBrokerProcess(dataDir: string, extraArgs: string[] = [], env: Record<string, string> = {}): Promise<BrokerProcess> {
  const entry = weirEntry();
  const child = spawn(process.execPath, [...entry, 'serve', '--data-dir', dataDir, '--port', '0', '--amqp-port', '0', '--log-level', 'warn', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let stderr = '';
  const output: string[] = [];
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  createInterface({ input: child.stderr! }).on('line', (line) => output.push(line));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const { port, amqpPort } = await new Promise<{ port: number; amqpPort: number }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      output.push(line);
      const match = /listening on \S+:(\d+)/.exec(line);
      if (match) resolve({ port: Number(match[1]), amqpPort: Number(/AMQP on port (\d+)/.exec(line)?.[1] ?? 0) });
    });
    child.once('exit', (code) => reject(new Error(`weir serve exited with ${code} before listening: ${stderr}`)));
  });
  return {
    port,
    amqpPort,
    child,
    output,
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}
