/**
 * A RabbitMQ node for the amqp suite, started the way BrokerProcess starts `weir serve`: a child process of this one,
 * in the foreground, with everything it writes in a temporary directory, listening on loopback only, on free ports
 * (so a packaged node on 5672, or a second run, cannot collide), its CPU and RSS sampled from /proc, and stopped
 * completely at the end, also when the run fails or is interrupted. Linux only (/proc), Debian's rabbitmq-server
 * package (scripts/install-rabbitmq.sh installs it).
 *
 * The node is `weirbench@localhost`. Its own epmd runs as a second child in the foreground on a port of its own, and
 * the node is told not to start one (`-start_epmd false`): an epmd started by the node daemonizes, outlives it and
 * would hold a port after the run.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ProcessSample, sampleProcess } from './broker-process.js';
import { type ServerInfo, waitForAmqp } from './amqp-client.js';
import { errorText, now, repoRoot } from './report.js';

const SERVER_SCRIPT = '/usr/lib/rabbitmq/bin/rabbitmq-server';
const NODE_NAME = 'weirbench@localhost';

/** Runs scripts/install-rabbitmq.sh (a no-op once the package is there); its progress goes to stderr. */
export function ensureRabbitMqInstalled(): void {
  const script = join(repoRoot, 'scripts/install-rabbitmq.sh');
  try {
    execFileSync(script, [], { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (error) {
    throw new Error(`${script} failed: ${errorText(error)}`);
  }
  if (!existsSync(SERVER_SCRIPT)) throw new Error(`${SERVER_SCRIPT} is missing after installing rabbitmq-server`);
}

/** The installed package's version (what the node reports as `version` too). */
export function rabbitMqPackageVersion(): string | null {
  try {
    return execFileSync('dpkg-query', ['-W', '-f=${Version}', 'rabbitmq-server'], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

// ---- the process tree ---------------------------------------------------------------------------------------------

/**
 * `root` and every process below it. The tree is walked through /proc rather than killed as a process group:
 * erl_child_setup and the helpers it starts (inet_gethost, the disk monitor's shell) each get a session of their own.
 */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // Fields after "(comm)": state, then ppid (proc(5)).
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const siblings = children.get(ppid);
    if (siblings === undefined) children.set(ppid, [Number(name)]);
    else siblings.push(Number(name));
  }
  const tree: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

function killPids(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

// ---- cleanup on early exit ------------------------------------------------------------------------------------------

/**
 * What to kill if this process exits or is interrupted before a node is stopped: the node's tree, its epmd and its
 * directory. Registered from the moment epmd is spawned, so an interrupted start leaves nothing behind either.
 */
const cleanups = new Set<() => void>();
let exitHookInstalled = false;

function runCleanups(): void {
  for (const cleanup of cleanups) cleanup();
  cleanups.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', runCleanups);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`[bench] ${signal}: stopping RabbitMQ\n`);
      runCleanups();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}

// ---- the node -------------------------------------------------------------------------------------------------------

export interface RabbitMqStartOptions {
  label: string;
  sampleIntervalMs: number;
  /** Most seconds to wait for the node to accept AMQP connections. */
  startTimeoutSeconds: number;
}

export interface RabbitMqStop {
  rssBytes: number;
  peakRssBytes: number;
  shutdownSeconds: number;
  /** Had to be killed: it did not stop within 30 s of SIGTERM. */
  killed: boolean;
  exitCode: number | null;
}

export class RabbitMqProcess {
  /** Summed over the node's process tree: RSS and CPU of beam.smp and its helpers. */
  readonly samples: ProcessSample[] = [];
  private readonly timer: NodeJS.Timeout;
  private stopped = false;
  /** The tree as last sampled: if the start script dies first, beam.smp is re-parented away from it but still ours. */
  private lastTree: number[] = [];

  private constructor(
    private readonly node: ChildProcess,
    private readonly epmd: ChildProcess,
    private readonly exited: Promise<number | null>,
    readonly dir: string,
    readonly port: number,
    readonly startSeconds: number,
    /** What the node said it is in connection.start. */
    readonly server: ServerInfo,
    options: RabbitMqStartOptions,
  ) {
    this.timer = setInterval(() => this.sample(), options.sampleIntervalMs);
    this.timer.unref();
    this.sample();
    cleanups.add(this.cleanup);
  }

  private readonly cleanup = (): void => this.kill();

  static async start(options: RabbitMqStartOptions): Promise<RabbitMqProcess> {
    installExitHook();
    const began = now();
    const dir = await mkdtemp(join(os.tmpdir(), 'weir-bench-rabbitmq-'));
    const ports = await freePorts(3);
    const [amqpPort, distPort, epmdPort] = ports as [number, number, number];
    const config = join(dir, 'rabbitmq.conf');
    await writeFile(
      config,
      [
        `listeners.tcp.1 = 127.0.0.1:${amqpPort}`,
        // The file log is what a failed start shows; the console would only repeat it.
        'log.console = false',
        'log.file.level = info',
        '',
      ].join('\n'),
    );
    // An empty plugin list: no management plugin (its stats collection costs CPU the measurement would include).
    await writeFile(join(dir, 'enabled_plugins'), '[].\n');
    // Stands in for /etc/rabbitmq/rabbitmq-env.conf, so a machine's own settings there cannot leak in.
    await writeFile(join(dir, 'rabbitmq-env.conf'), '');

    // From here on, an interrupted or failed start must not leave epmd, the node or the directory behind.
    let node: ChildProcess | null = null;
    const epmd = spawn('epmd', ['-port', String(epmdPort), '-address', '127.0.0.1'], { stdio: 'ignore' });
    // A spawn that fails (no epmd binary) emits 'error' and may never emit 'exit'.
    const epmdExited = new Promise<void>((resolve) => {
      epmd.once('exit', () => resolve());
      epmd.once('error', () => resolve());
    });
    const emergency = (): void => {
      if (node?.pid !== undefined) killPids(processTree(node.pid), 'SIGKILL');
      epmd.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    };
    cleanups.add(emergency);
    const output = { tail: '' };
    const failStart = async (reason: string): Promise<never> => {
      const log = logTail(dir);
      const text = `${options.label}: ${reason}${log ? `\nlast lines of the RabbitMQ log:\n${log}` : ''}${output.tail ? `\nits output:\n${output.tail.slice(-2000)}` : ''}`;
      cleanups.delete(emergency);
      emergency();
      await epmdExited;
      throw new Error(text);
    };
    try {
      await waitForPort(epmdPort, 5);
    } catch (error) {
      return failStart(`epmd did not listen on port ${epmdPort}: ${errorText(error)}`);
    }
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      LANG: 'C.UTF-8',
      // The Erlang cookie is written to $HOME: keep it in the temporary directory too.
      HOME: dir,
      RABBITMQ_NODENAME: NODE_NAME,
      RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(dir, 'log'),
      RABBITMQ_CONFIG_FILE: config,
      RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
      RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
      RABBITMQ_DIST_PORT: String(distPort),
      ERL_EPMD_PORT: String(epmdPort),
      ERL_EPMD_ADDRESS: '127.0.0.1',
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false',
    };
    // Detached: a group of its own, so a Ctrl-C reaches this process only, which then stops the node in order.
    const child = spawn(SERVER_SCRIPT, [], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    node = child;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    let startProblem: string | null = null;
    child.once('error', (error) => (startProblem ??= `could not start ${SERVER_SCRIPT}: ${errorText(error)}`));
    void exited.then((code) => (startProblem ??= `rabbitmq-server exited (code ${code}) while starting`));
    // Read to the end whatever it prints (a full pipe would stall it); the tail is shown if the start fails.
    for (const stream of [child.stdout!, child.stderr!]) {
      stream.setEncoding('utf8');
      stream.on('data', (text: string) => (output.tail = (output.tail + text).slice(-8000)));
    }
    let server: ServerInfo;
    try {
      server = await waitForAmqp(`amqp://guest:guest@127.0.0.1:${amqpPort}`, options.startTimeoutSeconds, () => startProblem);
    } catch (error) {
      return failStart(errorText(error));
    }
    cleanups.delete(emergency);
    return new RabbitMqProcess(child, epmd, exited, dir, amqpPort, now() - began, server, options);
  }

  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.node.pid!;
  }

  /** Samples the whole tree now (and keeps the sample); null once the node is gone. */
  sample(): ProcessSample | null {
    if (this.stopped) return null;
    let found = false;
    const total: ProcessSample = { time: now(), rssBytes: 0, peakRssBytes: 0, cpuSeconds: 0 };
    const tree = processTree(this.pid);
    if (tree.length > 1) this.lastTree = tree;
    for (const pid of tree) {
      const sample = sampleProcess(pid);
      if (sample === null) continue;
      found = true;
      total.rssBytes += sample.rssBytes;
      // A sum of per-process high-water marks is only an upper bound of the tree's peak; beam.smp dominates it.
      total.peakRssBytes += sample.peakRssBytes;
      total.cpuSeconds += sample.cpuSeconds;
    }
    if (!found) return null;
    this.samples.push(total);
    return total;
  }

  alive(): boolean {
    return !this.stopped && this.node.exitCode === null && this.node.signalCode === null;
  }

  /** The last lines of the node's log file, for error messages. */
  logTail(lines = 30): string {
    return logTail(this.dir, lines);
  }

  /** Every process of the node's tree that is still running (the current tree and the last sampled one). */
  private treeNow(): number[] {
    return [...new Set([...processTree(this.pid), ...this.lastTree])].filter(isAlive);
  }

  /**
   * SIGTERM to the start script (it passes the signal on to beam.smp, which shuts down cleanly, and waits for it),
   * SIGKILL to the whole tree after 30 s, then epmd, then the directory.
   */
  async stop(): Promise<RabbitMqStop> {
    clearInterval(this.timer);
    const last = this.sample();
    const rssBytes = last?.rssBytes ?? this.samples.at(-1)?.rssBytes ?? 0;
    const peakRssBytes = this.samples.reduce((peak, sample) => Math.max(peak, sample.rssBytes), 0);
    const tree = this.treeNow();
    const began = now();
    this.node.kill('SIGTERM');
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      killPids(this.treeNow(), 'SIGKILL');
    }, 30_000);
    const exitCode = await this.exited;
    clearTimeout(timer);
    const shutdownSeconds = now() - began;
    // Helpers outside the script's own wait (they have sessions of their own) go with beam.smp; make sure of it.
    await sleep(100);
    killPids(tree.filter((pid) => pid !== this.pid && isAlive(pid)), 'SIGKILL');
    await this.stopEpmd();
    this.stopped = true;
    cleanups.delete(this.cleanup);
    rmSync(this.dir, { recursive: true, force: true });
    return { rssBytes, peakRssBytes, shutdownSeconds, killed, exitCode };
  }

  private async stopEpmd(): Promise<void> {
    if (this.epmd.exitCode !== null || this.epmd.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.epmd.once('exit', () => resolve()));
    this.epmd.kill('SIGTERM');
    const timer = setTimeout(() => this.epmd.kill('SIGKILL'), 2_000);
    await gone;
    clearTimeout(timer);
  }

  /** Kills everything at once, without waiting (error paths and exit hooks: must be synchronous). */
  kill(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    killPids(this.treeNow(), 'SIGKILL');
    this.epmd.kill('SIGKILL');
    cleanups.delete(this.cleanup);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The process exists (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function logTail(dir: string, lines = 30): string {
  const path = join(dir, 'log', `${NODE_NAME}.log`);
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** `count` distinct ports nobody listens on right now: the kernel's picks for port 0 on loopback, held until all are known. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      const server = createServer();
      return new Promise<typeof server>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve(server));
      });
    }),
  );
  const ports = servers.map((server) => (server.address() as { port: number }).port);
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  return ports;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`; rejects after `seconds`. */
async function waitForPort(port: number, seconds: number): Promise<void> {
  const deadline = now() + seconds;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (now() >= deadline) throw new Error(`nothing listening after ${seconds} s`);
    await sleep(50);
  }
}
