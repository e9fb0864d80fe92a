import v8 from 'node:v8';
import type { Command } from 'commander';
import { type BrokerConfig, ConfigError, kebab, resolveConfig, settings } from '../server/config.js';
import { WeirServer } from '../server/weir-server.js';

export function registerServe(program: Command): void {
  const serve = program
    .command('serve')
    .description('run a broker (settings: flags > WEIR_* environment > --config file > defaults)')
    .option('-c, --config <file>', 'JSON config file (default $WEIR_CONFIG)')
    .option('--in-memory', 'keep everything in memory (nothing survives a restart)');
  for (const spec of settings) serve.option(`--${kebab(spec.key)} <value>`, `${spec.doc} [${spec.env}]`);
  serve.action(async (options: Record<string, unknown>) => {
    const flags: Partial<Record<keyof BrokerConfig, unknown>> = {};
    for (const spec of settings) if (options[spec.key] !== undefined) flags[spec.key] = options[spec.key];
    let config: BrokerConfig;
    try {
      config = resolveConfig(flags, process.env, options.config as string | undefined);
    } catch (error) {
      if (error instanceof ConfigError) {
        process.stderr.write(`weir serve: ${error.message}\n`);
        process.exitCode = 2;
        return;
      }
      throw error;
    }
    // Process-wide, so only here and not in WeirServer.start: an application embedding the broker keeps its own policy.
    if (config.heapGrowthPercent > 0) v8.setFlagsFromString(`--heap-growing-percent=${config.heapGrowthPercent}`);
    const server = await WeirServer.start({ ...config, inMemory: options.inMemory === true });
    // The one line a person (or a script waiting for the port) reads: where it listens and where the data is.
    process.stdout.write(`weir ${server.version} listening on ${config.host === '::' ? 'localhost' : config.host}:${server.port}, AMQP on port ${server.amqpPort}, data in ${options.inMemory ? '(memory)' : server.dataDir}\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        process.stdout.write(`weir: ${signal}, shutting down\n`);
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        server.close().then(resolve, (error) => {
          process.stderr.write(`weir: shutdown failed: ${(error as Error).message}\n`);
          process.exitCode = 1;
          resolve();
        });
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
  });
}
