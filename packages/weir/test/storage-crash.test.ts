import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DiskMessageStore } from '../src/storage/disk-message-store.js';
import { seededRandom } from '../src/storage/io/fault-file-system.js';

/**
 * Crash test with a real process: a child appends under `sync` and reports every resolved append; we SIGKILL it at a
 * random moment, reopen the store and check that every reported append is present, intact, in order, exactly once.
 * `npm test` runs 50 kills; `npm run test:chaos` runs 1,000.
 */
const CYCLES = process.env.WEIR_CHAOS ? 1000 : 50;
const appender = fileURLToPath(new URL('./fixtures/storage-appender.ts', import.meta.url));

interface Acked {
  queue: string;
  baseOffset: number;
  values: string[];
}

async function runChild(dataDir: string, cycle: number, killAfterMs: number): Promise<Acked[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', appender, dataDir, String(cycle)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const acked: Acked[] = [];
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout });
  const linesDone = new Promise<void>((resolve) => lines.once('close', () => resolve()));
  let timer: NodeJS.Timeout | undefined;
  lines.on('line', (line) => {
    if (line === 'ready') {
      timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      return;
    }
    const [queue, baseOffset, , values] = line.split(' ');
    acked.push({ queue: queue!, baseOffset: Number(baseOffset), values: values!.split(',') });
  });
  const code = await exited;
  clearTimeout(timer);
  if (code !== null) throw new Error(`appender exited by itself with code ${code}: ${stderr}`);
  // Every line the child wrote before it died is in the pipe; wait for readline to deliver it.
  await linesDone;
  return acked;
}

test('storage: crash test — SIGKILL during sync appends loses no acknowledged append', { timeout: CYCLES * 10_000 }, async () => {
  const seed = Number(process.env.WEIR_SEED ?? Date.now() % 1_000_000);
  const next = seededRandom(seed);
  const dataDir = await mkdtemp(join(tmpdir(), 'weir-crash-'));
  const everAcked = new Map<string, Acked[]>();
  let totalAcked = 0;
  try {
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const acked = await runChild(dataDir, cycle, Math.floor(next() * 150));
      totalAcked += acked.length;
      for (const entry of acked) {
        const list = everAcked.get(entry.queue) ?? [];
        list.push(entry);
        everAcked.set(entry.queue, list);
      }
      const store = await DiskMessageStore.open({ dataDir, checkpointIntervalMs: 0, retentionIntervalMs: 0 });
      try {
        for (const [queueName, entries] of everAcked) {
          const queue = store.queue(queueName);
          assert.ok(queue, `seed ${seed} cycle ${cycle}: queue ${queueName} is missing`);
          const bodies: string[] = [];
          let offset = 0;
          while (offset < queue.endOffset) {
            const read = await store.read(queue.id, offset, { maxMessages: 5000 });
            read.messages.forEach((message, index) => assert.equal(message.offset, offset + index, `seed ${seed}: offsets contiguous`));
            bodies.push(...read.messages.map((message) => message.body.toString()));
            offset = read.nextOffset;
          }
          assert.equal(new Set(bodies).size, bodies.length, `seed ${seed} cycle ${cycle}: no duplicates in ${queueName}`);
          for (const entry of entries) {
            entry.values.forEach((value, index) =>
              assert.equal(bodies[entry.baseOffset + index], value, `seed ${seed} cycle ${cycle}: acknowledged ${value} at ${queueName}/${entry.baseOffset + index}`),
            );
          }
          // Per appender, values appear in send order: (cycle, sequence, index) strictly increases.
          const lastSeen = new Map<string, number>();
          for (const body of bodies) {
            const [run, worker, sequence, index] = body.split('.').map(Number);
            const order = (run! * 1e6 + sequence!) * 8 + index!;
            assert.ok((lastSeen.get(`${run}.${worker}`) ?? -1) < order, `seed ${seed} cycle ${cycle}: ${body} out of order in ${queueName}`);
            lastSeen.set(`${run}.${worker}`, order);
          }
        }
      } finally {
        await store.close();
      }
    }
    assert.ok(totalAcked > CYCLES, `the children acknowledged only ${totalAcked} appends in ${CYCLES} cycles`);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
