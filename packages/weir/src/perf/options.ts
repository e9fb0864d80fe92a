/**
 * `weir perf` parameters: the scenarios, what each option means, and the validation that turns a command line into
 * a complete, consistent PerfParameters (or a PerfUsageError that says what to fix).
 */

export const SCENARIOS = ['produce', 'consume', 'e2e', 'backlog', 'fanout', 'queues'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export const SCENARIO_DESCRIPTIONS: Record<Scenario, string> = {
  produce: 'producers only: acknowledged messages per second and the acknowledgement latency',
  consume: 'a backlog of --count messages is written first (the fill phase), then consumers read all of it',
  e2e: 'producers and consumers at once: delivery throughput and end-to-end latency (send to delivery)',
  backlog: 'producers write --count messages while no one reads, then consumers drain them; broker memory over both',
  fanout: 'every message to each of --consumers subscribers (a consumer without a group each; AMQP: a fanout exchange)',
  queues: 'work queues: shared groups with one ack per message and --prefetch (AMQP: queues with basic.ack)',
};

export type Protocol = 'native' | 'amqp';
export type AckMode = 'none' | 'written' | 'durable';

/** A command line that cannot run: the message says what to change. */
export class PerfUsageError extends Error {}

/** Options as typed on the command line; absent ones take the defaults below. */
export interface RawPerfOptions {
  protocol?: string;
  broker?: string;
  amqpUrl?: string;
  size?: string;
  count?: string;
  duration?: string;
  warmup?: string;
  producers?: string;
  consumers?: string;
  partitions?: string;
  queues?: string;
  acks?: string;
  autoAck?: boolean;
  batch?: string;
  window?: string;
  prefetch?: string;
  linger?: string;
  rate?: string;
  json?: string;
  brokerPid?: string;
  brokerDataDir?: string;
}

export interface PerfParameters {
  scenario: Scenario;
  protocol: Protocol;
  /** host:port of the native listener (native), or the AMQP URL with any password hidden (amqp). */
  target: string;
  /** Body bytes of every message. */
  messageBytes: number;
  /** Messages the producers send in all, or null for a timed run. */
  count: number | null;
  /** Measured seconds of a timed run (after the warm-up), or null for a counted run. */
  durationSeconds: number | null;
  warmupSeconds: number;
  producers: number;
  /** Consumers per queue or topic (fanout: subscribers). Zero in the produce scenario. */
  consumers: number;
  /** Partitions of each topic (native). */
  partitions: number;
  /** Topics (native) or queues (AMQP) that producers spread their messages over. */
  queues: number;
  acks: AckMode;
  /** AMQP consumers without acknowledgements (noAck); otherwise every delivery is acknowledged on its own. */
  autoAck: boolean;
  /** Messages per send call. */
  batch: number;
  /** Most unacknowledged messages per producer in a closed-loop run. */
  window: number;
  /** Unacknowledged deliveries per work-queue or AMQP consumer. */
  prefetch: number;
  /** Producer linger in ms (native), or null for the client's default. */
  lingerMs: number | null;
  /** Messages per second over all producers (fixed-rate run, latencies from intended send times), or null. */
  rate: number | null;
}

/** Smallest body: the first 8 bytes carry the (intended) send time on the monotonic clock. */
export const MIN_MESSAGE_BYTES = 8;
/** Messages of a counted run when --count is not given: the consume scenario's backlog, and the backlog scenario's. */
export const DEFAULT_COUNT = { consume: 100_000, backlog: 1_000_000 } as const;
export const DEFAULT_DURATION_SECONDS = 10;
export const DEFAULT_AMQP_URL = 'amqp://guest:guest@localhost:5672';

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2 };

/** `100`, `1k`, `4KiB`, `1m` → bytes (k and m are binary: 1k = 1024). */
export function parseSize(name: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match === null ? undefined : SIZE_UNITS[match[2]!.toLowerCase()];
  if (match === null || unit === undefined) throw new PerfUsageError(`${name} must be a size in bytes such as 100, 1k or 64KiB, got "${text}"`);
  const bytes = Number(match[1]) * unit;
  if (!Number.isSafeInteger(bytes)) throw new PerfUsageError(`${name} must be a whole number of bytes, got "${text}"`);
  return bytes;
}

const TIME_UNITS: Record<string, number> = { '': 1, ms: 0.001, s: 1, m: 60, min: 60, h: 3600 };

/** `10`, `10s`, `500ms`, `2m` → seconds. */
export function parseDuration(name: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match === null ? undefined : TIME_UNITS[match[2]!.toLowerCase()];
  if (match === null || unit === undefined) throw new PerfUsageError(`${name} must be a duration such as 30s, 500ms or 2m, got "${text}"`);
  return Number(match[1]) * unit;
}

/** A whole number of at least `minimum`; `1_000_000` and `1,000,000` are accepted. */
export function parseCount(name: string, text: string, minimum = 1): number {
  const cleaned = text.trim().replaceAll('_', '').replaceAll(',', '');
  const value = /^\d+$/.test(cleaned) ? Number(cleaned) : NaN;
  if (!Number.isSafeInteger(value) || value < minimum) throw new PerfUsageError(`${name} must be a whole number of at least ${minimum}, got "${text}"`);
  return value;
}

function oneOf<T extends string>(name: string, text: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(text)) throw new PerfUsageError(`${name} must be ${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}, got "${text}"`);
  return text as T;
}

/** The AMQP URL as reports show it: the password replaced, so a report can be shared. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

/** A run as `weir perf` was asked for it: the measured parameters and where results and samples come from. */
export interface PerfSettings {
  parameters: PerfParameters;
  /** The AMQP URL to connect to, credentials included (reports show parameters.target instead). */
  amqpUrl: string | null;
  /** Where to write the JSON report, or null. */
  jsonPath: string | null;
  /** The broker's process id, to sample its CPU and RSS from /proc; null when not known. */
  brokerPid: number | null;
  /** The broker's data directory, for the filesystem in the report; null when not known. */
  brokerDataDir: string | null;
}

/**
 * Checks a command line against the scenario and protocol and fills in the defaults. `env` supplies
 * WEIR_SERVER / WEIR_AMQP_URL for the broker addresses.
 */
export function resolvePerfOptions(scenarioText: string, raw: RawPerfOptions, env: Record<string, string | undefined> = {}): PerfSettings {
  const scenario = oneOf('the scenario', scenarioText, SCENARIOS);
  const protocol = oneOf('--protocol', raw.protocol ?? 'native', ['native', 'amqp'] as const);
  const native = protocol === 'native';
  const given = (key: keyof RawPerfOptions): boolean => raw[key] !== undefined && raw[key] !== false;
  const flag = (key: keyof RawPerfOptions): string => `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
  const nativeOnly = (key: keyof RawPerfOptions, why: string): void => {
    if (!native && given(key)) throw new PerfUsageError(`${flag(key)} applies to --protocol native only: ${why}`);
  };
  nativeOnly('broker', 'use --amqp-url to point at an AMQP broker');
  nativeOnly('partitions', 'an AMQP queue has no partitions (use --queues to spread messages over several)');
  nativeOnly('linger', 'amqplib publishes at once');
  if (native && given('amqpUrl')) throw new PerfUsageError('--amqp-url applies to --protocol amqp only: use --broker host:port for the native protocol');
  if (native && raw.autoAck === true) throw new PerfUsageError('--auto-ack applies to --protocol amqp only: native stream consumers never acknowledge, and work-queue consumers always do');

  if (given('count') && given('duration')) throw new PerfUsageError('give either --count or --duration, not both');
  const counted = scenario === 'consume' || scenario === 'backlog';
  if (counted && given('duration')) throw new PerfUsageError(`the ${scenario} scenario reads a backlog of --count messages; it takes no --duration`);
  if (counted && given('rate')) throw new PerfUsageError(`the ${scenario} scenario writes its backlog as fast as it can; it takes no --rate`);
  const count = given('count') ? parseCount('--count', raw.count!) : scenario === 'consume' || scenario === 'backlog' ? DEFAULT_COUNT[scenario] : null;
  const durationSeconds = count !== null ? null : given('duration') ? parseDuration('--duration', raw.duration!) : DEFAULT_DURATION_SECONDS;
  if (durationSeconds !== null && durationSeconds <= 0) throw new PerfUsageError(`--duration must be more than zero, got "${raw.duration}"`);
  if (given('warmup') && durationSeconds === null) throw new PerfUsageError('--warmup applies to timed runs (--duration); a --count run measures every message');
  const warmupSeconds = given('warmup') ? parseDuration('--warmup', raw.warmup!) : 0;

  const messageBytes = given('size') ? parseSize('--size', raw.size!) : 100;
  if (messageBytes < MIN_MESSAGE_BYTES) throw new PerfUsageError(`--size must be at least ${MIN_MESSAGE_BYTES} bytes (each body carries its send time), got "${raw.size}"`);

  const producers = given('producers') ? parseCount('--producers', raw.producers!) : 1;
  if (scenario === 'produce' && given('consumers')) throw new PerfUsageError('the produce scenario runs no consumers: use e2e to produce and consume at once');
  if (scenario === 'produce' && (given('prefetch') || raw.autoAck === true)) throw new PerfUsageError('the produce scenario runs no consumers: --prefetch and --auto-ack do not apply');
  const consumers = scenario === 'produce' ? 0 : given('consumers') ? parseCount('--consumers', raw.consumers!) : scenario === 'fanout' ? 4 : 1;
  const partitions = given('partitions') ? parseCount('--partitions', raw.partitions!) : 8;
  if (partitions > 10_000) throw new PerfUsageError(`--partitions must be at most 10,000, got ${partitions}`);
  if (scenario === 'fanout' && given('queues')) throw new PerfUsageError('the fanout scenario sends to one topic (AMQP: one fanout exchange); --queues does not apply');
  const queues = given('queues') ? parseCount('--queues', raw.queues!) : 1;

  const acks = given('acks') ? oneOf('--acks', raw.acks!, ['none', 'written', 'durable'] as const) : 'durable';
  if (!native && acks === 'written') throw new PerfUsageError('--acks written is a native-protocol mode; over AMQP use none (no publisher confirms) or durable (confirms)');
  const batch = given('batch') ? parseCount('--batch', raw.batch!) : 1;
  const window = given('window') ? parseCount('--window', raw.window!) : native ? 10_000 : 1_000;
  if (batch > window) throw new PerfUsageError(`--batch (${batch}) cannot be larger than --window (${window}): a batch must fit in the unacknowledged window`);
  const prefetch = given('prefetch') ? parseCount('--prefetch', raw.prefetch!) : 1_000;
  if (prefetch > 65_535 && !native) throw new PerfUsageError(`--prefetch must be at most 65,535 over AMQP (basic.qos is 16-bit), got ${prefetch}`);

  let lingerMs: number | null = null;
  if (given('linger')) {
    lingerMs = Number(raw.linger);
    if (!/^\d+(\.\d+)?$/.test(raw.linger!.trim()) || !Number.isFinite(lingerMs)) throw new PerfUsageError(`--linger must be a number of milliseconds (0 or more), got "${raw.linger}"`);
  }
  let rate: number | null = null;
  if (given('rate')) {
    rate = parseCount('--rate', raw.rate!);
    if (given('batch')) throw new PerfUsageError('--batch applies to closed-loop runs: a --rate run sends each message at its own scheduled time');
    if (given('window')) throw new PerfUsageError('--window applies to closed-loop runs: a --rate run never waits for acknowledgements before sending');
    if (rate < producers) throw new PerfUsageError(`--rate (${rate} msg/s over all producers) must be at least one message per second per producer (--producers ${producers})`);
  }

  const amqpUrl = native ? null : (raw.amqpUrl ?? env.WEIR_AMQP_URL ?? DEFAULT_AMQP_URL);
  if (amqpUrl !== null && !/^amqps?:\/\//.test(amqpUrl)) throw new PerfUsageError(`--amqp-url must be an amqp:// or amqps:// URL, e.g. ${DEFAULT_AMQP_URL}, got "${amqpUrl}"`);
  const target = amqpUrl === null ? (raw.broker ?? env.WEIR_SERVER ?? 'localhost:7654') : redactUrl(amqpUrl);
  if (native && !/^[^\s:]+:\d+$|^\[[0-9a-f:]+\]:\d+$/i.test(target)) throw new PerfUsageError(`--broker must be host:port, e.g. localhost:7654, got "${target}"`);
  if (given('json') && raw.json!.trim() === '') throw new PerfUsageError('--json needs a file name');
  const brokerPid = given('brokerPid') ? parseCount('--broker-pid', raw.brokerPid!, 1) : null;
  const parameters: PerfParameters = {
    scenario,
    protocol,
    target,
    messageBytes,
    count,
    durationSeconds,
    warmupSeconds,
    producers,
    consumers,
    partitions,
    queues,
    acks,
    autoAck: raw.autoAck === true,
    batch,
    window,
    prefetch,
    lingerMs,
    rate,
  };
  return { parameters, amqpUrl, jsonPath: raw.json ?? null, brokerPid, brokerDataDir: raw.brokerDataDir ?? null };
}
