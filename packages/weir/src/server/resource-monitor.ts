import { statfs } from 'node:fs/promises';
import { totalmem } from 'node:os';
import type { Logger } from '../core/logger.js';

export interface ResourceLimits {
  /** Resident memory above which publishing is blocked; 0: 40% of the machine's memory (RabbitMQ's default). */
  memoryHighWatermarkBytes: number;
  /** Free space in the data directory's filesystem below which publishing is blocked. */
  diskFreeLimitBytes: number;
}

const MiB = 1024 * 1024;

/**
 * Watches the broker's memory and the data directory's free space. When either crosses its watermark, publishers are
 * blocked (the listeners apply it per protocol) and consumers keep draining, so the broker slows its producers
 * instead of growing until the process dies or the disk fills. Checked once a second and on demand.
 */
export class ResourceMonitor {
  private reason: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<(reason: string | null) => void>();
  private limits: ResourceLimits;

  constructor(
    private readonly dataDir: string | null,
    limits: ResourceLimits,
    private readonly logger: Logger,
    private readonly sample: () => Promise<{ rss: number; diskFree: number | null }> = async () => ({
      rss: process.memoryUsage.rss(),
      diskFree: dataDir === null ? null : await statfs(dataDir).then((stats) => stats.bavail * stats.bsize, () => null),
    }),
  ) {
    this.limits = limits;
  }

  start(intervalMs = 1000): void {
    this.timer = setInterval(() => void this.check(), intervalMs);
    this.timer.unref();
    void this.check();
  }

  /** Null while publishing is allowed, else which watermark is crossed and by how much. */
  get blockedReason(): string | null {
    return this.reason;
  }

  onChange(listener: (reason: string | null) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  setLimits(limits: Partial<ResourceLimits>): Promise<void> {
    this.limits = { ...this.limits, ...limits };
    return this.check();
  }

  get memoryWatermark(): number {
    return this.limits.memoryHighWatermarkBytes > 0 ? this.limits.memoryHighWatermarkBytes : Math.floor(totalmem() * 0.4);
  }

  async check(): Promise<void> {
    const { rss, diskFree } = await this.sample();
    let reason: string | null = null;
    if (rss > this.memoryWatermark) reason = `memory: resident ${(rss / MiB).toFixed(0)} MiB is above the high watermark of ${(this.memoryWatermark / MiB).toFixed(0)} MiB`;
    else if (diskFree !== null && diskFree < this.limits.diskFreeLimitBytes) {
      reason = `disk: ${(diskFree / MiB).toFixed(0)} MiB free is below the limit of ${(this.limits.diskFreeLimitBytes / MiB).toFixed(0)} MiB`;
    }
    if (reason === this.reason || (reason !== null && this.reason !== null && reason.split(':')[0] === this.reason.split(':')[0])) return;
    this.reason = reason;
    if (reason !== null) this.logger.warn({ reason }, 'resource alarm: blocking publishers');
    else this.logger.info({}, 'resource alarm cleared: publishers may go on');
    for (const listener of this.listeners) listener(reason);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
