/**
 * `weir perf` scenarios against a fresh `weir serve` child process, swept over one parameter each, for the charts:
 *   npm run bench -- sweep            full run (a few minutes)
 *   npm run bench -- sweep --quick    smoke run (under a minute)
 *
 * 1. produce at each message size (durable acks, 1 producer, 8 partitions): throughput in msg/s and MB/s.
 * 2. e2e at each fixed rate (1 producer, 1 consumer, 100 B): latency percentiles from intended send times.
 * 3. backlog of N × 100 B: written with no reader, then drained; the broker's RSS sampled over both.
 * Each group runs on a broker of its own (fresh data directory), sampled through its pid. Every run's report is the
 * `weir perf --json` report, kept under bench-results/<date>/sweep/; the charts go next to it as SVG.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PerfSettings, RawPerfOptions } from '../packages/weir/src/perf/options.js';
import { resolvePerfOptions } from '../packages/weir/src/perf/options.js';
import { formatReport, type PerfReport } from '../packages/weir/src/perf/report.js';
import { runPerf } from '../packages/weir/src/perf/run.js';
import { BrokerProcess, buildBroker, type Code, startBrokerSuite } from './broker-process.js';
import { backlogRssChart, latencyChart, sizeLabel, throughputChart } from './charts.js';
import { Flags, formatMs, formatNumber, markdownTable, publishReport, repoRoot, type Suite, today, UsageError, withTempDir, writeSummary } from './report.js';

const USAGE = `usage: npm run bench -- sweep [flags]

  --quick            smoke run: 3 sizes and 2 rates for 1 s each, a 50,000-message backlog
  --sizes <list>     message sizes of the produce sweep (default 16,100,1k,4k,16k,64k)
  --rates <list>     rates of the e2e latency sweep in msg/s (default 1000,5000,10000,20000)
  --duration <time>  measured time per run (default 5s; quick 1s)
  --backlog <n>      messages of the backlog run (default 1,000,000; quick 50,000)
  --code dist|src    broker compiled (default; built first) or from its sources through tsx
  --help             this text`;

function progress(text: string): void {
  process.stderr.write(`[sweep] ${text}\n`);
}

async function withBroker<T>(code: Code, label: string, work: (broker: BrokerProcess) => Promise<T>): Promise<T> {
  return withTempDir('sweep', async (dataDir) => {
    const broker = await BrokerProcess.start({ code, dataDir, label, profileDir: null, sampleIntervalMs: 1000, log: progress });
    try {
      return await work(broker);
    } finally {
      await broker.stop();
    }
  });
}

async function perf(broker: BrokerProcess, scenario: string, raw: RawPerfOptions): Promise<PerfReport> {
  const settings: PerfSettings = { ...resolvePerfOptions(scenario, { ...raw, broker: broker.address }), brokerPid: broker.pid };
  const report = await runPerf(settings);
  progress(formatReport(report).split('\n\n')[0]!);
  if (report.error !== null) throw new Error(`${scenario}: ${report.error}`);
  return report;
}

async function run(args: readonly string[]): Promise<void> {
  const flags = Flags.parse(args, { switches: ['quick'], values: ['sizes', 'rates', 'duration', 'backlog', 'code'], usage: USAGE });
  if (flags === null) {
    console.log(USAGE);
    return;
  }
  const quick = flags.has('quick');
  const code = flags.get('code') ?? 'dist';
  if (code !== 'dist' && code !== 'src') throw new UsageError(`--code must be dist or src, not "${code}"`);
  const sizes = (flags.get('sizes') ?? (quick ? '100,1k,16k' : '16,100,1k,4k,16k,64k')).split(',').map((part) => part.trim());
  const rates = (flags.get('rates') ?? (quick ? '1000,5000' : '1000,5000,10000,20000')).split(',').map((part) => part.trim());
  const duration = flags.get('duration') ?? (quick ? '1s' : '5s');
  const warmup = quick ? '0.5s' : '1s';
  const backlog = String(flags.number('backlog', quick ? 50_000 : 1_000_000, true));
  const { machine, commit, startedAt } = await startBrokerSuite('sweep', progress);
  if (code === 'dist') progress(`built in ${formatNumber(buildBroker(), 1)} s`);

  const produce = await withBroker(code, 'sweep produce', async (broker) => {
    const reports: PerfReport[] = [];
    for (const size of sizes) reports.push(await perf(broker, 'produce', { size, duration, warmup }));
    return reports;
  });
  const latency = await withBroker(code, 'sweep e2e', async (broker) => {
    const reports: PerfReport[] = [];
    for (const rate of rates) reports.push(await perf(broker, 'e2e', { rate, duration, warmup }));
    return reports;
  });
  const backlogReport = await withBroker(code, 'sweep backlog', (broker) => perf(broker, 'backlog', { count: backlog }));

  const directory = join(repoRoot, 'bench-results', today());
  await mkdir(join(directory, 'sweep'), { recursive: true });
  const named: Array<[string, PerfReport]> = [
    ...produce.map((report): [string, PerfReport] => [`produce-${report.parameters.messageBytes}b`, report]),
    ...latency.map((report): [string, PerfReport] => [`e2e-${report.parameters.rate}`, report]),
    ['backlog', backlogReport],
  ];
  for (const [name, report] of named) await writeFile(join(directory, 'sweep', `${name}.json`), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(join(directory, 'throughput-by-size.svg'), throughputChart(produce));
  await writeFile(join(directory, 'latency-by-rate.svg'), latencyChart(latency));
  await writeFile(join(directory, 'backlog-rss.svg'), backlogRssChart(backlogReport));

  const sizeTable = markdownTable(
    [{ title: 'size' }, { title: 'msg/s', align: 'right' }, { title: 'MB/s', align: 'right' }, { title: 'broker CPU', align: 'right' }],
    produce.map((report) => [sizeLabel(report.parameters.messageBytes), formatNumber(report.throughput.messagesPerSecond), formatNumber(report.throughput.megabytesPerSecond, 1), report.resources.broker === null ? '' : `${formatNumber(report.resources.broker.cpu * 100, 0)}%`]),
  );
  const rateTable = markdownTable(
    [{ title: 'rate' }, { title: 'p50', align: 'right' }, { title: 'p90', align: 'right' }, { title: 'p99', align: 'right' }, { title: 'p99.9', align: 'right' }, { title: 'max', align: 'right' }],
    latency.map((report) => [formatNumber(report.parameters.rate!), formatMs(report.latency!.p50Ms), formatMs(report.latency!.p90Ms), formatMs(report.latency!.p99Ms), formatMs(report.latency!.p999Ms), formatMs(report.latency!.maxMs)]),
  );
  const phases = backlogReport.phases.map((phase) => `${phase.name} ${formatNumber(phase.messagesPerSecond)} msg/s`).join(', ');
  const rss = backlogReport.resources.broker;
  await writeSummary(
    'sweep',
    [
      `# weir perf sweep (${today(startedAt)})`,
      '',
      '## Throughput by message size',
      '',
      sizeTable,
      '',
      '![throughput by size](throughput-by-size.svg)',
      '',
      '## End-to-end latency by rate',
      '',
      rateTable,
      '',
      '![latency by rate](latency-by-rate.svg)',
      '',
      `## Backlog of ${formatNumber(Number(backlog))} messages`,
      '',
      `${phases}; broker RSS peak ${rss === null ? 'unknown' : `${formatNumber(rss.rssPeakBytes / 2 ** 20)} MiB`}.`,
      '',
      '![backlog RSS](backlog-rss.svg)',
    ].join('\n'),
  );
  const summary = { suite: 'sweep', startedAt: startedAt.toISOString(), quick, machine, commit, produce: produce.map((report) => report.throughput), latency: latency.map((report) => ({ rate: report.parameters.rate, ...report.latency })), backlog: backlogReport.phases };
  await publishReport('sweep', summary, machine, commit);
}

export const sweepSuite: Suite = { run };
