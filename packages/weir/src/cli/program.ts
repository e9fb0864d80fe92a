import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { registerAccessCommands } from './access-commands.js';
import { registerClientCommands } from './client-commands.js';
import { registerPerfCommand } from './perf-command.js';
import { registerServe } from './serve.js';

/**
 * `weir`: noun-verb commands. `serve` runs a broker; every other command is a client of one (`--server host:port`,
 * default `$WEIR_SERVER` or localhost:7654). Human tables by default, `--json` for scripts. A mistake in the command
 * line exits with status 2 and a message that says what to fix; a failed operation exits with status 1.
 */
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function buildProgram(): Command {
  const program = new Command('weir')
    .description('Weir message broker: streams and queues on one durable commit log')
    .version(VERSION, '-V, --version', 'print the version')
    .showSuggestionAfterError(true)
    .configureOutput({ outputError: (text, write) => write(text) })
    .exitOverride();
  registerServe(program);
  registerClientCommands(program);
  registerAccessCommands(program);
  registerPerfCommand(program);
  return program;
}

export function integer(name: string, minimum = 0): (value: string) => number {
  return (value: string) => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`${name} must be a whole number, got "${value}"`);
    const number = Number(value);
    if (!Number.isSafeInteger(number) || number < minimum) throw new InvalidArgumentError(`${name} must be at least ${minimum}, got ${value}`);
    return number;
  };
}

export const serverOption = (): Option =>
  new Option('-s, --server <host:port>', 'broker address').default(process.env.WEIR_SERVER ?? 'localhost:7654', '$WEIR_SERVER or localhost:7654');
