#!/usr/bin/env node
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; a usage error was already printed by commander, with what to fix.
      process.exitCode = error.exitCode === 0 ? 0 : 2;
      return;
    }
    process.stderr.write(`weir: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}

void main();
