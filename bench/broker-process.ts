/**
 * A broker (`weir serve`) in a child process of its own, for the suites that measure it over TCP (native, queue):
 * started on port 0 with its own data directory (the port is read from its "listening on" log line), its RSS and CPU
 * sampled from /proc, stopped with SIGTERM; plus the build step that compiles it first, and a check of how busy the
 * machine is. Also the resource windows every suite measures between two marks (CPU shares, RSS), for any broker
 * that can be sampled: RabbitMQ too. Linux only (/proc).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLOCK_TICKS, type ProcessSample, sampleProcess } from '../packages/weir/src/perf/process-sampler.js';
import { type CommitInfo, commitInfo, describeMachine, formatMiB, formatPercent, type MachineInfo, machineInfo, now, repoRoot, UsageError } from './report.js';

/** `dist`: compiled broker and clients (built with tsc -b first); `src`: the TypeScript sources through tsx. */
export type Code = 'dist' | 'src';

export { CLOCK_TICKS, type ProcessSample, sampleProcess } from '../packages/weir/src/perf/process-sampler.js';
export { newHistogram } from '../packages/weir/src/perf/latency.js';

export interface BrokerStop {
  /** RSS just before SIGTERM. */
  rssBytes: number;
  /** Peak RSS over the broker's life (VmHWM, else the largest sample). */
  peakRssBytes: number;
  shutdownSeconds: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  killed: boolean;
  /** The --cpu-prof file, when profiling. */
  profilePath: string | null;
}

/**
 * Broker children still running, with their data directories: killed (and the directories removed) if this process
 * exits early or is interrupted, so no broker outlives the benchmark.
 */
const liveBrokers = new Map<ChildProcess, string | null>();
let exitHookInstalled = false;

function killLiveBrokers(): void {
  for (const [child, dataDir] of liveBrokers) {
    child.kill('SIGKILL');
    if (dataDir !== null) rmSync(dataDir, { recursive: true, force: true });
  }
  liveBrokers.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', killLiveBrokers);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`[bench] ${signal}: stopping the brokers\n`);
      killLiveBrokers();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}

export interface BrokerStartOptions {
  code: Code;
  /** `weir serve --data-dir`; null with `command`. */
  dataDir: string | null;
  label: string;
  /** Where --cpu-prof writes; null runs without profiling. */
  profileDir: string | null;
  sampleIntervalMs: number;
  /** Progress lines (broker warnings and errors, an unclean exit). */
  log: (text: string) => void;
  /** More `weir serve` flags (the amqp suite's --amqp-port). */
  extraArgs?: readonly string[];
  /**
   * Node arguments of another server to run instead of `weir serve` (the amqp suite's null broker), which must print
   * `listening on <host>:<port>` on stdout; `dataDir`, `code` and `extraArgs` do not apply to it.
   */
  command?: readonly string[];
}

/**
 * `weir serve` in a child process: started with `--port 0`, its port parsed from the first stdout line, its RSS and
 * CPU sampled every `sampleIntervalMs`, stopped with SIGTERM (SIGKILL after 60 s). Warnings and errors it logs are
 * counted (its logs are pino JSON lines on stdout).
 */
export class BrokerProcess {
  readonly samples: ProcessSample[] = [];
  warnings = 0;
  errors = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderrTail = '';

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly startSeconds: number,
    private readonly options: BrokerStartOptions,
    exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
    pendingLines: string[],
  ) {
    this.exited = exited;
    for (const line of pendingLines) this.onLogLine(line);
    this.timer = setInterval(() => this.sample(), options.sampleIntervalMs);
    this.timer.unref();
    this.sample();
  }

  static async start(options: BrokerStartOptions): Promise<BrokerProcess> {
    installExitHook();
    const entry =
      options.code === 'dist'
        ? [join(repoRoot, 'packages/weir/dist/cli/main.js')]
        : ['--conditions=development', '--import', 'tsx', join(repoRoot, 'packages/weir/src/cli/main.ts')];
    const profiling = options.profileDir === null ? [] : ['--cpu-prof', '--cpu-prof-dir', options.profileDir];
    const extra = options.extraArgs ?? [];
    // A free AMQP port unless the suite names one, so a bench never collides with a broker on 5672.
    const amqpPort = extra.includes('--amqp-port') ? [] : ['--amqp-port', '0'];
    if (options.command === undefined && options.dataDir === null) throw new Error(`${options.label}: weir serve needs a data directory`);
    const args = options.command ?? [...profiling, ...entry, 'serve', '--data-dir', options.dataDir!, '--port', '0', ...amqpPort, '--log-level', 'warn', ...extra];
    const began = now();
    const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    liveBrokers.set(child, options.dataDir);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => {
        liveBrokers.delete(child);
        resolve({ code, signal });
      });
    });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (text: string) => {
      stderr = (stderr + text).slice(-4000);
    });
    const lines: string[] = [];
    let broker: BrokerProcess | null = null;
    const port = await new Promise<number>((resolve, reject) => {
      let buffered = '';
      let found = false;
      const timeout = setTimeout(() => fail(new Error(`the broker did not report its port within 30 s`)), 30_000);
      const fail = (error: Error): void => {
        if (found) return;
        found = true;
        clearTimeout(timeout);
        child.kill('SIGKILL');
        reject(new Error(`${options.label}: ${error.message}${stderr ? `\nbroker stderr:\n${stderr}` : ''}`));
      };
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (text: string) => {
        buffered += text;
        let newline: number;
        while ((newline = buffered.indexOf('\n')) !== -1) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (!found) {
            const match = /listening on .*:(\d+)/.exec(line);
            if (match !== null) {
              found = true;
              clearTimeout(timeout);
              resolve(Number(match[1]));
              continue;
            }
          }
          if (broker !== null) broker.onLogLine(line);
          else lines.push(line);
        }
      });
      child.once('error', (error) => fail(error));
      void exited.then(({ code, signal }) => fail(new Error(`the broker exited (code ${code}, signal ${signal}) before listening`)));
    });
    broker = new BrokerProcess(child, port, now() - began, options, exited, lines);
    child.stderr!.removeAllListeners('data');
    child.stderr!.on('data', (text: string) => broker!.onStderr(text));
    broker.stderrTail = stderr;
    return broker;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Samples now (and keeps the sample); null when the process is gone. */
  sample(): ProcessSample | null {
    const sample = sampleProcess(this.pid);
    if (sample !== null) this.samples.push(sample);
    return sample;
  }

  /** Peak RSS seen so far. */
  get peakRssBytes(): number {
    let peak = 0;
    for (const sample of this.samples) peak = Math.max(peak, sample.peakRssBytes, sample.rssBytes);
    return peak;
  }

  private onLogLine(line: string): void {
    if (line.trim() === '') return;
    let level = 0;
    let message = line;
    try {
      const parsed = JSON.parse(line) as { level?: number; msg?: string };
      level = parsed.level ?? 0;
      message = parsed.msg ?? line;
    } catch {
      // Not JSON: the shutdown line ("weir: SIGTERM, shutting down") or similar.
      return;
    }
    if (level >= 50) this.errors++;
    else if (level >= 40) this.warnings++;
    else return;
    if (this.warnings + this.errors <= 5) this.options.log(`${this.options.label}: broker ${level >= 50 ? 'error' : 'warning'}: ${message} ${line.length > 300 ? `${line.slice(0, 300)}…` : line}`);
  }

  private onStderr(text: string): void {
    this.stderrTail = (this.stderrTail + text).slice(-4000);
  }

  get logSummary(): string {
    return this.warnings + this.errors === 0 ? '' : `; broker logged ${this.warnings} warnings, ${this.errors} errors`;
  }

  /** SIGTERM, wait for a clean exit (the broker flushes and, when profiled, writes its profile), SIGKILL after 60 s. */
  async stop(): Promise<BrokerStop> {
    clearInterval(this.timer);
    const last = this.sample();
    const rssBytes = last?.rssBytes ?? this.samples.at(-1)?.rssBytes ?? 0;
    const peakRssBytes = this.peakRssBytes;
    const began = now();
    this.child.kill('SIGTERM');
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.child.kill('SIGKILL');
    }, 60_000);
    const { code, signal } = await this.exited;
    clearTimeout(timer);
    const shutdownSeconds = now() - began;
    if (killed) this.options.log(`${this.options.label}: the broker did not exit within 60 s of SIGTERM and was killed`);
    else if (code !== 0) this.options.log(`${this.options.label}: the broker exited with code ${code}${this.stderrTail ? `; stderr:\n${this.stderrTail}` : ''}`);
    let profilePath: string | null = null;
    if (this.options.profileDir !== null && existsSync(this.options.profileDir)) {
      const name = readdirSync(this.options.profileDir).find((file) => file.endsWith('.cpuprofile') && file.includes(`.${this.pid}.`));
      profilePath = name === undefined ? null : join(this.options.profileDir, name);
    }
    return { rssBytes, peakRssBytes, shutdownSeconds, exitCode: code, signal, killed, profilePath };
  }

  /** Kills without waiting (error paths). */
  kill(): void {
    clearInterval(this.timer);
    this.child.kill('SIGKILL');
  }
}

/** Builds the compiled broker and client (what ./weir does before running the broker); returns the seconds it took. */
export function buildBroker(): number {
  const began = now();
  try {
    execFileSync(join(repoRoot, 'node_modules/.bin/tsc'), ['-b', 'packages/protocol', 'packages/client', 'packages/weir'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const output = (error as { stdout?: string; stderr?: string }).stdout ?? '';
    throw new Error(`building failed (tsc -b packages/protocol packages/client packages/weir):\n${output.slice(0, 4000)}\nFix the build, or run the sources with --code src.`);
  }
  return now() - began;
}

/** The machine's CPU ticks since boot (/proc/stat): all, and idle (idle + iowait; guest time is already in user). */
function machineTicks(): { idle: number; total: number } {
  // user nice system idle iowait irq softirq steal
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.slice(0, 8).reduce((sum, value) => sum + value, 0);
  return { idle: fields[3]! + fields[4]!, total };
}

/** Share of the machine's CPU time that was not idle over `ms` milliseconds. */
/**
 * The common start of a suite that runs brokers: Linux only (brokers are sampled through /proc), the machine and
 * commit printed, and how busy the machine was in the second before (other work skews every figure).
 */
export async function startBrokerSuite(suite: string, progress: (text: string) => void): Promise<{ machine: MachineInfo; commit: CommitInfo; startedAt: Date; busyBefore: number }> {
  if (process.platform !== 'linux') throw new UsageError(`the ${suite} suite samples brokers through /proc and runs on Linux only`);
  const machine = machineInfo(os.tmpdir());
  const commit = commitInfo();
  progress(describeMachine(machine, commit).replaceAll('\n', `\n[${suite}] `));
  const startedAt = new Date();
  const busyBefore = await machineBusy(1000);
  if (busyBefore > 0.1) progress(`WARNING: the machine is not idle (${formatPercent(busyBefore)} of its CPU was busy in the second before the run); figures may be disturbed`);
  return { machine, commit, startedAt, busyBefore };
}

export async function machineBusy(ms: number): Promise<number> {
  const before = machineTicks();
  await sleep(ms);
  const after = machineTicks();
  const total = after.total - before.total;
  return total > 0 ? 1 - (after.idle - before.idle) / total : 0;
}

// ---- resource windows -----------------------------------------------------------------------------------------------

/** What a mark reads of a broker: BrokerProcess, or the amqp suite's Broker (RabbitMQ's summed over its processes). */
export interface Sampled {
  /** Samples now (and keeps the sample); null when the process is gone. */
  sample(): ProcessSample | null;
  /** Every sample so far, oldest first. */
  readonly samples: readonly ProcessSample[];
}

/** CPU counters and the broker's RSS at one moment: a window between two marks has its CPU shares and RSS. */
export interface Mark {
  time: number;
  brokerCpuSeconds: number;
  clientCpuSeconds: number;
  /**
   * CPU seconds the whole machine spent busy (every core, every process). Minus broker and clients, this is what else
   * ran on the shared cores meanwhile.
   */
  machineCpuSeconds: number;
  /** NaN once the broker is gone. */
  rssBytes: number;
}

export function mark(broker: Sampled): Mark {
  const sample = broker.sample();
  const usage = process.cpuUsage();
  const ticks = machineTicks();
  return {
    time: now(),
    brokerCpuSeconds: sample?.cpuSeconds ?? NaN,
    clientCpuSeconds: (usage.user + usage.system) / 1e6,
    machineCpuSeconds: (ticks.total - ticks.idle) / CLOCK_TICKS,
    rssBytes: sample?.rssBytes ?? NaN,
  };
}

/** CPU over the window between two marks, each as a share of one core (1 = one core busy). */
function cpuShares(from: Mark, to: Mark): { seconds: number; brokerCpu: number; clientCpu: number; otherCpu: number } {
  const seconds = to.time - from.time;
  const broker = to.brokerCpuSeconds - from.brokerCpuSeconds;
  const clients = to.clientCpuSeconds - from.clientCpuSeconds;
  return {
    seconds,
    brokerCpu: broker / seconds,
    clientCpu: clients / seconds,
    otherCpu: Math.max(0, (to.machineCpuSeconds - from.machineCpuSeconds - broker - clients) / seconds),
  };
}

/** A window's CPU with the figures of a broker that has stopped since (native and queue suites). */
export interface Resources {
  /** CPU over the measured window, as a share of one core (1 = one core busy). */
  brokerCpu: number;
  /** This process, every thread (the client workers and the orchestrating thread). */
  clientCpu: number;
  brokerRssBytes: number;
  brokerPeakRssBytes: number;
  brokerStartSeconds: number;
  brokerShutdownSeconds: number;
  brokerWarnings: number;
  brokerErrors: number;
}

export function resources(broker: BrokerProcess, from: Mark, to: Mark, stop: BrokerStop): Resources {
  const { brokerCpu, clientCpu } = cpuShares(from, to);
  return {
    brokerCpu,
    clientCpu,
    brokerRssBytes: stop.rssBytes,
    brokerPeakRssBytes: stop.peakRssBytes,
    brokerStartSeconds: broker.startSeconds,
    brokerShutdownSeconds: stop.shutdownSeconds,
    brokerWarnings: broker.warnings,
    brokerErrors: broker.errors,
  };
}

export function resourceNotes(r: Resources): string {
  return `broker CPU ${formatPercent(r.brokerCpu)}, clients CPU ${formatPercent(r.clientCpu)}; broker RSS ${formatMiB(r.brokerRssBytes)} (peak ${formatMiB(r.brokerPeakRssBytes)})`;
}

/**
 * One window's CPU and RSS, from the marks and the samples between them: no broker stop needed, so RabbitMQ has
 * them too (amqp suite).
 */
export interface WindowResources {
  seconds: number;
  brokerCpu: number;
  /** This process, every thread: the client workers and the orchestrating thread. */
  clientCpu: number;
  /**
   * Everything else on the machine: busy CPU of all processes minus broker and clients. The 2 cores are shared with
   * whatever else runs; more than a few percent here means the figures were disturbed.
   */
  otherCpu: number;
  brokerRssStartBytes: number;
  brokerRssEndBytes: number;
  /** Largest sampled RSS in the window (sampled every sampleIntervalMs). */
  brokerRssPeakBytes: number;
}

export function windowResources(broker: Sampled, from: Mark, to: Mark): WindowResources {
  let peak = Math.max(from.rssBytes, to.rssBytes);
  for (const sample of broker.samples) if (sample.time >= from.time && sample.time <= to.time) peak = Math.max(peak, sample.rssBytes);
  return { ...cpuShares(from, to), brokerRssStartBytes: from.rssBytes, brokerRssEndBytes: to.rssBytes, brokerRssPeakBytes: peak };
}

/** Other processes' CPU (share of one core) from which a window counts as disturbed. */
export const OTHER_CPU_WARNING = 0.1;

export function windowResourceNotes(r: WindowResources): string {
  return `broker CPU ${formatPercent(r.brokerCpu)}, clients CPU ${formatPercent(r.clientCpu)}${r.otherCpu >= OTHER_CPU_WARNING ? `, OTHER processes CPU ${formatPercent(r.otherCpu)}` : ''}, broker RSS peak ${formatMiB(r.brokerRssPeakBytes)}`;
}
