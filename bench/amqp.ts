/**
 * AMQP 0-9-1 benchmark: Weir's AMQP front end side by side with RabbitMQ, in one run, same client, same machine.
 *
 *   npm run bench -- amqp                                   full run (about 6½ minutes on 2 cores, all four brokers)
 *   npm run bench -- amqp --quick                           smoke run (about 25 s per broker)
 *   npm run bench -- amqp --brokers rabbitmq-quorum --only latency
 *   npm run bench -- amqp --help                            flags
 *
 * Brokers (each a child process on free loopback ports with its data in a fresh temporary directory, CPU and RSS
 * sampled from /proc every 250 ms; started once for workloads 1–3 and again for 4, and warmed up each time with
 * 50,000 untimed messages (quick: 10,000); every workload declares a durable queue of its own and deletes it):
 * - weir: `weir serve --amqp-port <port>` (compiled first with tsc -b, like the native suite), durable queues (a
 *   durable AMQP queue is a topic with flush policy `sync`: a confirm follows the fsync, as RabbitMQ's does).
 * - rabbitmq-quorum: Debian's rabbitmq-server (installed by scripts/install-rabbitmq.sh when missing), a node of its
 *   own (bench/rabbitmq.ts), queues with `x-queue-type: quorum` (Raft-replicated queues, what RabbitMQ recommends for
 *   data that must survive; on one node a single replica, still fsyncing its log before confirming).
 * - rabbitmq-classic: the same, a fresh node, `x-queue-type: classic` durable queues, for reference.
 * - floor: a null broker (bench/amqp-null-broker.ts) that keeps queues in memory, writes nothing and confirms a
 *   publish as soon as it is read. It is not a broker to compare with but the bound on every comparison: what the
 *   clients alone reach on this machine, through the same harness. "floor vs quorum" is the most any broker could
 *   reach against quorum here, so a target above it is set by the client, not by the broker under test.
 * A broker that fails to start, or a workload that fails on it, is reported as FAILED with its error; the run goes
 * on with the next workload and broker.
 *
 * Workloads, on each broker in turn (clients: amqplib, each in a worker thread of this process with a connection of
 * its own; see bench/amqp-client.ts):
 * 1. publish-<size>: N persistent messages (100 B and 1 KiB) to the default exchange on a confirm channel, at most
 *    1,000 unconfirmed (a fast client's window), one publisher. Measured: confirms per second. Checked: the queue
 *    then holds N.
 * 2. consume: N × 100 B messages are published (untimed), then one consumer with prefetch 1,000 acks every delivery
 *    on its own (basic.ack, not multiple). Measured: deliveries per second from basic.consume to the last. Checked:
 *    all arrived, none redelivered, the queue is empty once the channel closed (no ack was lost).
 * 3. latency-<rate>: a publisher sends persistent, confirmed messages at a fixed rate (1k and 5k msg/s); message i is
 *    scheduled at t0 + i / rate and carries that time; a consumer (prefetch 1,000, ack each) records receive time −
 *    scheduled time, so a publisher held up by the broker shows as latency (no coordinated omission). After a
 *    warm-up, p50/p99/p99.9 over the measured window. Checked: the rate was sustained (every scheduled message
 *    arrived, the publisher never fell 100 ms behind, the consumer caught up within a second).
 * 4. backlog, on a freshly started broker (so no memory is left over from 1–3): M × 100 B (default 1,000,000)
 *    published as in 1, then drained as in 2; the rates of both and the broker's peak RSS over both (RabbitMQ: summed
 *    over beam.smp's process tree), plus its RSS holding the backlog and the data directory's size on disk.
 *
 * The table shows one row per workload figure, a column per broker, and Weir against RabbitMQ-quorum as a factor
 * where more is better for Weir (throughput: Weir ÷ quorum; latency and memory: quorum ÷ Weir). Broker and clients
 * share the machine's 2 cores, so a second table gives each window's CPU: broker, clients, and everything else on the
 * machine (from /proc/stat); a figure measured while other processes took ≥ 10% of a core is marked `~`. The JSON
 * report and a Markdown summary go to bench-results/<date>/amqp.{json,md}. MB means 10^6 bytes of message bodies.
 */
import { BROKER_NAMES, type Broker, type BrokerName, type BrokerStopInfo, startBroker } from './amqp-brokers.js';
import { failedMeasurement, type Measurement, rateId, sizeId, warmUp, workloads, type WorkloadParameters } from './amqp-workloads.js';
import { type Code, startBrokerSuite, OTHER_CPU_WARNING } from './broker-process.js';
import {
  type Column,
  describeMachine,
  errorText,
  Flags,
  formatNumber,
  formatPercent,
  formatTable,
  KiB,
  markdownTable,
  type Suite,
  UsageError,
  writeReport,
  writeSummary,
} from './report.js';

// ---- parameters -----------------------------------------------------------------------------------------------------

interface Parameters extends WorkloadParameters {
  quick: boolean;
  brokers: BrokerName[];
  only: string[] | null;
  code: Code;
  sampleIntervalMs: number;
}

const USAGE = `usage: npm run bench -- amqp [flags]

  --quick              smoke run: 10,000 messages per publish/consume, 20,000-message backlog, 2 s latency windows
  --brokers <list>     comma-separated, from ${BROKER_NAMES.join(', ')} (default: all four, in that order)
  --only <ids>         comma-separated substrings of workload ids: publish-100b, publish-1kib, consume, latency-1k,
                       latency-5k, backlog (so --only publish runs both sizes)
  --count <n>          messages per publish and consume measurement (default 200,000; quick 10,000)
  --size <list>        body sizes in bytes of the publish workload, comma-separated (default 100,1024); the first is
                       also the consume and latency workloads' size
  --backlog <n>        messages of the backlog workload, 100 B each (default 1,000,000; quick 20,000)
  --rates <list>       latency workload rates in msg/s (default 1000,5000)
  --duration <s>       measured seconds per latency rate, after a warm-up (default 10; quick 2; warm-up 2, quick 1)
  --window <n>         unconfirmed publishes a throughput publisher keeps (default 1,000)
  --prefetch <n>       consumer prefetch (default 1,000)
  --code dist|src      run Weir compiled (default; built first with tsc -b) or from its sources through tsx
  --help               this text

RabbitMQ comes from Debian's rabbitmq-server package; scripts/install-rabbitmq.sh installs it on first use (apt-get,
needs root or sudo) without leaving its system service running.`;

const VALUE_FLAGS = ['brokers', 'only', 'count', 'size', 'backlog', 'rates', 'duration', 'window', 'prefetch', 'code'];

function list(name: string, text: string): number[] {
  return text.split(',').map((part) => Flags.positive(name, part.trim(), true));
}

function parseArgs(args: readonly string[]): Parameters | null {
  const flags = Flags.parse(args, { switches: ['quick'], values: VALUE_FLAGS, usage: USAGE });
  if (flags === null) return null;
  const quick = flags.has('quick');
  const brokers = (flags.get('brokers') ?? BROKER_NAMES.join(','))
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
  for (const name of brokers) if (!(BROKER_NAMES as readonly string[]).includes(name)) throw new UsageError(`unknown broker "${name}" in --brokers; brokers: ${BROKER_NAMES.join(', ')}`);
  const code = flags.get('code') ?? 'dist';
  if (code !== 'dist' && code !== 'src') throw new UsageError(`--code must be dist or src, not "${code}"`);
  const sizes = list('size', flags.get('size') ?? '100,1024');
  if (sizes.some((size) => size < 12)) throw new UsageError('--size is at least 12 bytes (the latency body carries a timestamp and a sequence number)');
  const prefetch = flags.number('prefetch', 1000, true);
  if (prefetch > 65_535) throw new UsageError('--prefetch is at most 65,535 (a 16-bit field in basic.qos)');
  const only = flags.get('only');
  return {
    quick,
    brokers: [...new Set(brokers)] as BrokerName[],
    only: only === undefined ? null : only.split(',').map((part) => part.trim()).filter((part) => part.length > 0),
    code,
    sampleIntervalMs: 250,
    count: flags.number('count', quick ? 10_000 : 200_000, true),
    sizes,
    backlog: flags.number('backlog', quick ? 20_000 : 1_000_000, true),
    rates: list('rates', flags.get('rates') ?? '1000,5000'),
    warmupSeconds: quick ? 1 : 2,
    durationSeconds: flags.number('duration', quick ? 2 : 10, false),
    window: flags.number('window', 1000, true),
    prefetch,
    stallSeconds: 30,
  };
}

function progress(text: string): void {
  process.stderr.write(`[amqp] ${text}\n`);
}

// ---- the comparison table -------------------------------------------------------------------------------------------

/** One line of the comparison: a figure of one workload, and which way is better. */
interface Row {
  workload: string;
  label: string;
  figure: string;
  better: 'higher' | 'lower';
  format: (value: number) => string;
}

function rowsFor(params: Parameters): Row[] {
  const size = (bytes: number) => (bytes % KiB === 0 ? `${bytes / KiB} KiB` : `${bytes} B`);
  const rate = (value: number) => formatNumber(value);
  const ms = (value: number) => formatNumber(value, value >= 100 ? 0 : value >= 10 ? 1 : 2);
  const rows: Row[] = params.sizes.map((bytes) => ({ workload: `publish-${sizeId(bytes)}`, label: `publish ${size(bytes)}, confirms, window ${formatNumber(params.window)} (msg/s)`, figure: 'perSecond', better: 'higher', format: rate }));
  rows.push({ workload: 'consume', label: `consume ${size(params.sizes[0]!)}, ack each, prefetch ${formatNumber(params.prefetch)} (msg/s)`, figure: 'perSecond', better: 'higher', format: rate });
  for (const value of params.rates) {
    for (const [figure, name] of [['p50Ms', 'p50'], ['p99Ms', 'p99'], ['p999Ms', 'p99.9']] as const) {
      rows.push({ workload: `latency-${rateId(value)}`, label: `latency at ${formatNumber(value)} msg/s, ${name} (ms)`, figure, better: 'lower', format: ms });
    }
  }
  const backlog = `backlog ${formatNumber(params.backlog)} × 100 B`;
  rows.push({ workload: 'backlog', label: `${backlog}: publish (msg/s)`, figure: 'publishPerSecond', better: 'higher', format: rate });
  rows.push({ workload: 'backlog', label: `${backlog}: drain (msg/s)`, figure: 'drainPerSecond', better: 'higher', format: rate });
  rows.push({ workload: 'backlog', label: `${backlog}: broker peak RSS (MiB)`, figure: 'peakRssBytes', better: 'lower', format: (bytes) => formatNumber(bytes / 2 ** 20, 0) });
  return rows;
}

/** How to read the comparison table (Markdown; the terminal shows it without backquotes). */
const LEGEND =
  'Weir vs quorum: above 1× means Weir does better (throughput: Weir ÷ quorum; latency and RSS: quorum ÷ Weir). floor: a null broker (memory only, no disk, confirms at once), so floor vs quorum is the most any broker could reach with these clients here. `*`: a check failed; `~`: disturbed by other processes (see below).';

/** Other processes took enough CPU during the measurement to disturb it (the machine is shared). */
function disturbed(measurement: Measurement): boolean {
  return (measurement.resources?.otherCpu ?? 0) >= OTHER_CPU_WARNING;
}

/** A cell: the figure, `*` when a check failed, `~` when disturbed (see the notes), FAILED, or '-' when not run. */
function cell(measurement: Measurement | undefined, row: Row): string {
  if (measurement === undefined) return '-';
  if (measurement.status === 'failed') return 'FAILED';
  const value = measurement.figures[row.figure];
  if (value === undefined || !Number.isFinite(value)) return '-';
  return `${row.format(value)}${measurement.problems.length > 0 ? ' *' : ''}${disturbed(measurement) ? ' ~' : ''}`;
}

/** `broker` against RabbitMQ-quorum, as a factor where above 1 means `broker` does better. */
function ratio(broker: Measurement | undefined, quorum: Measurement | undefined, row: Row): number | null {
  const a = broker?.status === 'ok' ? broker.figures[row.figure] : undefined;
  const b = quorum?.status === 'ok' ? quorum.figures[row.figure] : undefined;
  if (a === undefined || b === undefined || !(a > 0) || !(b > 0)) return null;
  return row.better === 'higher' ? a / b : b / a;
}

interface Comparison {
  columns: Column[];
  cells: string[][];
  rows: Array<{ workload: string; label: string; figure: string; better: string; values: Record<string, number | null>; weirVsQuorum: number | null; floorVsQuorum: number | null }>;
}

function compare(params: Parameters, measurements: readonly Measurement[]): Comparison {
  const find = (workload: string, broker: string) => measurements.find((entry) => entry.workload === workload && entry.broker === broker);
  const ran = new Set(measurements.map((entry) => entry.workload));
  const showRatio = params.brokers.includes('weir') && params.brokers.includes('rabbitmq-quorum');
  const columns: Column[] = [{ title: 'workload' }, ...params.brokers.map((name) => ({ title: name, align: 'right' as const }))];
  if (showRatio) columns.push({ title: 'Weir vs quorum', align: 'right' });
  // The floor's own factor is the cap on Weir's: no broker served through these clients can do better.
  const showFloor = params.brokers.includes('floor') && params.brokers.includes('rabbitmq-quorum');
  if (showFloor) columns.push({ title: 'floor vs quorum', align: 'right' });
  const factorText = (factor: number | null): string => (factor === null ? '-' : `${formatNumber(factor, 2)}×`);
  const result: Comparison = { columns, cells: [], rows: [] };
  for (const row of rowsFor(params).filter((entry) => ran.has(entry.workload))) {
    const factor = ratio(find(row.workload, 'weir'), find(row.workload, 'rabbitmq-quorum'), row);
    // The null broker keeps messages as objects and writes nothing: its memory bounds nothing.
    const floorFactor = row.figure === 'peakRssBytes' ? null : ratio(find(row.workload, 'floor'), find(row.workload, 'rabbitmq-quorum'), row);
    const cells = [row.label, ...params.brokers.map((name) => cell(find(row.workload, name), row))];
    if (showRatio) cells.push(factorText(factor));
    if (showFloor) cells.push(factorText(floorFactor));
    result.cells.push(cells);
    const values: Record<string, number | null> = {};
    for (const name of params.brokers) {
      const measurement = find(row.workload, name);
      values[name] = measurement?.status === 'ok' ? (measurement.figures[row.figure] ?? null) : null;
    }
    result.rows.push({ workload: row.workload, label: row.label, figure: row.figure, better: row.better, values, weirVsQuorum: factor, floorVsQuorum: floorFactor });
  }
  return result;
}

/** Broker and client CPU per workload and broker: on 2 cores, who had the CPU matters as much as the rate. */
function cpuTable(params: Parameters, measurements: readonly Measurement[]): { columns: Column[]; cells: string[][] } {
  const ids = [...new Set(measurements.map((entry) => entry.workload))];
  const columns: Column[] = [{ title: 'CPU: broker / clients / other' }, ...params.brokers.map((name) => ({ title: name, align: 'right' as const }))];
  const cells = ids.map((id) => [
    id,
    ...params.brokers.map((name) => {
      const resources = measurements.find((entry) => entry.workload === id && entry.broker === name)?.resources;
      return resources === undefined || resources === null ? '-' : `${formatPercent(resources.brokerCpu)} / ${formatPercent(resources.clientCpu)} / ${formatPercent(resources.otherCpu)}`;
    }),
  ]);
  return { columns, cells };
}

/** Brokers that did not start (once each, with the heart of the error), then failed workloads and checks, one line each. */
function noteLines(brokers: readonly BrokerRecord[], measurements: readonly Measurement[]): string[] {
  const lines: string[] = [];
  const unstarted = new Set<string>();
  for (const entry of brokers) {
    if (entry.status === 'ok') continue;
    unstarted.add(entry.name);
    const error = (entry.error ?? '').split('\n').filter((line) => line.trim() !== '').slice(0, 4).join(' | ');
    lines.push(`${entry.name}: did not start, so none of its workloads ran: ${error}`);
  }
  for (const entry of measurements) {
    if (entry.status === 'failed' && !unstarted.has(entry.broker)) lines.push(`${entry.broker} ${entry.workload}: FAILED: ${(entry.error ?? '').split('\n')[0]}`);
    for (const problem of entry.problems) lines.push(`${entry.broker} ${entry.workload}: * ${problem}`);
    if (disturbed(entry)) lines.push(`${entry.broker} ${entry.workload}: ~ other processes used ${formatPercent(entry.resources!.otherCpu)} of a core during the measurement`);
  }
  return lines;
}

// ---- running --------------------------------------------------------------------------------------------------------

interface BrokerRecord {
  name: BrokerName;
  status: 'ok' | 'failed';
  error: string | null;
  server: Broker['server'] | null;
  setup: string | null;
  startSeconds: number | null;
  stop: BrokerStopInfo | null;
}

/** Starts the broker and warms it up; a failed warm-up is only logged (the workloads then report what is wrong). */
async function openBroker(name: BrokerName, params: Parameters): Promise<Broker> {
  const broker = await startBroker(name, { code: params.code, sampleIntervalMs: params.sampleIntervalMs, log: progress });
  progress(`${name}: ${broker.server.product} ${broker.server.version} ready at ${broker.url.replace(/\/\/[^@]*@/, '//')} in ${formatNumber(broker.startSeconds, 1)} s`);
  try {
    await warmUp(broker, params, progress);
  } catch (error) {
    progress(`${name}: warm-up FAILED: ${errorText(error)}`);
  }
  return broker;
}

async function runBroker(name: BrokerName, params: Parameters, measurements: Measurement[]): Promise<BrokerRecord> {
  const chosen = workloads(params).filter((workload) => params.only === null || params.only.some((part) => workload.id.includes(part)));
  const record: BrokerRecord = { name, status: 'ok', error: null, server: null, setup: null, startSeconds: null, stop: null };
  const skip = (from: number, reason: string): void => {
    for (const workload of chosen.slice(from)) measurements.push(failedMeasurement(workload.id, name, new Error(reason)));
  };
  let broker: Broker | null = null;
  progress(`${name}: starting …`);
  try {
    broker = await openBroker(name, params);
  } catch (error) {
    progress(`${name}: could not start; its workloads are skipped. ${errorText(error)}`);
    record.status = 'failed';
    record.error = errorText(error);
    skip(0, `the broker did not start: ${errorText(error).split('\n')[0]}`);
    return record;
  }
  record.server = broker.server;
  record.setup = broker.setup;
  record.startSeconds = broker.startSeconds;
  try {
    for (const [index, workload] of chosen.entries()) {
      if (workload.freshBroker && index > 0) {
        // Memory is what this workload measures: none of it may be left over from the workloads before it.
        progress(`${name}: restarting for ${workload.id} (a fresh broker) …`);
        record.stop = await broker.stop();
        broker = null;
        try {
          broker = await openBroker(name, params);
        } catch (error) {
          progress(`${name}: could not restart: ${errorText(error)}`);
          skip(index, `the broker did not restart: ${errorText(error).split('\n')[0]}`);
          break;
        }
      }
      if (!broker.alive()) {
        measurements.push(failedMeasurement(workload.id, name, new Error('the broker process is gone')));
        continue;
      }
      progress(`${name} ${workload.id}: ${workload.title} …`);
      let measurement: Measurement;
      try {
        measurement = await workload.run(broker, params, progress);
      } catch (error) {
        const diagnostics = broker.diagnostics();
        progress(`${name} ${workload.id}: FAILED: ${errorText(error)}${diagnostics ? `\n${diagnostics}` : ''}`);
        measurement = failedMeasurement(workload.id, name, error);
      }
      if (measurement.status === 'ok') progress(`${name} ${workload.id}: ${measurement.notes}${measurement.problems.length > 0 ? `; CHECK: ${measurement.problems.join('; ')}` : ''}`);
      measurements.push(measurement);
    }
  } finally {
    if (broker !== null) {
      record.stop = await broker.stop();
      progress(`${name}: stopped in ${formatNumber(record.stop.shutdownSeconds, 1)} s${record.stop.killed ? ' (killed)' : ''}`);
    }
  }
  return record;
}

async function run(args: readonly string[]): Promise<void> {
  const params = parseArgs(args);
  if (params === null) {
    console.log(USAGE);
    return;
  }
  const known = workloads(params).map((workload) => workload.id);
  if (params.only !== null && !known.some((id) => params.only!.some((part) => id.includes(part)))) throw new UsageError(`--only ${params.only.join(',')} matched no workload; ids: ${known.join(', ')}`);
  const { machine, commit, startedAt, busyBefore } = await startBrokerSuite('amqp', progress);

  const measurements: Measurement[] = [];
  const brokers: BrokerRecord[] = [];
  for (const name of params.brokers) brokers.push(await runBroker(name, params, measurements));

  const comparison = compare(params, measurements);
  const cpu = cpuTable(params, measurements);
  const notes = noteLines(brokers, measurements);
  const machineText = describeMachine(machine, commit);
  const clients =
    'amqplib in worker threads of the benchmark process (one thread and one connection per publisher or consumer; one publisher and/or one consumer per workload), on the same 2 cores as the broker';
  const report = {
    suite: 'amqp',
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    units: {
      perSecond: 'messages per second (publish: confirmed; consume/drain: delivered and acked)',
      latencyMs: 'milliseconds from the scheduled send time to receipt by the consumer',
      rss: 'bytes; RabbitMQ: summed over beam.smp and its helper processes',
      cpu: 'share of one core over the measured window (1 = 100%)',
      weirVsQuorum: 'factor, above 1 = Weir better: throughput Weir ÷ quorum, latency and memory quorum ÷ Weir',
      floorVsQuorum: 'the same factor for the null broker (floor): the most any broker could reach with these clients on this machine',
    },
    parameters: params,
    setup: { clients, transport: 'TCP over loopback (127.0.0.1), AMQP 0-9-1, user guest', brokers },
    machine,
    machineBusyBeforeStart: busyBefore,
    commit,
    comparison: comparison.rows,
    measurements,
  };
  const jsonPath = await writeReport('amqp', report);
  const markdown = [
    `# amqp benchmark, ${startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC`,
    '',
    '```',
    machineText,
    '```',
    '',
    ...brokers.map((entry) => `- **${entry.name}**: ${entry.status === 'ok' ? `${entry.server?.product} ${entry.server?.version}; ${entry.setup}` : `did not start: ${(entry.error ?? '').split('\n')[0]}`}`),
    `- clients: ${clients}`,
    `- ${params.quick ? 'quick run; ' : ''}${formatNumber(params.count)} messages per publish/consume measurement, backlog ${formatNumber(params.backlog)}, latency windows ${formatNumber(params.durationSeconds)} s after ${formatNumber(params.warmupSeconds)} s warm-up`,
    '',
    markdownTable(comparison.columns, comparison.cells),
    '',
    `${LEGEND} CPU is a share of one core, over the measured window (backlog: the drain).`,
    '',
    markdownTable(cpu.columns, cpu.cells),
    '',
    ...(notes.length > 0 ? ['Notes:', '', ...notes.map((line) => `- ${line}`), ''] : []),
    `JSON report: ${jsonPath}`,
  ].join('\n');
  const summaryPath = await writeSummary('amqp', markdown);

  console.log();
  console.log(formatTable(comparison.columns, comparison.cells));
  console.log();
  console.log(LEGEND.replaceAll('`', ''));
  console.log();
  console.log(formatTable(cpu.columns, cpu.cells));
  if (notes.length > 0) {
    console.log();
    for (const line of notes) console.log(line);
  }
  console.log();
  for (const entry of brokers) console.log(`${entry.name}: ${entry.status === 'ok' ? `${entry.server?.product} ${entry.server?.version}` : 'did not start'}`);
  console.log(`clients: ${clients}`);
  console.log(machineText);
  console.log();
  console.log(`report:  ${jsonPath}\nsummary: ${summaryPath}`);
  if (measurements.some((entry) => entry.status === 'failed')) process.exitCode = 1;
}

export const amqpSuite: Suite = { run };
