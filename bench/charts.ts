/**
 * The charts of a benchmark run, drawn from `weir perf` reports (packages/weir/src/perf/svg-chart.ts): throughput
 * against message size, latency percentiles against offered rate, and broker RSS over a backlog run.
 */
import type { PerfReport } from '../packages/weir/src/perf/report.js';
import { barChartSvg, lineChartSvg } from '../packages/weir/src/perf/svg-chart.js';

export interface Charts {
  throughputBySize: string;
  latencyByRate: string;
  backlogRss: string;
}

export function sizeLabel(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} B`;
}

/** Bars of msg/s and MB/s per message size (the produce reports, one per size). */
export function throughputChart(reports: readonly PerfReport[]): string {
  const sorted = [...reports].sort((a, b) => a.parameters.messageBytes - b.parameters.messageBytes);
  return barChartSvg({
    title: 'Durable produce throughput by message size',
    yLabel: 'thousand messages / s  ·  MB / s',
    categories: sorted.map((report) => sizeLabel(report.parameters.messageBytes)),
    series: [
      { name: 'k msg/s', values: sorted.map((report) => report.throughput.messagesPerSecond / 1000) },
      { name: 'MB/s', values: sorted.map((report) => report.throughput.megabytesPerSecond) },
    ],
  });
}

/** Lines of p50/p99/p99.9 end-to-end latency against the offered rate (the e2e --rate reports). */
export function latencyChart(reports: readonly PerfReport[]): string {
  const sorted = [...reports].filter((report) => report.latency !== null && report.parameters.rate !== null).sort((a, b) => a.parameters.rate! - b.parameters.rate!);
  const series = (name: string, pick: (report: PerfReport) => number) => ({ name, points: sorted.map((report) => [report.parameters.rate!, pick(report)] as const) });
  return lineChartSvg({
    title: 'End-to-end latency at a fixed rate (from intended send times)',
    xLabel: 'offered rate, messages / s',
    yLabel: 'latency, ms',
    logX: true,
    series: [series('p50', (report) => report.latency!.p50Ms), series('p99', (report) => report.latency!.p99Ms), series('p99.9', (report) => report.latency!.p999Ms)],
  });
}

/** Broker RSS (MiB) over the run of a backlog report, with the fill/drain boundary visible as the acked/delivered lines. */
export function backlogRssChart(report: PerfReport): string {
  const points = report.timeline.filter((point) => point.brokerRssBytes !== null);
  const most = Math.max(1, ...points.map((point) => Math.max(point.acked, point.delivered)));
  const scale = Math.max(...points.map((point) => point.brokerRssBytes! / 2 ** 20), 1) / most;
  return lineChartSvg({
    title: `Broker memory over a backlog of ${report.parameters.count?.toLocaleString('en-US') ?? '?'} messages`,
    xLabel: 'seconds',
    yLabel: 'RSS, MiB',
    series: [
      { name: 'broker RSS (MiB)', points: points.map((point) => [point.seconds, point.brokerRssBytes! / 2 ** 20] as const) },
      { name: 'written (scaled)', points: points.map((point) => [point.seconds, point.acked * scale] as const) },
      { name: 'read (scaled)', points: points.map((point) => [point.seconds, point.delivered * scale] as const) },
    ],
  });
}
