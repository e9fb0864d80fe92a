import type { RequestOf } from 'weir-protocol';
import { type LogEntry, RecordingLogger } from '../../src/core/logger.js';
import type { StartOptions } from '../../src/server/weir-server.js';
import { type AmqpBroker, startAmqpBroker } from '../support/amqp.js';
import { within } from '../support/within.js';

/** A logger that keeps what it is told and lets a test await a line. */
export class WatchingLogger extends RecordingLogger {
  private readonly watchers: Array<{ pattern: RegExp; resolve: (entry: LogEntry) => void }> = [];

  protected override record(entry: LogEntry): void {
    super.record(entry);
    for (const watcher of this.watchers.splice(0)) {
      if (watcher.pattern.test(entry.message)) watcher.resolve(entry);
      else this.watchers.push(watcher);
    }
  }

  /** The first line (already logged or to come) whose message matches; rejects naming `pattern` after `timeoutMs`. */
  async next(pattern: RegExp, timeoutMs = 10_000): Promise<LogEntry> {
    const seen = this.entries.find((entry) => pattern.test(entry.message));
    if (seen !== undefined) return seen;
    let watcher: { pattern: RegExp; resolve: (entry: LogEntry) => void } | undefined;
    const logged = new Promise<LogEntry>((resolve) => this.watchers.push((watcher = { pattern, resolve })));
    try {
      return await within(logged, `a log line matching ${pattern}`, timeoutMs);
    } finally {
      const index = this.watchers.indexOf(watcher!);
      if (index >= 0) this.watchers.splice(index, 1);
    }
  }
}

/** A broker in this process on free ports (native and AMQP), in a temp directory, logging to a watching logger. */
export async function startBroker(options: StartOptions): Promise<AmqpBroker & { logger: WatchingLogger }> {
  const logger = new WatchingLogger();
  return { ...(await startAmqpBroker({ ...options, logger })), logger };
}

export const topicConfig = { retentionMs: -1, retentionBytes: -1, flushPolicy: 'none', flushIntervalMs: 1000, maxMessageBytes: 1 << 20 };

export function message(body: Buffer): RequestOf<'Produce'>['messages'][number] {
  return { id: null, key: null, tag: null, headers: [], timestamp: -1, body };
}

/** Resolves once `condition` holds, checking on every turn of the event loop's timers (bounded by the test timeout). */
export async function until(condition: () => boolean | Promise<boolean>, everyMs = 20): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, everyMs));
}
