/**
 * The brokers the amqp suite compares, behind one interface: Weir (`weir serve --amqp-port`, through BrokerProcess),
 * RabbitMQ (a node of its own per broker entry, through RabbitMqProcess) with quorum or classic queues, and the null
 * broker that measures the clients' floor (bench/amqp-null-broker.ts, through BrokerProcess). The suite
 * starts each (amqp.ts says when); every workload declares a queue of its own on it and deletes it afterwards.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { BrokerProcess, buildBroker, type Code, type ProcessSample } from './broker-process.js';
import { type ServerInfo, waitForAmqp } from './amqp-client.js';
import { ensureRabbitMqInstalled, freePorts, isAlive, RabbitMqProcess, rabbitMqPackageVersion } from './rabbitmq.js';
import { errorText, formatNumber, now, repoRoot } from './report.js';

export const BROKER_NAMES = ['weir', 'rabbitmq-quorum', 'rabbitmq-classic', 'floor'] as const;
export type BrokerName = (typeof BROKER_NAMES)[number];

export interface BrokerStopInfo {
  shutdownSeconds: number;
  /** Did not stop on its own and was killed. */
  killed: boolean;
}

export interface Broker {
  name: BrokerName;
  /** amqp://guest:guest@127.0.0.1:<port> */
  url: string;
  /** What the broker said it is in connection.start, and how it was started. */
  server: ServerInfo;
  setup: string;
  startSeconds: number;
  /** Arguments of every queue.declare (the queue type); all queues are durable. */
  queueArguments: Record<string, unknown>;
  /** The directory holding its data (for the size of a backlog on disk). */
  dataDir: string;
  /** RSS and CPU samples (every sampleIntervalMs), oldest first; for RabbitMQ summed over beam.smp's process tree. */
  samples: readonly ProcessSample[];
  sample(): ProcessSample | null;
  alive(): boolean;
  /** What the broker left behind when something failed: the tail of its log or stderr. */
  diagnostics(): string;
  stop(): Promise<BrokerStopInfo>;
}

export interface BrokerOptions {
  code: Code;
  sampleIntervalMs: number;
  log: (text: string) => void;
}

/** Seconds a broker may take from spawn to its first AMQP handshake. */
const AMQP_READY_SECONDS = 60;
/** Weir's AMQP port (and the null broker's) must answer soon after the process said it listens. */
const WEIR_AMQP_READY_SECONDS = 15;

export async function startBroker(name: BrokerName, options: BrokerOptions): Promise<Broker> {
  if (name === 'weir') return startWeir(options);
  if (name === 'floor') return startFloor(options);
  return startRabbitMq(name, options);
}

let weirBuilt = false;

async function startWeir(options: BrokerOptions): Promise<Broker> {
  if (options.code === 'dist' && !weirBuilt) {
    options.log('weir: building the broker (tsc -b) …');
    const seconds = buildBroker();
    weirBuilt = true;
    options.log(`weir: built in ${formatNumber(seconds, 1)} s`);
  }
  const began = now();
  const dataDir = await mkdtemp(join(os.tmpdir(), 'weir-bench-amqp-'));
  const [amqpPort] = (await freePorts(1)) as [number];
  let broker: BrokerProcess;
  try {
    broker = await BrokerProcess.start({
      code: options.code,
      dataDir,
      label: 'weir',
      profileDir: null,
      sampleIntervalMs: options.sampleIntervalMs,
      log: options.log,
      extraArgs: ['--amqp-port', String(amqpPort)],
    });
  } catch (error) {
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  const url = `amqp://guest:guest@127.0.0.1:${amqpPort}`;
  let server: ServerInfo;
  try {
    server = await waitForAmqp(url, WEIR_AMQP_READY_SECONDS, () => (isAlive(broker.pid) ? null : 'weir serve exited while its AMQP port was awaited'));
  } catch (error) {
    broker.kill();
    await rm(dataDir, { recursive: true, force: true });
    throw new Error(`weir serve started (native port ${broker.port}) but its AMQP port ${amqpPort} never answered: ${errorText(error)}`);
  }
  // Until the AMQP port answered, as for RabbitMQ.
  const startSeconds = now() - began;
  return {
    name: 'weir',
    url,
    server,
    setup: `weir serve --amqp-port ${amqpPort} (${options.code === 'dist' ? 'compiled' : 'sources through tsx'}), data in a fresh temporary directory, log level warn`,
    startSeconds,
    queueArguments: {},
    dataDir,
    ...processBroker(broker, () => rm(dataDir, { recursive: true, force: true })),
  };
}

let rabbitInstalled = false;

async function startRabbitMq(name: Exclude<BrokerName, 'weir' | 'floor'>, options: BrokerOptions): Promise<Broker> {
  if (!rabbitInstalled) {
    ensureRabbitMqInstalled();
    rabbitInstalled = true;
  }
  const node = await RabbitMqProcess.start({ label: name, sampleIntervalMs: options.sampleIntervalMs, startTimeoutSeconds: AMQP_READY_SECONDS });
  const type = name === 'rabbitmq-quorum' ? 'quorum' : 'classic';
  return {
    name,
    url: node.url,
    server: node.server,
    setup:
      `Debian rabbitmq-server ${rabbitMqPackageVersion() ?? '?'} started in the foreground (node weirbench@localhost, own epmd, loopback only, ` +
      `no plugins, data and log in a fresh temporary directory, all other settings default); queues x-queue-type ${type}`,
    startSeconds: node.startSeconds,
    queueArguments: { 'x-queue-type': type },
    dataDir: join(node.dir, 'mnesia'),
    samples: node.samples,
    sample: () => node.sample(),
    alive: () => node.alive(),
    diagnostics: () => node.logTail(20),
    async stop() {
      const stop = await node.stop();
      return { shutdownSeconds: stop.shutdownSeconds, killed: stop.killed };
    },
  };
}

/**
 * The null broker (amqp-null-broker.ts): queues in memory, no disk, confirms at once. What the clients reach against
 * it is the most any broker could reach with them on this machine, the bound on every other column.
 */
async function startFloor(options: BrokerOptions): Promise<Broker> {
  const began = now();
  const broker = await BrokerProcess.start({
    code: options.code,
    dataDir: null,
    label: 'floor',
    profileDir: null,
    sampleIntervalMs: options.sampleIntervalMs,
    log: options.log,
    command: ['--import', 'tsx', join(repoRoot, 'bench/amqp-null-broker.ts')],
  });
  const url = `amqp://guest:guest@127.0.0.1:${broker.port}`;
  let server: ServerInfo;
  try {
    server = await waitForAmqp(url, WEIR_AMQP_READY_SECONDS, () => (isAlive(broker.pid) ? null : 'the null broker exited'));
  } catch (error) {
    broker.kill();
    throw error;
  }
  return {
    name: 'floor',
    url,
    server: { product: server.product, version: 'in memory, no disk' },
    setup: 'bench/amqp-null-broker.ts: queues as arrays in memory, nothing on disk, a publish confirmed as soon as it is read — what the clients alone reach on this machine',
    startSeconds: now() - began,
    queueArguments: {},
    // Nothing on disk: the backlog workload's size on disk reads as 0.
    dataDir: '/nonexistent',
    ...processBroker(broker, async () => {}),
  };
}

/** What a broker run through BrokerProcess answers: its samples, liveness, log summary and stop (then `cleanUp`). */
function processBroker(broker: BrokerProcess, cleanUp: () => Promise<void>): Pick<Broker, 'samples' | 'sample' | 'alive' | 'diagnostics' | 'stop'> {
  return {
    samples: broker.samples,
    sample: () => broker.sample(),
    // Not through sample(): that would sample the process more often than RabbitMQ's, and peaks would not compare.
    alive: () => isAlive(broker.pid),
    diagnostics: () => broker.logSummary,
    async stop() {
      const stop = await broker.stop();
      await cleanUp();
      return { shutdownSeconds: stop.shutdownSeconds, killed: stop.killed };
    },
  };
}
