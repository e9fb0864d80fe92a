/**
 * Shared helpers for benchmark suites: what machine and commit a result came from, a plain-text table, and the JSON
 * report under `bench-results/<YYYY-MM-DD>/<suite>.json` (git-ignored). Results without their hardware are not
 * comparable, so every report carries both. The measuring pieces themselves (histograms, machine information,
 * tables) are `weir perf`'s, in packages/weir/src/perf.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { type Column, formatNumber, formatTable } from '../packages/weir/src/perf/format.js';
import { type Histogram, newHistogram } from '../packages/weir/src/perf/latency.js';
import { type CommitInfo, commitInfo as checkoutCommit, describeMachine as describePerfMachine, machineInfo as perfMachineInfo, type MachineInfo as PerfMachineInfo } from '../packages/weir/src/perf/machine.js';

export { type Align, type Column, formatBytes, formatMiB, formatMs, formatNumber, formatPercent, formatTable, KiB, markdownTable, MB, MiB } from '../packages/weir/src/perf/format.js';
export { type CommitInfo, filesystemType } from '../packages/weir/src/perf/machine.js';

/** A bad command line: the dispatcher prints the message alone, without a stack trace. */
export class UsageError extends Error {}

/** A benchmark suite as bench/run.ts registers it. */
/**
 * A suite's command-line flags: `--name value`, `--name=value`, or a bare switch from `switches`. Returns null for
 * `--help`; anything else unknown is a UsageError that shows `usage`.
 */
export class Flags {
  private readonly values = new Map<string, string>();

  private constructor() {}

  static parse(args: readonly string[], options: { switches: readonly string[]; values: readonly string[]; usage: string }): Flags | null {
    const flags = new Flags();
    for (let index = 0; index < args.length; index++) {
      const arg = args[index]!;
      if (arg === '--help' || arg === '-h') return null;
      if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"\n\n${options.usage}`);
      const equals = arg.indexOf('=');
      const name = equals === -1 ? arg.slice(2) : arg.slice(2, equals);
      if (options.switches.includes(name)) {
        flags.values.set(name, 'true');
        continue;
      }
      if (!options.values.includes(name)) throw new UsageError(`unknown flag --${name}\n\n${options.usage}`);
      const value = equals === -1 ? args[++index] : arg.slice(equals + 1);
      if (value === undefined || value === '') throw new UsageError(`--${name} needs a value`);
      flags.values.set(name, value);
    }
    return flags;
  }

  has(name: string): boolean {
    return this.values.has(name);
  }

  get(name: string): string | undefined {
    return this.values.get(name);
  }

  /** A positive number (`1_000_000` and `1,000,000` allowed), or `fallback` when the flag is absent. */
  number(name: string, fallback: number, integer: boolean): number {
    const text = this.values.get(name);
    return text === undefined ? fallback : Flags.positive(name, text, integer);
  }

  static positive(name: string, text: string, integer: boolean): number {
    const value = Number(text.replaceAll('_', '').replaceAll(',', ''));
    if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isSafeInteger(value))) throw new UsageError(`--${name} must be a positive ${integer ? 'integer' : 'number'}, not "${text}"`);
    return value;
  }
}

export interface Suite {
  /** Runs the suite with its own command-line flags; resolves once its report is written. */
  run(args: readonly string[]): Promise<void>;
}

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** A suite always knows where it put its data. */
export interface MachineInfo extends PerfMachineInfo {
  dataDir: string;
  filesystem: string;
}

export function machineInfo(dataDir: string = os.tmpdir()): MachineInfo {
  const machine = perfMachineInfo(dataDir);
  return { ...machine, dataDir, filesystem: machine.filesystem ?? 'unknown' };
}

export function commitInfo(): CommitInfo {
  return checkoutCommit(repoRoot) ?? { sha: null, dirty: null };
}

export function describeMachine(machine: MachineInfo, commit: CommitInfo): string {
  return describePerfMachine(machine, commit);
}

/** Local calendar date as YYYY-MM-DD. */
export function today(date = new Date()): string {
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** Writes `report` as pretty JSON to bench-results/<date>/<suite>.json under the repository root; returns the path. */
/** Writes the JSON report, prints it, then the machine and commit it came from; returns the report's path. */
export async function publishReport(suite: string, report: unknown, machine: MachineInfo, commit: CommitInfo): Promise<string> {
  const path = await writeReport(suite, report);
  console.log(JSON.stringify(report, null, 2));
  console.log();
  console.log(describeMachine(machine, commit));
  console.log();
  return path;
}

export async function writeReport(suite: string, report: unknown): Promise<string> {
  const directory = join(repoRoot, 'bench-results', today());
  await mkdir(directory, { recursive: true });
  const path = join(directory, `${suite}.json`);
  await writeFile(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}

/** Writes a Markdown summary next to the JSON report, bench-results/<date>/<suite>.md; returns the path. */
export async function writeSummary(suite: string, markdown: string): Promise<string> {
  const directory = join(repoRoot, 'bench-results', today());
  await mkdir(directory, { recursive: true });
  const path = join(directory, `${suite}.md`);
  await writeFile(path, markdown.endsWith('\n') ? markdown : `${markdown}\n`);
  return path;
}

/** A fresh directory under os.tmpdir(), removed after `work` (whether it succeeds or not). */
export async function withTempDir<T>(prefix: string, work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(os.tmpdir(), `weir-bench-${prefix}-`));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function now(): number {
  return performance.now() / 1000;
}

/** Latencies recorded in microseconds on a hot path (an HDR histogram), summarised in milliseconds. */
export class LatencyHistogram {
  private readonly histogram: Histogram = newHistogram();

  get count(): number {
    return this.histogram.totalCount;
  }

  get max(): number {
    return this.histogram.maxValue;
  }

  /** Records one latency in microseconds. */
  record(micros: number): void {
    this.histogram.recordValue(Math.max(1, Math.round(micros)));
  }

  reset(): void {
    this.histogram.reset();
  }

  /** The latency at quantile `q` (0..1), in microseconds. */
  quantile(q: number): number {
    return this.count === 0 ? 0 : Math.min(this.max, this.histogram.getValueAtPercentile(q * 100));
  }

  summary(): { count: number; p50Ms: number; p99Ms: number; p999Ms: number; maxMs: number } {
    const ms = (micros: number) => Math.round(micros) / 1000;
    return { count: this.count, p50Ms: ms(this.quantile(0.5)), p99Ms: ms(this.quantile(0.99)), p999Ms: ms(this.quantile(0.999)), maxMs: ms(this.max) };
  }
}

/**
 * Garbage-collection pauses of this process between `start()` and `stop()`: with a 2-core machine, GC time is
 * throughput taken straight from the measured code, so reports show it next to the rate.
 */
export class GcMeter {
  private readonly observer: PerformanceObserver;
  private from = 0;
  private to = Infinity;
  private pauseMs = 0;
  private pauses = 0;

  constructor() {
    this.observer = new PerformanceObserver((list) => this.take(list.getEntries()));
  }

  private take(entries: ReadonlyArray<{ startTime: number; duration: number }>): void {
    for (const entry of entries) {
      if (entry.startTime < this.from || entry.startTime > this.to) continue;
      this.pauseMs += entry.duration;
      this.pauses++;
    }
  }

  start(): void {
    this.from = performance.now();
    this.to = Infinity;
    this.observer.observe({ entryTypes: ['gc'] });
  }

  /** Ends the window; resolves with the pauses that began inside it (entries arrive asynchronously). */
  async stop(): Promise<{ pauses: number; pauseMs: number; share: number }> {
    this.to = performance.now();
    await new Promise<void>((resolve) => setTimeout(resolve, 50));
    this.take(this.observer.takeRecords() as Array<{ startTime: number; duration: number }>);
    this.observer.disconnect();
    return { pauses: this.pauses, pauseMs: Math.round(this.pauseMs), share: this.pauseMs / (this.to - this.from) };
  }
}

// ---- CPU profiles ---------------------------------------------------------------------------------------------------

/** The parts of a V8 `.cpuprofile` (what `node --cpu-prof` writes) that the summary reads. */
export interface CpuProfile {
  nodes: Array<{
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number; scriptId?: string | number };
    children?: number[];
  }>;
  /** Microseconds. */
  startTime: number;
  endTime: number;
  /** Node id of each sample, and the microseconds since the previous sample (the first: since startTime). */
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileEntry {
  /** Function name, or a V8 pseudo-frame: (garbage collector), (program), (idle). */
  name: string;
  /**
   * path:line relative to the repository root, node:… for Node internals, "(generated code, script N):line" for code
   * compiled at run time (new Function), or '' for native functions and pseudo-frames.
   */
  location: string;
  selfMs: number;
  /** Share of busy (non-idle) time spent in the function itself. */
  selfShare: number;
  /** Time with the function anywhere on the stack (recursion counted once). */
  totalMs: number;
  totalShare: number;
}

export interface ProfileSummary {
  file: string;
  /** Wall time the profile covers. */
  durationMs: number;
  /** Time not spent idle (the event loop waiting). */
  busyMs: number;
  idleMs: number;
  /** The functions with the most self time, most first. */
  top: ProfileEntry[];
  /** Self time per source file, most first. */
  byFile: Array<{ location: string; selfMs: number; selfShare: number }>;
}

/**
 * Self and total time per function from a `.cpuprofile`: each sample is charged the time until the next sample;
 * functions are keyed by name and location, so a function reached along several call paths is counted once.
 */
export function summarizeCpuProfile(profile: CpuProfile, options: { root?: string; top?: number; file?: string } = {}): ProfileSummary {
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  const parents = new Map<number, number>();
  const byId = new Map<number, CpuProfile['nodes'][number]>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parents.set(child, node.id);
  }
  const root = options.root === undefined ? null : `file://${options.root.endsWith('/') ? options.root : `${options.root}/`}`;
  const keyOf = new Map<number, string>();
  const entries = new Map<string, { name: string; location: string; file: string; self: number; total: number }>();
  const entryOf = (id: number) => {
    let key = keyOf.get(id);
    const frame = byId.get(id)!.callFrame;
    if (key === undefined) {
      let file = frame.url;
      if (root !== null && file.startsWith(root)) file = file.slice(root.length);
      else if (file.startsWith('file://')) file = file.slice('file://'.length);
      // No url: a native function (script 0) or code made at run time (new Function, eval), told apart by script.
      const script = String(frame.scriptId ?? '0');
      if (file === '' && script !== '0') file = `(generated code, script ${script})`;
      const location = file === '' ? '' : `${file}:${frame.lineNumber + 1}`;
      key = `${frame.functionName}\u0000${location}`;
      keyOf.set(id, key);
      if (!entries.has(key)) entries.set(key, { name: frame.functionName || '(anonymous)', location, file, self: 0, total: 0 });
    }
    return entries.get(key)!;
  };
  // Sample i happens at startTime + deltas[0..i]; it lasts until the next sample (the last one until endTime).
  let at = profile.startTime;
  const times = samples.map((_, index) => (at += deltas[index] ?? 0));
  let idle = 0;
  let total = 0;
  const seen = new Set<string>();
  for (let index = 0; index < samples.length; index++) {
    const duration = Math.max(0, (index + 1 < samples.length ? times[index + 1]! : profile.endTime) - times[index]!);
    total += duration;
    const leaf = samples[index]!;
    const entry = entryOf(leaf);
    entry.self += duration;
    if (entry.name === '(idle)') {
      idle += duration;
      continue;
    }
    seen.clear();
    for (let id: number | undefined = leaf; id !== undefined; id = parents.get(id)) {
      const frame = entryOf(id);
      const key = keyOf.get(id)!;
      if (seen.has(key) || frame.name === '(root)') continue;
      seen.add(key);
      frame.total += duration;
    }
  }
  const busy = total - idle;
  const share = (micros: number) => (busy > 0 ? micros / busy : 0);
  const busyEntries = [...entries.values()].filter((entry) => entry.name !== '(idle)' && entry.name !== '(root)');
  const top = busyEntries
    .sort((a, b) => b.self - a.self)
    .slice(0, options.top ?? 15)
    .map((entry) => ({ name: entry.name, location: entry.location, selfMs: entry.self / 1000, selfShare: share(entry.self), totalMs: entry.total / 1000, totalShare: share(entry.total) }));
  const files = new Map<string, number>();
  for (const entry of busyEntries) {
    const file = entry.file === '' ? entry.name : entry.file;
    files.set(file, (files.get(file) ?? 0) + entry.self);
  }
  const byFile = [...files.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 12)
    .map(([location, self]) => ({ location, selfMs: self / 1000, selfShare: share(self) }));
  return { file: options.file ?? '', durationMs: total / 1000, busyMs: busy / 1000, idleMs: idle / 1000, top, byFile };
}

/** The summary as text: a header line, the top functions, then self time per file. */
export function formatProfileSummary(summary: ProfileSummary): string {
  const pct = (value: number) => `${formatNumber(value * 100, 1)}%`;
  const header =
    `${summary.file ? `${summary.file}: ` : ''}${formatNumber(summary.durationMs / 1000, 2)} s profiled, busy ${formatNumber(summary.busyMs / 1000, 2)} s ` +
    `(${pct(summary.durationMs > 0 ? summary.busyMs / summary.durationMs : 0)}); shares below are of busy time`;
  const functions = formatTable(
    [{ title: 'self', align: 'right' }, { title: 'self ms', align: 'right' }, { title: 'total', align: 'right' }, { title: 'function' }, { title: 'location' }],
    summary.top.map((entry) => [pct(entry.selfShare), formatNumber(entry.selfMs, 0), pct(entry.totalShare), entry.name, entry.location]),
  );
  const files = formatTable(
    [{ title: 'self', align: 'right' }, { title: 'self ms', align: 'right' }, { title: 'file' }],
    summary.byFile.map((entry) => [pct(entry.selfShare), formatNumber(entry.selfMs, 0), entry.location]),
  );
  return `${header}\n\n${functions}\n\n${files}`;
}

/** The fields every suite's result rows share. */
export interface ResultRow {
  scenario: string;
  messages: number;
  seconds: number;
  perSecond: number;
  mbPerSecond: number;
  notes: string;
}

/** A benchmark target: what the design asks for, what was reached, and whether that meets it. */
export interface Target {
  name: string;
  requirement: string;
  actual: string;
  /** null when a scenario it needs did not run. */
  met: boolean | null;
}

export function resultTable(results: readonly ResultRow[]): string {
  return formatTable(
    [{ title: 'scenario' }, { title: 'messages', align: 'right' }, { title: 'seconds', align: 'right' }, { title: 'msg/s', align: 'right' }, { title: 'MB/s', align: 'right' }, { title: 'notes' }],
    results.map((result) => [
      result.scenario,
      formatNumber(result.messages),
      formatNumber(result.seconds, 2),
      formatNumber(result.perSecond),
      formatNumber(result.mbPerSecond, 1),
      result.notes,
    ]),
  );
}

export function targetTable(targets: readonly Target[]): string {
  return formatTable(
    [{ title: 'target' }, { title: 'requirement' }, { title: 'actual' }, { title: 'met' }],
    targets.map((target) => [target.name, target.requirement, target.actual, target.met === null ? 'n/a' : target.met ? 'yes' : 'NO']),
  );
}
