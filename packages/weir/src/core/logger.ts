/**
 * The logging surface the core needs. pino's logger satisfies it; tests pass `silentLogger` or a recorder.
 * Log one line per connection or admin event, never one per message.
 */
export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
  child?(fields: object): Logger;
}

const ignore = (): void => {};
export const silentLogger: Logger = { debug: ignore, info: ignore, warn: ignore, error: ignore };

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  fields: object;
  message: string;
}

/** Keeps every line in memory, for tests that assert what was reported. */
export class RecordingLogger implements Logger {
  readonly entries: LogEntry[] = [];
  debug(fields: object, message: string): void {
    this.record({ level: 'debug', fields, message });
  }
  info(fields: object, message: string): void {
    this.record({ level: 'info', fields, message });
  }
  warn(fields: object, message: string): void {
    this.record({ level: 'warn', fields, message });
  }
  error(fields: object, message: string): void {
    this.record({ level: 'error', fields, message });
  }
  /** Every line passes here, so a subclass can react to one as it is logged. */
  protected record(entry: LogEntry): void {
    this.entries.push(entry);
  }
}
