/**
 * Micro-benchmark of RoutingTable.route, the publish hot path. Run:
 *   node --conditions=development --import tsx packages/weir/src/broker/routing/routing.bench.ts
 * Prints routes per second and the mean number of queues per route for each exchange type.
 */
import { performance } from 'node:perf_hooks';
import { RoutingTable } from './routing-table.js';
import type { ExchangeType } from './types.js';

const routing = new RoutingTable({ queueExists: () => true });

function declare(name: string, type: ExchangeType): void {
  routing.declareExchange({ name, type, durable: true, autoDelete: false, internal: false, alternateExchange: null, arguments: {} });
}

function bindQueue(source: string, queue: string, routingKey: string, args: Record<string, unknown> = {}): void {
  routing.bind({ source, destination: queue, destinationKind: 'queue', routingKey, arguments: args });
}

interface Publish {
  exchange: string;
  key: string;
  headers: ReadonlyMap<string, unknown> | null;
}

function bench(label: string, publishes: readonly Publish[]): void {
  let queues = 0;
  const run = (count: number): void => {
    for (let index = 0; index < count; index++) {
      const publish = publishes[index % publishes.length]!;
      queues += routing.route(publish.exchange, publish.key, publish.headers).queues.length;
    }
  };
  // Warm up, then time batches for ~500 ms.
  run(50_000);
  queues = 0;
  let routes = 0;
  const started = performance.now();
  let elapsed = 0;
  while (elapsed < 500) {
    run(10_000);
    routes += 10_000;
    elapsed = performance.now() - started;
  }
  const perSecond = (routes / elapsed) * 1000;
  console.log(`${label.padEnd(44)} ${(perSecond / 1e6).toFixed(2).padStart(7)} M routes/s  ${(queues / routes).toFixed(2).padStart(5)} queues/route`);
}

declare('bench.direct', 'direct');
for (let index = 0; index < 1000; index++) bindQueue('bench.direct', `q${index}`, `key.${index}`);
bench(
  'direct, 1k bindings',
  Array.from({ length: 1000 }, (_, index) => ({ exchange: 'bench.direct', key: `key.${(index * 7) % 1000}`, headers: null })),
);

// The same shape at 1k and 10k patterns: with a trie the cost per route should barely move.
for (const count of [1000, 10_000]) {
  const name = `bench.topic.${count}`;
  declare(name, 'topic');
  for (let index = 0; index < count; index++) {
    const patterns = [`r${index % 20}.s${index}.*`, `r${index % 20}.*.e${index}`, `*.s${index}.#`, `#.e${index}`];
    bindQueue(name, `q${index}`, patterns[index % 4]!);
  }
  bench(
    `topic, ${count / 1000}k patterns (*, # mixed)`,
    Array.from({ length: 1000 }, (_, index) => {
      const bound = index * (count / 1000);
      return { exchange: name, key: `r${bound % 20}.s${bound}.e${bound}`, headers: null };
    }),
  );
}

declare('bench.headers', 'headers');
for (let index = 0; index < 20; index++) {
  const mode = index % 2 === 0 ? 'all' : 'any';
  bindQueue('bench.headers', `q${index}`, '', { 'x-match': mode, format: `f${index % 5}`, region: `r${index % 4}` });
}
bench(
  'headers, 20 bindings × 2 headers, 3 in message',
  Array.from({ length: 20 }, (_, index) => ({
    exchange: 'bench.headers',
    key: '',
    headers: new Map<string, unknown>([
      ['format', `f${index % 5}`],
      ['region', `r${index % 3}`],
      ['trace-id', `t${index}`],
    ]),
  })),
);

declare('bench.fanout', 'fanout');
for (let index = 0; index < 10; index++) bindQueue('bench.fanout', `q${index}`, '');
bench('fanout, 10 queues', [{ exchange: 'bench.fanout', key: 'ignored', headers: null }]);

bench(
  'default exchange',
  Array.from({ length: 100 }, (_, index) => ({ exchange: '', key: `q${index}`, headers: null })),
);
