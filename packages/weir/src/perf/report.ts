/**
 * The JSON report of one `weir perf` run, and its terminal table. The report is self-contained: the parameters, the
 * machine and commit it ran on, each phase's throughput, the latency percentiles, the broker's and the client's
 * resources, and a timeline (for charts of memory over a run).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { formatBytes, formatMs, formatNumber, formatPercent, formatTable } from './format.js';
import type { LatencySummary } from './latency.js';
import type { CommitInfo, MachineInfo } from './machine.js';
import type { PerfParameters } from './options.js';

export const REPORT_FORMAT = 'weir-perf/1';

export interface PhaseResult {
  /** produce, fill (a backlog written before it is read), consume, drain or deliver. */
  name: string;
  messages: number;
  bytes: number;
  seconds: number;
  messagesPerSecond: number;
  /** 10^6 bytes of message bodies per second. */
  megabytesPerSecond: number;
}

export interface LatencyResult extends LatencySummary {
  /** `ack`: send to the broker's acknowledgement; `delivery`: send to a consumer's receipt (end to end). */
  kind: 'ack' | 'delivery';
  /**
   * `intended-send`: from each message's scheduled send time (a --rate run: corrected for coordinated omission);
   * `send`: from when the producer sent it (a closed-loop run, which slows down with the broker and so hides stalls).
   */
  measuredFrom: 'intended-send' | 'send';
}

export interface BrokerResources {
  pid: number;
  /** CPU over the measured span as a share of one core (1 = one core busy). */
  cpu: number;
  rssStartBytes: number;
  rssPeakBytes: number;
  rssEndBytes: number;
}

export interface ClientResources {
  /** This process's CPU (every thread) over the measured span, as a share of one core. */
  cpu: number;
  rssPeakBytes: number;
}

export interface TimelinePoint {
  /** Seconds since the first phase began. */
  seconds: number;
  phase: string;
  acked: number;
  delivered: number;
  brokerRssBytes: number | null;
  /** Broker CPU since the previous point, as a share of one core. */
  brokerCpu: number | null;
}

export interface PerfReport {
  format: typeof REPORT_FORMAT;
  tool: { name: 'weir perf'; version: string };
  startedAt: string;
  finishedAt: string;
  parameters: PerfParameters;
  machine: MachineInfo;
  commit: CommitInfo | null;
  /** Every phase in order; `throughput` repeats the one the scenario is about. */
  phases: PhaseResult[];
  throughput: PhaseResult;
  latency: LatencyResult | null;
  /** Messages acknowledged by the broker, sends that failed, deliveries counted. */
  totals: { sent: number; acked: number; failed: number; delivered: number; expectedDeliveries: number | null };
  /** A fixed-rate run whose sender fell behind its schedule: the rate was not offered in full. */
  scheduleBehind: number;
  resources: { broker: BrokerResources | null; client: ClientResources };
  timeline: TimelinePoint[];
  /** Anything that makes the figures doubtful (a stalled drain, a sender that fell behind, a failed send). */
  warnings: string[];
  /** The error that ended the run early, or null. */
  error: string | null;
}

export function phaseResult(name: string, messages: number, bytes: number, seconds: number): PhaseResult {
  const safe = seconds > 0 ? seconds : Number.NaN;
  return {
    name,
    messages,
    bytes,
    seconds,
    messagesPerSecond: seconds > 0 ? messages / safe : 0,
    megabytesPerSecond: seconds > 0 ? bytes / 1e6 / safe : 0,
  };
}

export async function writeJsonReport(path: string, report: PerfReport): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(report, null, 2)}\n`);
}

/** The terminal summary: parameters in a line, a table of phases, latency and resources. */
export function formatReport(report: PerfReport): string {
  const p = report.parameters;
  const amount = p.count !== null ? `${formatNumber(p.count)} messages` : `${formatNumber(p.durationSeconds ?? 0)} s${p.warmupSeconds > 0 ? ` after ${formatNumber(p.warmupSeconds)} s warm-up` : ''}`;
  const header =
    `weir perf ${p.scenario} over ${p.protocol} to ${p.target}: ${formatBytes(p.messageBytes)} bodies, ${amount}, ` +
    `${p.producers} producer(s), ${p.consumers} consumer(s), acks ${p.acks}${p.rate === null ? '' : `, ${formatNumber(p.rate)} msg/s fixed rate`}`;
  const phases = formatTable(
    [{ title: 'phase' }, { title: 'messages', align: 'right' }, { title: 'seconds', align: 'right' }, { title: 'msg/s', align: 'right' }, { title: 'MB/s', align: 'right' }],
    report.phases.map((phase) => [phase.name, formatNumber(phase.messages), formatNumber(phase.seconds, 2), formatNumber(phase.messagesPerSecond), formatNumber(phase.megabytesPerSecond, 1)]),
  );
  const sections = [header, '', phases];
  const latency = report.latency;
  if (latency !== null && latency.count > 0) {
    const title = `${latency.kind} latency${latency.measuredFrom === 'intended-send' ? ' (from intended send times)' : ''}`;
    sections.push(
      '',
      formatTable(
        [{ title }, { title: 'p50', align: 'right' }, { title: 'p90', align: 'right' }, { title: 'p99', align: 'right' }, { title: 'p99.9', align: 'right' }, { title: 'max', align: 'right' }],
        [[`${formatNumber(latency.count)} messages`, formatMs(latency.p50Ms), formatMs(latency.p90Ms), formatMs(latency.p99Ms), formatMs(latency.p999Ms), formatMs(latency.maxMs)]],
      ),
    );
  }
  const broker = report.resources.broker;
  const client = report.resources.client;
  sections.push(
    '',
    `client CPU ${formatPercent(client.cpu)} of a core, peak RSS ${formatBytes(client.rssPeakBytes)}` +
      (broker === null ? '; broker not sampled (give --broker-pid to sample a local broker)' : `; broker CPU ${formatPercent(broker.cpu)} of a core, RSS ${formatBytes(broker.rssStartBytes)} → ${formatBytes(broker.rssEndBytes)} (peak ${formatBytes(broker.rssPeakBytes)})`),
  );
  for (const warning of report.warnings) sections.push(`warning: ${warning}`);
  if (report.error !== null) sections.push(`error: ${report.error}`);
  return sections.join('\n');
}
