import { readFileSync } from 'node:fs';
import { STORED_PROPERTIES_ROOM_BYTES } from '../broker/vhost/virtual-hosts.js';
import { DEFAULT_MAX_BATCH_BYTES } from '../storage/disk-message-store.js';

/**
 * The broker's settings, resolved from (lowest to highest precedence) built-in defaults, a JSON config file,
 * `WEIR_*` environment variables, and command-line flags. Every setting and its variable are listed in
 * docs/configuration.md.
 */
export interface BrokerConfig {
  /** Where the commit log, indexes and metadata live. */
  dataDir: string;
  /** Address the native protocol listens on (`::` accepts IPv6 and IPv4). */
  host: string;
  /** Native protocol port; 0 picks a free one. */
  port: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** Largest frame accepted on the native protocol. */
  maxFrameBytes: number;
  /** Heartbeat interval offered to clients; a connection silent for 3 intervals is closed. */
  heartbeatMs: number;
  /** Connections each listener (native, AMQP) serves at once; more are answered with a refusal and closed. */
  maxConnections: number;
  /** A connection that has not completed its protocol handshake in this time is closed (slowloris). */
  handshakeTimeoutMs: number;
  /** Unsent output per connection above which deliveries stop being produced for it (the socket's high-water mark). */
  outputHighWaterMarkBytes: number;
  /** Unsent output per connection above which the connection is closed: a client that never reads. */
  maxOutputBytesPerConnection: number;
  /** Topics the native protocol's CreateTopic may create (0: no limit); AMQP queues count against maxQueuesPerVhost. */
  maxTopics: number;
  /** AMQP queues per virtual host (0: no limit), as RabbitMQ's vhost max-queues. */
  maxQueuesPerVhost: number;
  /** Requests a connection may have in flight before the broker stops reading from it. */
  maxInFlightPerConnection: number;
  /** Commit-log segment size. */
  segmentBytes: number;
  /** How often shared groups write their ack state: after kill -9, at most this much is delivered again. */
  ackFlushIntervalMs: number;
  /**
   * 1 records the message trace (deliveries, outcomes, dead letters, delays, transactions); 0 (default) does not:
   * two trace records per consumed message roughly halve shared-group throughput.
   */
  trace: number;
  /** How long trace records are kept. */
  traceRetentionMs: number;
  /** Broker-side dedup window for client-chosen message ids of non-idempotent producers. */
  dedupWindowMs: number;
  /** A transaction silent this long is checked with a live producer of its group. */
  transactionCheckAfterMs: number;
  /** Wait after an inconclusive check (doubles, capped at 5 minutes). */
  transactionCheckIntervalMs: number;
  /** Inconclusive checks before a transaction is rolled back. */
  transactionMaxChecks: number;
  /** AMQP 0-9-1 port (on `host`); 0 picks a free one. */
  amqpPort: number;
  /** Largest AMQP frame, offered in connection.tune (at least 4096). */
  amqpFrameMax: number;
  /** Most channels per AMQP connection. */
  amqpChannelMax: number;
  /** AMQP heartbeat offered in connection.tune, in seconds (0: none); the client's choice wins. */
  amqpHeartbeatSeconds: number;
  /** Largest AMQP message body accepted. */
  amqpMaxMessageBytes: number;
  /** Above this resident memory, publishing is paused (AMQP connections blocked, native produces refused); 0: 40% of the machine's memory. */
  memoryHighWatermarkBytes: number;
  /** Below this much free disk space in the data directory, publishing is paused as above. */
  diskFreeLimitBytes: number;
  /**
   * `weir serve` only (the process is the broker's): after a full garbage collection the JavaScript heap may grow by
   * this percentage of what survived before the next one; 0 leaves V8's own policy (up to 4×). Short-lived objects
   * that outlive a young-generation collection (messages waiting for an fsync) otherwise pile up between full
   * collections. Measured (docs/performance.md): at 150 a burst of 1M delayed publishes peaks at 235 MiB instead of
   * 271 MiB with shared-group throughput unchanged; at 50 it peaks at 194 MiB but full collections of a large
   * read-ahead cost a fifth of that throughput.
   */
  heapGrowthPercent: number;
}

export const defaultConfig: BrokerConfig = {
  dataDir: './data',
  host: '::',
  port: 7654,
  logLevel: 'info',
  maxFrameBytes: 16 * 1024 * 1024,
  heartbeatMs: 10_000,
  maxConnections: 10_000,
  handshakeTimeoutMs: 10_000,
  outputHighWaterMarkBytes: 64 * 1024,
  maxOutputBytesPerConnection: 64 * 1024 * 1024,
  maxTopics: 0,
  maxQueuesPerVhost: 0,
  maxInFlightPerConnection: 1024,
  segmentBytes: 1024 * 1024 * 1024,
  ackFlushIntervalMs: 1000,
  trace: 0,
  traceRetentionMs: 3 * 86_400_000,
  dedupWindowMs: 600_000,
  transactionCheckAfterMs: 60_000,
  transactionCheckIntervalMs: 10_000,
  transactionMaxChecks: 15,
  amqpPort: 5672,
  amqpFrameMax: 131_072,
  amqpChannelMax: 2047,
  amqpHeartbeatSeconds: 60,
  amqpMaxMessageBytes: 16 * 1024 * 1024,
  memoryHighWatermarkBytes: 0,
  diskFreeLimitBytes: 50_000_000,
  heapGrowthPercent: 150,
};

interface SettingSpec {
  key: keyof BrokerConfig;
  env: string;
  kind: 'string' | 'integer' | 'level';
  doc: string;
}

export const settings: readonly SettingSpec[] = [
  { key: 'dataDir', env: 'WEIR_DATA_DIR', kind: 'string', doc: 'Directory for the commit log, indexes and metadata.' },
  { key: 'host', env: 'WEIR_HOST', kind: 'string', doc: 'Listen address for the native protocol.' },
  { key: 'port', env: 'WEIR_PORT', kind: 'integer', doc: 'Native protocol port (0 picks a free port).' },
  { key: 'logLevel', env: 'WEIR_LOG_LEVEL', kind: 'level', doc: 'debug, info, warn, error or silent.' },
  { key: 'maxFrameBytes', env: 'WEIR_MAX_FRAME_BYTES', kind: 'integer', doc: 'Largest native-protocol frame accepted.' },
  { key: 'heartbeatMs', env: 'WEIR_HEARTBEAT_MS', kind: 'integer', doc: 'Heartbeat interval; silent connections are closed after 3.' },
  { key: 'maxConnections', env: 'WEIR_MAX_CONNECTIONS', kind: 'integer', doc: 'Connections served at once per listener; more are refused.' },
  { key: 'handshakeTimeoutMs', env: 'WEIR_HANDSHAKE_TIMEOUT_MS', kind: 'integer', doc: 'Time a new connection has to complete its handshake.' },
  { key: 'outputHighWaterMarkBytes', env: 'WEIR_OUTPUT_HIGH_WATER_MARK_BYTES', kind: 'integer', doc: 'Unsent bytes per connection above which deliveries pause.' },
  { key: 'maxOutputBytesPerConnection', env: 'WEIR_MAX_OUTPUT_BYTES_PER_CONNECTION', kind: 'integer', doc: 'Unsent bytes per connection above which it is closed.' },
  { key: 'maxTopics', env: 'WEIR_MAX_TOPICS', kind: 'integer', doc: 'Topics CreateTopic may create (0: no limit).' },
  { key: 'maxQueuesPerVhost', env: 'WEIR_MAX_QUEUES_PER_VHOST', kind: 'integer', doc: 'AMQP queues per virtual host (0: no limit).' },
  { key: 'maxInFlightPerConnection', env: 'WEIR_MAX_IN_FLIGHT', kind: 'integer', doc: 'Requests in flight per connection before reading pauses.' },
  { key: 'segmentBytes', env: 'WEIR_SEGMENT_BYTES', kind: 'integer', doc: 'Commit-log segment size in bytes.' },
  { key: 'ackFlushIntervalMs', env: 'WEIR_ACK_FLUSH_INTERVAL_MS', kind: 'integer', doc: 'How often shared groups write ack state (what kill -9 may redeliver).' },
  { key: 'trace', env: 'WEIR_TRACE', kind: 'integer', doc: '1 records the message trace, 0 turns it off.' },
  { key: 'traceRetentionMs', env: 'WEIR_TRACE_RETENTION_MS', kind: 'integer', doc: 'How long trace records are kept.' },
  { key: 'dedupWindowMs', env: 'WEIR_DEDUP_WINDOW_MS', kind: 'integer', doc: 'Dedup window for client-chosen message ids.' },
  { key: 'transactionCheckAfterMs', env: 'WEIR_TRANSACTION_CHECK_AFTER_MS', kind: 'integer', doc: 'Silence before an open transaction is checked with its producer group.' },
  { key: 'transactionCheckIntervalMs', env: 'WEIR_TRANSACTION_CHECK_INTERVAL_MS', kind: 'integer', doc: 'Wait after an inconclusive transaction check (doubling).' },
  { key: 'transactionMaxChecks', env: 'WEIR_TRANSACTION_MAX_CHECKS', kind: 'integer', doc: 'Inconclusive checks before a transaction is rolled back.' },
  { key: 'amqpPort', env: 'WEIR_AMQP_PORT', kind: 'integer', doc: 'AMQP 0-9-1 port (0 picks a free port).' },
  { key: 'amqpFrameMax', env: 'WEIR_AMQP_FRAME_MAX', kind: 'integer', doc: 'Largest AMQP frame offered in connection.tune.' },
  { key: 'amqpChannelMax', env: 'WEIR_AMQP_CHANNEL_MAX', kind: 'integer', doc: 'Most channels per AMQP connection.' },
  { key: 'amqpHeartbeatSeconds', env: 'WEIR_AMQP_HEARTBEAT_SECONDS', kind: 'integer', doc: 'AMQP heartbeat offered in connection.tune (0: none).' },
  { key: 'amqpMaxMessageBytes', env: 'WEIR_AMQP_MAX_MESSAGE_BYTES', kind: 'integer', doc: 'Largest AMQP message body accepted.' },
  { key: 'memoryHighWatermarkBytes', env: 'WEIR_MEMORY_HIGH_WATERMARK_BYTES', kind: 'integer', doc: 'Resident memory above which publishers are blocked (0: 40% of RAM).' },
  { key: 'diskFreeLimitBytes', env: 'WEIR_DISK_FREE_LIMIT_BYTES', kind: 'integer', doc: 'Free disk space below which publishers are blocked.' },
  { key: 'heapGrowthPercent', env: 'WEIR_HEAP_GROWTH_PERCENT', kind: 'integer', doc: 'weir serve: heap growth between full GCs, % of live data (0: V8 default).' },
];

/** The largest AMQP body a queue can store: one commit-log batch holds it with its properties and the batch's fields. */
export const MAX_AMQP_MESSAGE_BYTES = DEFAULT_MAX_BATCH_BYTES - STORED_PROPERTIES_ROOM_BYTES - 64 * 1024;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function coerce(spec: SettingSpec, value: unknown, source: string): unknown {
  if (spec.kind === 'integer') {
    const number = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isSafeInteger(number) || number < 0) throw new ConfigError(`${source}: ${spec.key} must be a non-negative integer, got ${JSON.stringify(value)}`);
    return number;
  }
  if (typeof value !== 'string' || value.length === 0) throw new ConfigError(`${source}: ${spec.key} must be a non-empty string, got ${JSON.stringify(value)}`);
  if (spec.kind === 'level' && !['debug', 'info', 'warn', 'error', 'silent'].includes(value)) {
    throw new ConfigError(`${source}: logLevel must be one of debug, info, warn, error, silent; got "${value}"`);
  }
  return value;
}

/** Resolves the configuration. `flags` holds only the flags the user gave. */
export function resolveConfig(flags: Partial<Record<keyof BrokerConfig, unknown>>, env: NodeJS.ProcessEnv, configFile?: string): BrokerConfig {
  const config: Record<string, unknown> = { ...defaultConfig };
  const path = configFile ?? env.WEIR_CONFIG;
  if (path) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`config file ${path} must hold a JSON object`);
    for (const [key, value] of Object.entries(parsed)) {
      const spec = settings.find((candidate) => candidate.key === key);
      if (!spec) throw new ConfigError(`config file ${path}: unknown setting "${key}"; known settings: ${settings.map((s) => s.key).join(', ')}`);
      config[key] = coerce(spec, value, `config file ${path}`);
    }
  }
  for (const spec of settings) {
    const value = env[spec.env];
    if (value !== undefined && value !== '') config[spec.key] = coerce(spec, value, `environment variable ${spec.env}`);
  }
  for (const spec of settings) {
    const value = flags[spec.key];
    if (value !== undefined) config[spec.key] = coerce(spec, value, `flag --${kebab(spec.key)}`);
  }
  for (const key of ['port', 'amqpPort'] as const) if ((config[key] as number) > 65535) throw new ConfigError(`${key} must be at most 65535, got ${String(config[key])}`);
  if ((config.amqpFrameMax as number) < 4096) throw new ConfigError(`amqpFrameMax must be at least 4096 (AMQP 0-9-1 §4.2.3), got ${String(config.amqpFrameMax)}`);
  if ((config.amqpChannelMax as number) < 1 || (config.amqpChannelMax as number) > 65535) throw new ConfigError(`amqpChannelMax must be 1 to 65535, got ${String(config.amqpChannelMax)}`);
  if ((config.amqpMaxMessageBytes as number) < 1 || (config.amqpMaxMessageBytes as number) > MAX_AMQP_MESSAGE_BYTES) {
    throw new ConfigError(`amqpMaxMessageBytes must be 1 to ${MAX_AMQP_MESSAGE_BYTES} (what one stored batch holds), got ${String(config.amqpMaxMessageBytes)}`);
  }
  if ((config.amqpHeartbeatSeconds as number) > 65535) throw new ConfigError(`amqpHeartbeatSeconds must be at most 65535, got ${String(config.amqpHeartbeatSeconds)}`);
  for (const key of ['maxConnections', 'handshakeTimeoutMs', 'outputHighWaterMarkBytes'] as const) {
    if ((config[key] as number) < 1) throw new ConfigError(`${key} must be at least 1, got ${String(config[key])}`);
  }
  if ((config.maxOutputBytesPerConnection as number) < (config.outputHighWaterMarkBytes as number)) {
    throw new ConfigError(`maxOutputBytesPerConnection (${String(config.maxOutputBytesPerConnection)}) must be at least outputHighWaterMarkBytes (${String(config.outputHighWaterMarkBytes)})`);
  }
  if ((config.heapGrowthPercent as number) > 400) throw new ConfigError(`heapGrowthPercent must be 0 to 400, got ${String(config.heapGrowthPercent)}`);
  if (config.trace !== 0 && config.trace !== 1) throw new ConfigError(`trace must be 0 or 1, got ${String(config.trace)}`);
  for (const key of ['ackFlushIntervalMs', 'dedupWindowMs', 'transactionCheckAfterMs', 'transactionCheckIntervalMs', 'transactionMaxChecks', 'traceRetentionMs'] as const) {
    if ((config[key] as number) < 1) throw new ConfigError(`${key} must be at least 1, got ${String(config[key])}`);
  }
  return config as unknown as BrokerConfig;
}

export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}
