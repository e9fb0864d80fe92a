/**
 * Benchmark dispatcher.
 *   npm run bench                          every registered suite, in order, then an index of the dated results
 *                                          folder (bench-results/<date>/README.md: summaries, reports, charts)
 *   npm run bench -- --quick               every suite, short smoke runs
 *   npm run bench -- <suite> [flags]       one suite; its flags are its own (see `npm run bench -- <suite> --help`)
 * Suites are loaded only when they run, so one suite's imports cannot break another.
 */
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot, type Suite, today, UsageError } from './report.js';

interface SuiteEntry {
  description: string;
  load: () => Promise<Suite>;
}

const suites: Record<string, SuiteEntry> = {
  storage: {
    description: 'commit-log store: disk ceilings, durable append (1 and 10,000 queues), backlog read',
    load: async () => (await import('./storage.js')).storageSuite,
  },
  native: {
    description: 'broker over TCP (weir serve child process): durable produce, consume, end-to-end latency, broker CPU/RSS',
    load: async () => (await import('./native.js')).nativeSuite,
  },
  queue: {
    description: 'work queues over TCP (weir serve child process): shared group with per-message ack (1/4/16 consumers), delayed delivery lateness and memory',
    load: async () => (await import('./queue.js')).queueSuite,
  },
  sweep: {
    description: 'weir perf against weir serve: produce throughput by message size, e2e latency by rate, broker RSS over a backlog; SVG charts',
    load: async () => (await import('./sweep.js')).sweepSuite,
  },
  micro: {
    description: 'in-process micro-benchmarks of per-message costs: codecs, AMQP frames, topic routing, consume-queue lookups, CRC32C, record batches, shared dispatch',
    load: async () => (await import('./micro.js')).microSuite,
  },
  amqp: {
    description: 'AMQP 0-9-1 side by side: Weir (weir serve --amqp-port) and RabbitMQ (quorum and classic queues): confirmed publish, acked consume, latency at fixed rates, a 1M backlog',
    load: async () => (await import('./amqp.js')).amqpSuite,
  },
};

function listing(): string {
  const width = Math.max(...Object.keys(suites).map((name) => name.length));
  return Object.entries(suites)
    .map(([name, entry]) => `  ${name.padEnd(width)}  ${entry.description}`)
    .join('\n');
}

function usage(): string {
  return `usage: npm run bench [-- [<suite>] [flags]]\n\nsuites:\n${listing()}\n\nWith no suite, every suite runs (flags are passed to each).`;
}

/** bench-results/<date>/README.md: each suite's summary, the charts inline, and the JSON reports. */
async function writeIndex(): Promise<string> {
  const directory = join(repoRoot, 'bench-results', today());
  const files = (await readdir(directory)).sort();
  const summaries = files.filter((file) => file.endsWith('.md') && file !== 'README.md');
  const charts = files.filter((file) => file.endsWith('.svg'));
  const reports = files.filter((file) => file.endsWith('.json'));
  const lines = [
    `# Benchmark results, ${today()}`,
    '',
    '## Summaries',
    '',
    ...summaries.map((file) => `- [${file.replace(/\.md$/, '')}](${file})`),
    '',
    '## Charts',
    '',
    ...charts.map((file) => `![${file.replace(/\.svg$/, '')}](${file})`),
    '',
    '## Reports (JSON)',
    '',
    ...reports.map((file) => `- [${file}](${file})`),
    '',
  ];
  const path = join(directory, 'README.md');
  await writeFile(path, lines.join('\n'));
  return path;
}

async function main(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help') {
    console.log(usage());
    return 0;
  }
  if (first === undefined || first.startsWith('-')) {
    for (const [name, entry] of Object.entries(suites)) {
      console.log(`\n=== ${name} ===`);
      await (await entry.load()).run(argv);
    }
    console.log(`\nresults: ${await writeIndex()}`);
    return 0;
  }
  const entry = suites[first];
  if (entry === undefined) {
    console.error(`unknown benchmark suite "${first}"\n\nsuites:\n${listing()}`);
    return 2;
  }
  await (await entry.load()).run(rest);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    // A suite may already have set a failing exit code of its own: keep it.
    if (code !== 0) process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(error.message);
      process.exitCode = 2;
      return;
    }
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  },
);
