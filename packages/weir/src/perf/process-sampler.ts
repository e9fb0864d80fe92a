/**
 * CPU time and RSS of a process, read from /proc (Linux): the broker's during a run when its pid is known. The
 * sampler keeps a timeline, so a report can show memory over a backlog run, and CPU between any two samples.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { resolve } from 'node:path';

/** Kernel clock ticks per second, the unit of CPU times in /proc. */
export const CLOCK_TICKS = (() => {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return Number.isFinite(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
})();

export interface ProcessSample {
  /** Seconds, from performance.now(). */
  time: number;
  rssBytes: number;
  /** The kernel's high-water mark of RSS (VmHWM). */
  peakRssBytes: number;
  /** User + system CPU seconds of the whole process (every thread). */
  cpuSeconds: number;
}

/** Reads RSS and CPU time of a live process from /proc; null once it has gone (or where there is no /proc). */
export function sampleProcess(pid: number): ProcessSample | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    // Fields after "(comm)": state is field 3, utime 14 and stime 15 (proc(5)).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[14 - 3]) + Number(fields[15 - 3]);
    return { time: performance.now() / 1000, rssBytes: kib('VmRSS'), peakRssBytes: kib('VmHWM'), cpuSeconds: ticks / CLOCK_TICKS };
  } catch {
    return null;
  }
}

/**
 * The data directory a `weir serve` process was started with (`--data-dir`, resolved against its working
 * directory), or null when its command line does not say.
 */
export function brokerDataDir(pid: number): string | null {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    let dir: string | undefined;
    for (let index = 0; index < args.length; index++) {
      const arg = args[index]!;
      if (arg === '--data-dir') dir = args[index + 1];
      else if (arg.startsWith('--data-dir=')) dir = arg.slice('--data-dir='.length);
    }
    if (dir === undefined || dir === '') return null;
    return resolve(readlinkSync(`/proc/${pid}/cwd`), dir);
  } catch {
    return null;
  }
}

/** Samples one process every `intervalMs` until stopped. */
export class ProcessSampler {
  readonly samples: ProcessSample[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    readonly pid: number,
    private readonly intervalMs: number,
  ) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  /** Samples now and keeps the sample; null when the process is gone. */
  sample(): ProcessSample | null {
    const sample = sampleProcess(this.pid);
    if (sample !== null) this.samples.push(sample);
    return sample;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.sample();
  }
}
