import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { seededRandom } from '../../src/storage/io/fault-file-system.js';
import { type BrokerProcess, startBrokerProcess } from '../support/broker-process.js';
import { checkHistory, type CheckResult, History, passed, type TargetRules } from './history.js';
import { AmqpQueue, nativeClient, NativeStream, NativeWorkQueue, valueOf, type Running, type Workload } from './harness-workloads.js';
import { type Corruption, damageOldRecord, durableFrontier, readLogLayout, tearTail, type TailFault } from './torn-log.js';

/**
 * The reliability harness: a real broker process (`weir serve`), real clients (weir-client streams and work queues,
 * amqplib with confirms), and faults on a seeded schedule. Each cycle runs producers and consumers, kills the broker
 * with SIGKILL at a random moment, optionally damages the commit log as a power loss or bit rot would, and restarts.
 * At the end the harness audits every stored partition, drains every consumer and checks the history
 * (history.ts). A failing run keeps its seed, history, logs and data directory; the same seed replays the same
 * schedule (fault kinds, kill delays, damage positions), though not the same thread interleaving.
 */

export const FAULT_KINDS = ['kill-produce', 'kill-consume', 'torn-truncate', 'torn-garbage', 'torn-zeros', 'torn-bitflip', 'old-bitflip'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface HarnessOptions {
  seed: number;
  cycles: number;
  /** The fault kinds to draw from (default all), each used about equally often. */
  kinds?: readonly FaultKind[];
  /** Where failing runs are kept (default `<tmpdir>/weir-harness-failures`). */
  keepFailuresIn?: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface KindFigures {
  cycles: number;
  /** Cycles whose damage could be applied (tail faults need unsynced bytes past the frontier). */
  applied: number;
  acknowledged: number;
  read: number;
  lost: number;
}

export interface HarnessReport {
  readonly seed: number;
  readonly cycles: number;
  readonly passed: boolean;
  /** The history as consumers saw it. */
  readonly consumers: CheckResult;
  /** Every stored partition read from offset 0 after the last restart. */
  readonly audit: CheckResult;
  readonly perKind: Record<string, KindFigures>;
  readonly corruptions: Array<Corruption & { cycle: number }>;
  /** Offsets the broker reported damaged. */
  readonly damageReported: number;
  /** Restarts whose recovery cut a torn tail off the commit log. */
  readonly tornTailsCut: number;
  readonly durationMs: number;
  /** Where a failing run's seed, history, logs and data were kept. */
  readonly keptIn: string | null;
  readonly problems: string[];
}

const DRAIN_DEADLINE_MS = 30_000;
/** After every acknowledged value was read, how long nothing new must arrive before a drain is over. */
const QUIET_MS = 300;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The cycle a value's producer ran in (`<target>.c<cycle>[.p<n>]#<sequence>`). */
function cycleOfValue(value: string): number {
  return Number(/\.c(\d+)/.exec(value)?.[1] ?? -1);
}

/** A seeded schedule: every kind equally often (as far as the cycle count allows), in a seeded order. */
function schedule(kinds: readonly FaultKind[], cycles: number, random: () => number): FaultKind[] {
  const plan = Array.from({ length: cycles }, (_, index) => kinds[index % kinds.length]!);
  for (let index = plan.length - 1; index > 0; index--) {
    const other = Math.floor(random() * (index + 1));
    [plan[index], plan[other]] = [plan[other]!, plan[index]!];
  }
  return plan;
}

export async function runHarness(options: HarnessOptions): Promise<HarnessReport> {
  const started = Date.now();
  const log = options.log ?? (() => {});
  const random = seededRandom(options.seed);
  const plan = schedule(options.kinds ?? FAULT_KINDS, options.cycles, random);
  const runDir = await mkdtemp(join(tmpdir(), 'weir-harness-'));
  const dataDir = join(runDir, 'data');
  await mkdir(dataDir);
  const brokerLog: string[] = [];
  const history = new History();
  const stream = new NativeStream('h-stream', history);
  const queue = new NativeWorkQueue('h-jobs', history);
  const amqp = new AmqpQueue('h-amqp', history);
  const workloads: Workload[] = [stream, queue, amqp];
  const rules: Record<string, TargetRules> = Object.fromEntries(workloads.map((workload) => [workload.target, workload.rules]));
  const corruptions: Array<Corruption & { cycle: number }> = [];
  const problems: string[] = [];
  let broker: BrokerProcess | null = null;

  const brokers: BrokerProcess[] = [];
  const start = async (): Promise<BrokerProcess> => {
    const process = await startBrokerProcess(dataDir);
    brokerLog.push(`[broker ${brokers.length}] started, native ${process.port}, amqp ${process.amqpPort}`);
    brokers.push(process);
    return process;
  };
  /** Every line each broker printed, labelled with its generation. */
  const brokerOutput = (): string[] => brokers.flatMap((process, generation) => process.output.map((line) => `[broker ${generation}] ${line}`));

  const observedValues = (): Set<string> => {
    const seen = new Set<string>();
    for (const send of history.sends) if (send.status === 'ok') seen.add(send.value);
    for (const receive of history.receives) seen.add(receive.value);
    return seen;
  };

  let auditHistory = new History();
  try {
    broker = await start();
    for (const workload of workloads) await workload.setup(broker);

    for (let cycle = 0; cycle < plan.length; cycle++) {
      const kind = plan[cycle]!;
      const running: Running[] = [];
      if (kind === 'kill-consume') {
        // A backlog first, then a kill while consumers work through it and acknowledge.
        const producers = workloads.map((workload) => workload.produce(broker!, cycle));
        await sleep(40 + Math.floor(random() * 160));
        await Promise.all(producers.map((producer) => producer.stop()));
        const readsBefore = history.receives.length;
        running.push(...workloads.map((workload) => workload.consume(broker!)));
        for (let waited = 0; history.receives.length === readsBefore && waited < 3000; waited += 10) await sleep(10);
        await sleep(Math.floor(random() * 100));
      } else {
        running.push(...workloads.map((workload) => workload.consume(broker!)));
        running.push(...workloads.map((workload) => workload.produce(broker!, cycle)));
        await sleep(30 + Math.floor(random() * 250));
      }
      await broker.kill();
      brokerLog.push(`[cycle ${cycle}] ${kind}: SIGKILL`);
      await Promise.all(running.map((run) => run.abort()));
      history.settlePending();

      if (kind.startsWith('torn-')) {
        const layout = await readLogLayout(dataDir);
        const seen = observedValues();
        const frontier = durableFrontier(layout, (value) => seen.has(valueOf(value)));
        const corruption = await tearTail(layout, frontier, kind.slice('torn-'.length) as TailFault, random);
        corruptions.push({ ...corruption, cycle });
        brokerLog.push(`[cycle ${cycle}] ${corruption.kind}: ${corruption.applied ? '' : 'not applied: '}${corruption.detail}`);
      } else if (kind === 'old-bitflip') {
        if (random() < 0.5) {
          // A clean stop first: the checkpoint then covers the whole log, so the damage is found by a read's CRC
          // check rather than by recovery's scan.
          broker = await start();
          await broker.stop();
          brokerLog.push(`[cycle ${cycle}] clean stop before the damage (checkpoint at the end of the log)`);
        }
        const layout = await readLogLayout(dataDir);
        const seen = observedValues();
        const frontier = durableFrontier(layout, (value) => seen.has(valueOf(value)));
        // Prefer a batch holding an acknowledged value nobody read yet: its loss would otherwise go unnoticed.
        const read = new Set(history.receives.map((receive) => receive.value));
        const ours = (batch: { values: readonly string[] }): boolean => batch.values.some((value) => history.sendOf(valueOf(value)) !== undefined);
        const unread = (batch: { values: readonly string[] }): boolean => batch.values.some((value) => history.sendOf(valueOf(value))?.status === 'ok' && !read.has(valueOf(value)));
        let corruption = await damageOldRecord(layout, frontier, unread, random);
        if (!corruption.applied) corruption = await damageOldRecord(layout, frontier, ours, random);
        corruptions.push({ ...corruption, cycle });
        if (corruption.applied) history.injectDamage(corruption.values.map(valueOf));
        brokerLog.push(`[cycle ${cycle}] ${corruption.kind}: ${corruption.applied ? '' : 'not applied: '}${corruption.detail}`);
      }
      broker = await start();
      if ((cycle + 1) % 10 === 0 || cycle === plan.length - 1) log(`cycle ${cycle + 1}/${plan.length}: ${history.sends.length} sent, ${history.receives.length} read`);
    }

    // Audit: read every positional target from offset 0, as storage holds it; then drain every consumer.
    const auditable = new Set(workloads.filter((workload) => workload.auditable).map((workload) => workload.target));
    auditHistory = History.fromJson({ sends: history.sends.filter((send) => auditable.has(send.target)), receives: [], damage: [], injected: history.injected });
    for (const workload of workloads) {
      if (!workload.auditable) continue;
      await auditTarget(broker, workload.target, auditHistory, problems);
    }
    for (const report of auditHistory.damage) {
      history.reportDamage(report);
      if (report.target === stream.target) {
        const set = stream.damaged.get(report.partition) ?? new Set<number>();
        for (const offset of report.offsets) set.add(offset);
        stream.damaged.set(report.partition, set);
      }
    }
    await drain(broker, workloads, history, problems);
    await broker.stop();
    broker = null;
    // Work queues cannot be read by offset from outside: the broker's report of damage there is its error log.
    for (const workload of workloads) {
      if (workload.auditable) continue;
      const reported = brokerOutput().some((line) => line.includes('"level":50') && line.includes(`${workload.target}/`) && /damaged|checksum/.test(line));
      if (reported) history.reportDamage({ target: workload.target, partition: 0, offsets: [] });
    }
  } catch (error) {
    problems.push(`harness error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    await broker?.kill();
  }

  const consumers = checkHistory(history, rules);
  const audit = checkHistory(auditHistory, rules);
  // Damage may also be reported past the frontier (garbage over part of an unsynced tail with intact batches after
  // it): allowed, since no client saw those offsets; an acknowledged value lost that way is counted as lost.
  const damageReported = history.damage.reduce((sum, report) => sum + report.offsets.length, 0);
  const perKind: Record<string, KindFigures> = {};
  for (const kind of options.kinds ?? FAULT_KINDS) perKind[kind] = { cycles: 0, applied: 0, acknowledged: 0, read: 0, lost: 0 };
  plan.forEach((kind) => perKind[kind]!.cycles++);
  for (const corruption of corruptions) if (corruption.applied) perKind[plan[corruption.cycle]!]!.applied++;
  for (const kind of ['kill-produce', 'kill-consume'] as const) if (perKind[kind]) perKind[kind].applied = perKind[kind].cycles;
  const readValues = new Set(history.receives.map((receive) => receive.value));
  for (const send of history.sends) {
    const kind = plan[cycleOfValue(send.value)];
    if (kind === undefined || send.status !== 'ok') continue;
    perKind[kind]!.acknowledged++;
    if (readValues.has(send.value)) perKind[kind]!.read++;
  }
  for (const lost of consumers.lost) {
    const kind = plan[cycleOfValue(lost.value)];
    if (kind !== undefined) perKind[kind]!.lost++;
  }
  const ok = passed(consumers) && passed(audit) && problems.length === 0;
  let keptIn: string | null = null;
  if (ok) {
    await rm(runDir, { recursive: true, force: true });
  } else {
    keptIn = runDir;
    await writeFile(join(runDir, 'history.json'), JSON.stringify(history.toJson()));
    await writeFile(join(runDir, 'audit-history.json'), JSON.stringify(auditHistory.toJson()));
    await writeFile(join(runDir, 'broker.log'), [...brokerLog, ...brokerOutput()].join('\n') + '\n');
    await writeFile(
      join(runDir, 'report.json'),
      JSON.stringify({ seed: options.seed, cycles: options.cycles, kinds: options.kinds ?? FAULT_KINDS, plan, consumers, audit, problems, corruptions, replay: `WEIR_HARNESS_SEED=${options.seed} WEIR_HARNESS_CYCLES=${options.cycles}` }, null, 2),
    );
    log(`FAILED run kept in ${runDir} (seed ${options.seed}): history.json, audit-history.json, broker.log, report.json, data/`);
  }
  const tornTailsCut = brokerOutput().filter((line) => line.includes('cut a torn tail')).length;
  return { seed: options.seed, cycles: plan.length, passed: ok, consumers, audit, perKind, corruptions, damageReported, tornTailsCut, durationMs: Date.now() - started, keptIn, problems };
}

/**
 * Reads each partition of `target` alone, from offset 0 to its end, with a group-less consumer: every message is
 * recorded in `audit`; an offset the broker refuses with DATA_DAMAGED is recorded as reported damage and skipped.
 */
async function auditTarget(broker: BrokerProcess, target: string, audit: History, problems: string[]): Promise<void> {
  const client = nativeClient(broker, 'harness-audit');
  try {
    const info = await client.admin().describeTopic(target);
    for (const partition of info.partitions) {
      if (partition.endOffset <= partition.startOffset) continue;
      const consumer = client.consumer({ from: 'earliest', maxWaitMs: 50 });
      let damaged: (() => void) | null = null;
      let damageSeen = false;
      consumer.on('error', (error) => {
        // Fetches of other partitions may still be answered after the pause: attribute damage by what the broker
        // names ("message <offset> of queue \"<topic>/<partition>\"").
        const named = /message (\d+) of queue "(.+)\/(\d+)"/.exec(error.message);
        if (error.code !== 'DATA_DAMAGED' || named === null || named[2] !== target || Number(named[3]) !== partition.partition) return;
        damageSeen = true;
        damaged?.();
      });
      await consumer.subscribe(target);
      consumer.pause(target, info.partitions.map((entry) => entry.partition).filter((number) => number !== partition.partition));
      let next = partition.startOffset;
      let pending = consumer.next();
      while (next < partition.endOffset) {
        const damageSignal = new Promise<'damaged'>((resolve) => {
          damaged = () => resolve('damaged');
          if (damageSeen) resolve('damaged');
        });
        let timer: NodeJS.Timeout | undefined;
        const stall = new Promise<'stalled'>((resolve) => (timer = setTimeout(() => resolve('stalled'), 10_000)));
        const outcome = await Promise.race([pending, damageSignal, stall]);
        clearTimeout(timer);
        damaged = null;
        if (outcome === 'stalled') {
          problems.push(`audit of ${target}/${partition.partition}: nothing at offset ${next} for 10 s (end ${partition.endOffset})`);
          break;
        }
        if (outcome === 'damaged') {
          damageSeen = false;
          audit.reportDamage({ target, partition: partition.partition, offsets: [next] });
          next++;
          await consumer.seek({ topic: target, partition: partition.partition, to: next });
          continue;
        }
        if (outcome.done) break;
        const message = outcome.value;
        audit.receive({ target, partition: message.partition, offset: message.offset, value: valueOf(message.body), redelivered: false });
        next = message.offset + 1;
        if (next < partition.endOffset) pending = consumer.next();
      }
      await consumer.close();
    }
  } finally {
    await client.close().catch(() => {});
  }
}

/** Runs every workload's consumers until every acknowledged value was read and nothing new came for QUIET_MS. */
async function drain(broker: BrokerProcess, workloads: readonly Workload[], history: History, problems: string[]): Promise<void> {
  const running = workloads.map((workload) => workload.consume(broker));
  const deadline = Date.now() + DRAIN_DEADLINE_MS;
  let lastCount = -1;
  let quietSince = Date.now();
  try {
    for (;;) {
      const read = new Set(history.receives.map((receive) => receive.value));
      const done = workloads.every((workload) => history.drained(workload.target, read));
      if (history.receives.length !== lastCount) {
        lastCount = history.receives.length;
        quietSince = Date.now();
      }
      if (done && Date.now() - quietSince >= QUIET_MS) return;
      if (Date.now() > deadline) {
        const missing = workloads.filter((workload) => !history.drained(workload.target, read)).map((workload) => workload.target);
        problems.push(`drain: acknowledged values of ${missing.join(', ')} still unread after ${DRAIN_DEADLINE_MS / 1000} s`);
        return;
      }
      await sleep(50);
    }
  } finally {
    await Promise.all(running.map((run) => run.stop()));
  }
}
