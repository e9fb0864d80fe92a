/**
 * Micro-benchmarks of the pieces that decide what one message costs, each in process and in memory:
 *   npm run bench -- micro                 every case (about a minute)
 *   npm run bench -- micro --quick         smoke run (a few seconds)
 *   npm run bench -- micro --only crc,topic
 *
 * Each case runs for a warm-up (so V8 has optimised it), then several timed samples; the figure is the median
 * sample, and the spread (slowest to fastest sample, relative to the median) says how far to trust it. Cases count
 * the unit they name (a message, a route, a lookup), so ns/op is directly the cost per message of that step.
 */
import { decodeRequest, encodeRequest, type Message } from 'weir-protocol';
import { memoryBroker } from '../packages/weir/src/broker/test-support.js';
import type { Delivery } from '../packages/weir/src/broker/queue/shared-subscription.js';
import { RoutingTable } from '../packages/weir/src/broker/routing/routing-table.js';
import { decodeMethod, encodeBasicDeliver, encodeMethodFrame, FrameParser } from '../packages/weir/src/protocols/amqp/codec/index.js';
import { entryAt, positionAt } from '../packages/weir/src/storage/consume-queue.js';
import { crc32c } from '../packages/weir/src/storage/crc.js';
import { batchBytes, decodeMessages, encodeBatch, prepareMessage, type StoredMessage } from '../packages/weir/src/storage/record-batch.js';
import { Flags, formatNumber, formatTable, publishReport, type Suite, commitInfo, machineInfo, writeSummary, markdownTable } from './report.js';

interface MicroCase {
  id: string;
  /** What one op is. */
  unit: string;
  /** Runs `ops` operations (a multiple of its natural batch is fine); may be async. */
  run(ops: number): unknown;
}

export interface MicroResult {
  id: string;
  unit: string;
  opsPerSecond: number;
  nsPerOp: number;
  samples: number[];
  /** (fastest − slowest sample) / median: how much the samples disagree. */
  spread: number;
}

async function timed(work: MicroCase, ops: number): Promise<number> {
  const started = process.hrtime.bigint();
  await work.run(ops);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Warm-up, calibration to about `sampleSeconds` per sample, then `samples` timed samples. */
export async function measure(work: MicroCase, options: { warmupSeconds: number; sampleSeconds: number; samples: number }): Promise<MicroResult> {
  let ops = 1;
  let warmed = 0;
  // Grow the op count until one run takes a tenth of a sample, warming up meanwhile.
  for (;;) {
    const seconds = await timed(work, ops);
    warmed += seconds;
    if (seconds >= options.sampleSeconds / 10 && warmed >= options.warmupSeconds) break;
    if (seconds < options.sampleSeconds / 10) ops *= 2;
  }
  ops = Math.max(1, Math.round((ops * options.sampleSeconds) / Math.max(1e-6, await timed(work, ops))));
  const rates: number[] = [];
  for (let sample = 0; sample < options.samples; sample++) rates.push(ops / (await timed(work, ops)));
  const sorted = [...rates].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return { id: work.id, unit: work.unit, opsPerSecond: median, nsPerOp: 1e9 / median, samples: rates, spread: (sorted.at(-1)! - sorted[0]!) / median };
}

// ---- the cases ------------------------------------------------------------------------------------------------------

const BODY = Buffer.alloc(100, 7);
let sink = 0;

function nativeMessages(count: number): Message[] {
  return Array.from({ length: count }, (_, index) => ({ id: null, key: Buffer.from(`customer-${index}`), tag: null, headers: [], timestamp: 1_700_000_000_000 + index, body: BODY }));
}

function nativeCodecCases(): MicroCase[] {
  const body = { topic: 'orders', partition: -1, acks: 1, producerId: -1, producerEpoch: -1, baseSequence: -1, messages: nativeMessages(100) };
  const payload = encodeRequest('Produce', 1, body).subarray(4);
  return [
    { id: 'native-produce-encode', unit: 'message', run: (ops) => repeat(ops, 100, () => (sink += encodeRequest('Produce', 1, body).length)) },
    { id: 'native-produce-decode', unit: 'message', run: (ops) => repeat(ops, 100, () => (sink += decodeRequest(payload).correlationId)) },
  ];
}

/** Runs `work` (which does `perCall` ops) often enough for `ops` ops. */
function repeat(ops: number, perCall: number, work: () => unknown): void {
  for (let done = 0; done < ops; done += perCall) work();
}

function amqpCases(): MicroCase[] {
  const frameMax = 131_072;
  const properties = Buffer.from([0x10, 0x00, 0x02]); // delivery-mode present: 2 (persistent)
  const publish = encodeMethodFrame(1, { method: 'basic.publish', exchange: '', routingKey: 'task_queue', mandatory: false, immediate: false });
  // A publish as a client writes it: method, content header and body frames, 100 publishes in one chunk.
  const deliver = encodeBasicDeliver(1, 'ctag', 1, false, '', 'task_queue', properties, BODY, frameMax);
  const chunk = Buffer.concat(Array.from({ length: 100 }, () => Buffer.concat([publish, deliver.subarray(deliver.indexOf(0xce) + 1)])));
  return [
    {
      id: 'amqp-frame-parse',
      unit: 'publish (3 frames)',
      run: (ops) =>
        repeat(ops, 100, () => {
          const parser = new FrameParser({ maxFrameSize: frameMax });
          parser.push(chunk);
          for (let frame = parser.next(); frame !== null; frame = parser.next()) sink += frame.payload.length;
        }),
    },
    { id: 'amqp-method-decode', unit: 'method', run: (ops) => repeat(ops, 1, () => (sink += decodeMethod(publish.subarray(7, -1)).method.length)) },
    { id: 'amqp-method-encode', unit: 'method', run: (ops) => repeat(ops, 1, () => (sink += encodeMethodFrame(1, { method: 'basic.ack', deliveryTag: ops, multiple: false }).length)) },
    { id: 'amqp-deliver-encode', unit: 'delivery', run: (ops) => repeat(ops, 1, () => (sink += encodeBasicDeliver(1, 'ctag', ops, false, '', 'task_queue', properties, BODY, frameMax).length)) },
  ];
}

function topicRoutingCase(): MicroCase {
  const routing = new RoutingTable({ queueExists: () => true });
  routing.declareExchange({ name: 'events', type: 'topic', durable: true, autoDelete: false, internal: false, alternateExchange: null, arguments: {} });
  const patterns = 1000;
  for (let index = 0; index < patterns; index++) {
    const pattern = index % 3 === 0 ? `region${index % 10}.*.order${index}` : index % 3 === 1 ? `region${index % 10}.#` : `*.shop${index % 50}.order${index}`;
    routing.bind({ source: 'events', destination: `q${index}`, destinationKind: 'queue', routingKey: pattern, arguments: {} });
  }
  const keys = Array.from({ length: 1000 }, (_, index) => `region${index % 10}.shop${index % 50}.order${index}`);
  return { id: 'topic-route-1k-patterns', unit: 'route', run: (ops) => repeat(ops, 1, () => (sink += routing.route('events', keys[ops++ % keys.length]!, null).queues.length)) };
}

function consumeQueueCase(): MicroCase {
  const entries = 1 << 16;
  const buffer = Buffer.alloc(entries * 32);
  for (let index = 0; index < entries; index++) {
    buffer.writeBigUInt64LE(BigInt(index * 4096), index * 32);
    buffer.writeUInt32LE(4096, index * 32 + 8);
  }
  let next = 0;
  return {
    id: 'consume-queue-lookup',
    unit: 'lookup',
    run: (ops) =>
      repeat(ops, 2, () => {
        const index = (next = (next + 7919) & (entries - 1));
        sink += positionAt(buffer, index) + entryAt(buffer, index).batchSize;
      }),
  };
}

function crcCases(): MicroCase[] {
  return [100, 4096].map((bytes) => {
    const data = Buffer.alloc(bytes, 3);
    return { id: `crc32c-${bytes}b`, unit: 'checksum', run: (ops: number) => repeat(ops, 1, () => (sink += crc32c(data))) };
  });
}

function recordBatchCases(): MicroCase[] {
  const prepared = Array.from({ length: 100 }, (_, index) => prepareMessage({ key: `customer-${index}`, body: BODY }));
  const length = batchBytes(prepared);
  const target = Buffer.alloc(length);
  encodeBatch(target, 0, 1, 0, 1_700_000_000_000, 0, prepared);
  const out: StoredMessage[] = [];
  return [
    { id: 'record-batch-encode', unit: 'message', run: (ops) => repeat(ops, 100, () => (sink += encodeBatch(target, 0, 1, 0, 1_700_000_000_000, 0, prepared, {}, length))) },
    {
      id: 'record-batch-decode',
      unit: 'message',
      run: (ops) =>
        repeat(ops, 100, () => {
          out.length = 0;
          sink += decodeMessages(target, 0, 0, 0, 100, out);
        }),
    },
  ];
}

/** A shared group in memory: messages produced, leased to one consumer (prefetch 1,000), acked as they arrive. */
async function sharedDispatchCase(): Promise<MicroCase> {
  const { broker } = await memoryBroker({ traceEnabled: false }); // as `weir serve` runs by default (trace off)
  await broker.createTopic('jobs', 1);
  let delivered = 0;
  let wake: (() => void) | null = null;
  let target = 0;
  broker.subscribe({
    group: 'workers',
    topic: 'jobs',
    mode: 'shared',
    consumerId: 'c1',
    prefetch: 1000,
    clientId: 'micro',
    address: '127.0.0.1:1',
    sink: {
      deliver: (batch: Delivery[]) => {
        delivered += batch.length;
        broker.settle('workers', 'jobs', 'c1', batch.map((delivery) => ({ partition: delivery.partition, offset: delivery.offset, outcome: 'ack' as const })));
        if (delivered >= target) wake?.();
      },
    },
  });
  const messages = Array.from({ length: 100 }, () => ({ body: BODY, key: null, headers: null }));
  return {
    id: 'shared-dispatch-ack',
    unit: 'message',
    async run(ops) {
      target = delivered + Math.ceil(ops / 100) * 100;
      for (let sent = 0; sent < ops; sent += 100) {
        void broker.produce({ topic: 'jobs', partition: 0, acks: 'written', producerId: -1, producerEpoch: -1, baseSequence: -1, messages });
      }
      if (delivered < target) await new Promise<void>((resolve) => (wake = resolve));
      wake = null;
    },
  };
}

// ---- the suite ------------------------------------------------------------------------------------------------------

const USAGE = `usage: npm run bench -- micro [flags]

  --quick          smoke run: short warm-up, 3 samples of 0.1 s
  --samples <n>    timed samples per case (default 7)
  --only <ids>     comma-separated substrings of case ids, e.g. --only crc,topic
  --help           this text

cases: native-produce-encode, native-produce-decode, amqp-frame-parse, amqp-method-decode, amqp-method-encode,
       amqp-deliver-encode, topic-route-1k-patterns, consume-queue-lookup, crc32c-100b, crc32c-4096b,
       record-batch-encode, record-batch-decode, shared-dispatch-ack`;

async function run(args: readonly string[]): Promise<void> {
  const flags = Flags.parse(args, { switches: ['quick'], values: ['samples', 'only'], usage: USAGE });
  if (flags === null) {
    console.log(USAGE);
    return;
  }
  const quick = flags.has('quick');
  const options = { warmupSeconds: quick ? 0.05 : 0.5, sampleSeconds: quick ? 0.1 : 0.3, samples: flags.number('samples', quick ? 3 : 7, true) };
  const only = flags.get('only')?.split(',').map((part) => part.trim()).filter(Boolean) ?? null;
  const cases = [...nativeCodecCases(), ...amqpCases(), topicRoutingCase(), consumeQueueCase(), ...crcCases(), ...recordBatchCases(), await sharedDispatchCase()].filter(
    (work) => only === null || only.some((part) => work.id.includes(part)),
  );
  const machine = machineInfo();
  const commit = commitInfo();
  const results: MicroResult[] = [];
  for (const work of cases) {
    process.stderr.write(`[micro] ${work.id}\n`);
    results.push(await measure(work, options));
  }
  const columns = [{ title: 'case' }, { title: 'op' }, { title: 'ops/s', align: 'right' as const }, { title: 'ns/op', align: 'right' as const }, { title: 'spread', align: 'right' as const }];
  const rows = results.map((result) => [result.id, result.unit, formatNumber(result.opsPerSecond), formatNumber(result.nsPerOp, 1), `±${formatNumber((result.spread * 100) / 2, 1)}%`]);
  await publishReport('micro', { suite: 'micro', options, machine, commit, results }, machine, commit);
  await writeSummary('micro', `# Micro-benchmarks\n\n${markdownTable(columns, rows)}\n`);
  console.log(formatTable(columns, rows));
  if (sink === 0.5) console.log('');
}

export const microSuite: Suite = { run };
