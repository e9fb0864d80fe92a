import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ManualClock } from '../../core/clock.js';
import { MemoryMessageStore } from '../../storage/memory-message-store.js';
import { decodeHeaders } from '../../storage/record-batch.js';
import { BrokerCore } from '../broker-core.js';
import { ManualScheduler } from '../scheduler.js';
import { decodeBatches, settle } from '../test-support.js';
import type { Delivery } from './shared-subscription.js';

/**
 * A model-based test of shared groups: random publish / subscribe / pull / ack / nack / reject / consumer crash /
 * purge / failed ack-state write / broker restart / clock advance sequences against a small reference model. After
 * every step: nothing settled is delivered again, nothing is held by two consumers, prefetch holds, no delivery is
 * early or expired, delivery counts match. At the end everything is drained: each message was acknowledged,
 * dead-lettered for the right reason, expired or purged — none lost.
 */

const MAX_DELIVERIES = 3;
const ACK_TIMEOUT_MS = 5000;
const GROUP = 'model';
/** Whichever comes first, a subscribe or a pull, creates the group with these (later ones do not change them). */
const SETTINGS = { maxDeliveries: MAX_DELIVERIES, ackTimeoutMs: ACK_TIMEOUT_MS, backoffInitialMs: 100, backoffMaxMs: 1000 };
const TOPIC = 'work';

type Op =
  | { kind: 'publish'; count: number; ttlMs: number | null; priority: number; partition: number }
  | { kind: 'subscribe'; prefetch: number }
  | { kind: 'pull'; maxMessages: number }
  | { kind: 'purge' }
  | { kind: 'failWrite' }
  | { kind: 'ack' | 'reject'; consumer: number; pick: number }
  | { kind: 'nack'; consumer: number; pick: number; delayMs: number }
  | { kind: 'crash'; consumer: number }
  | { kind: 'restart' }
  | { kind: 'advance'; ms: number };

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('publish' as const), count: fc.integer({ min: 1, max: 5 }), ttlMs: fc.option(fc.integer({ min: 1, max: 3000 }), { freq: 4 }), priority: fc.integer({ min: 0, max: 9 }), partition: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('subscribe' as const), prefetch: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pull' as const), maxMessages: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'purge' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'failWrite' as const }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('ack' as const), consumer: fc.nat(5), pick: fc.nat(10) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('nack' as const), consumer: fc.nat(5), pick: fc.nat(10), delayMs: fc.integer({ min: 0, max: 2000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reject' as const), consumer: fc.nat(5), pick: fc.nat(10) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), consumer: fc.nat(5) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 4000 }) }) },
);

interface ModelMessage {
  body: string;
  expiresAt: number;
  deliveries: number;
  state: 'pending' | 'acked' | 'dead' | 'expired' | 'purged';
  deadReason: string | null;
  /** Not to be delivered before this wall time (a nack delay). */
  notBefore: number;
  holder: string | null;
}

class Harness {
  readonly clock = new ManualClock();
  readonly scheduler = new ManualScheduler(this.clock);
  readonly store = new MemoryMessageStore(this.clock);
  broker!: BrokerCore;
  readonly messages = new Map<string, ModelMessage>();
  /** Live consumers: id → prefetch and the deliveries they hold, in arrival order. */
  readonly consumers = new Map<string, { prefetch: number; held: Delivery[] }>();
  private nextConsumer = 0;
  private nextMessage = 0;

  async restart(): Promise<void> {
    await this.broker.close();
    for (const [, consumer] of this.consumers) for (const delivery of consumer.held) this.model(delivery).holder = null;
    this.consumers.clear();
    this.broker = await BrokerCore.open({ store: this.store, clock: this.clock, scheduler: this.scheduler, ackFlushIntervalMs: 100 });
  }

  model(delivery: Delivery): ModelMessage {
    const message = this.messages.get(delivery.message.body.toString());
    assert.ok(message, `unexpected message ${delivery.message.body.toString()}`);
    return message;
  }

  /** Violations seen inside broker callbacks, where throwing would only break the broker's own loop. */
  readonly violations: string[] = [];

  onDeliver(consumerId: string, batch: Delivery[]): void {
    try {
      this.checkDelivery(consumerId, batch);
    } catch (error) {
      this.violations.push((error as Error).message);
    }
  }

  checkDelivery(consumerId: string, batch: Delivery[]): void {
    const consumer = this.consumers.get(consumerId);
    assert.ok(consumer, `delivery to a consumer that is gone (${consumerId})`);
    const now = this.clock.now();
    for (const delivery of batch) {
      const message = this.model(delivery);
      assert.equal(message.state, 'pending', `${message.body} delivered after it was ${message.state}`);
      assert.equal(message.holder, null, `${message.body} delivered to ${consumerId} while ${message.holder} holds it`);
      assert.ok(now < message.expiresAt, `${message.body} delivered at ${now}, expired at ${message.expiresAt}`);
      assert.ok(now >= message.notBefore, `${message.body} redelivered at ${now}, before its nack delay ended at ${message.notBefore}`);
      message.deliveries++;
      assert.equal(delivery.deliveryCount, message.deliveries, `${message.body} delivery count`);
      message.holder = consumerId;
      consumer.held.push(delivery);
    }
    assert.ok(consumer.held.length <= consumer.prefetch, `${consumerId} holds ${consumer.held.length} > prefetch ${consumer.prefetch}`);
  }

  async publish(count: number, ttlMs: number | null, priority: number, partition: number): Promise<void> {
    const now = this.clock.now();
    const messages = [];
    for (let i = 0; i < count; i++) {
      const body = `m${this.nextMessage++}`;
      this.messages.set(body, { body, expiresAt: ttlMs === null ? Infinity : now + ttlMs, deliveries: 0, state: 'pending', deadReason: null, notBefore: 0, holder: null });
      const headers: Record<string, string> = { 'weir.priority': String(priority) };
      if (ttlMs !== null) headers['weir.ttlMs'] = String(ttlMs);
      messages.push({ body, headers });
    }
    await this.broker.produce({ topic: TOPIC, partition, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages });
  }

  async subscribe(prefetch: number): Promise<void> {
    const consumerId = `c${this.nextConsumer++}`;
    this.consumers.set(consumerId, { prefetch, held: [] });
    await this.broker.subscribe({
      group: GROUP,
      topic: TOPIC,
      mode: 'shared',
      settings: SETTINGS,
      consumerId,
      prefetch,
      clientId: 'model',
      address: 'test',
      sink: { deliver: (batch) => this.onDeliver(consumerId, batch) },
    });
  }

  /**
   * A Receive that does not wait, by the one pull consumer (it stays attached, holding what it pulled, until it
   * crashes or the broker restarts).
   */
  async pull(maxMessages: number): Promise<void> {
    const consumerId = 'puller';
    if (!this.consumers.has(consumerId)) this.consumers.set(consumerId, { prefetch: Infinity, held: [] });
    const deliveries = await this.broker.receive({ group: GROUP, topic: TOPIC, mode: 'shared', settings: SETTINGS, consumerId, clientId: 'model', address: 'test', maxMessages, waitMs: 0 });
    assert.ok(deliveries.length <= maxMessages, `${deliveries.length} pulled, ${maxMessages} asked for`);
    this.onDeliver(consumerId, deliveries);
  }

  /** Ready messages go (read or not); held and waiting ones stay. */
  purge(): void {
    // Before the first subscribe or pull the group does not exist yet (INVALID_GROUP): nothing to purge.
    if (!this.broker.internals.workQueues.settingsOf(GROUP)) return;
    this.broker.purgeSharedGroup(GROUP, TOPIC);
    const now = this.clock.now();
    for (const message of this.messages.values()) if (message.state === 'pending' && message.holder === null && message.notBefore <= now) message.state = 'purged';
  }

  /** An ack-state write fails (a full disk, once): what it had to write must still reach the disk later. */
  async failWrite(): Promise<void> {
    const metadata = this.store.metadata;
    const apply = metadata.apply;
    metadata.apply = () => Promise.reject(new Error('disk full'));
    try {
      await this.broker.internals.workQueues.flush();
    } finally {
      metadata.apply = apply;
    }
  }

  pickConsumer(index: number): [string, { prefetch: number; held: Delivery[] }] | null {
    const live = [...this.consumers];
    return live.length === 0 ? null : live[index % live.length]!;
  }

  async outcome(kind: 'ack' | 'nack' | 'reject', consumerIndex: number, pick: number, delayMs = 0): Promise<void> {
    const chosen = this.pickConsumer(consumerIndex);
    if (chosen === null || chosen[1].held.length === 0) return;
    const [consumerId, consumer] = chosen;
    const [delivery] = consumer.held.splice(pick % consumer.held.length, 1);
    const message = this.model(delivery!);
    message.holder = null;
    const applied = await this.broker.settle(GROUP, TOPIC, consumerId, [{ partition: delivery!.partition, offset: delivery!.offset, outcome: kind, delayMs: kind === 'nack' ? delayMs : undefined }]);
    assert.equal(applied, 1, `${kind} of ${message.body} by its holder must apply`);
    if (kind === 'ack') message.state = 'acked';
    else if (kind === 'reject') this.dead(message, 'rejected');
    else if (message.deliveries >= MAX_DELIVERIES) this.dead(message, 'max-deliveries');
    else message.notBefore = this.clock.now() + delayMs;
  }

  dead(message: ModelMessage, reason: string): void {
    message.state = 'dead';
    message.deadReason = reason;
  }

  crash(consumerIndex: number): void {
    const chosen = this.pickConsumer(consumerIndex);
    if (chosen === null) return;
    const [consumerId, consumer] = chosen;
    this.consumers.delete(consumerId);
    for (const delivery of consumer.held) {
      const message = this.model(delivery);
      message.holder = null;
      if (message.deliveries >= MAX_DELIVERIES) this.dead(message, 'max-deliveries');
    }
    this.broker.unsubscribe(GROUP, TOPIC, consumerId);
  }

  advance(ms: number): void {
    // Leases must not run out behind the model's back: consumers renew what they hold, as a slow worker would.
    for (const [consumerId, consumer] of this.consumers) {
      if (consumer.held.length > 0) void this.broker.extend(GROUP, TOPIC, consumerId, consumer.held.map((d) => ({ partition: d.partition, offset: d.offset })), ACK_TIMEOUT_MS * 10);
    }
    this.scheduler.advance(ms);
    for (const message of this.messages.values()) if (message.state === 'pending' && message.holder === null && this.clock.now() >= message.expiresAt) message.state = 'expired';
  }

  /** Acks everything until nothing more arrives. */
  async drain(): Promise<void> {
    // A pushed consumer takes everything; the puller, if attached, gets its share only by asking.
    if (![...this.consumers.keys()].some((id) => id !== 'puller')) await this.subscribe(1000);
    for (let round = 0; round < 50; round++) {
      this.advance(2000);
      await settle(5);
      if (this.consumers.has('puller')) await this.pull(100);
      let acked = 0;
      for (const [consumerId, consumer] of this.consumers) {
        const held = consumer.held.splice(0);
        for (const delivery of held) {
          const message = this.model(delivery);
          message.holder = null;
          message.state = 'acked';
        }
        if (held.length > 0) acked += await this.broker.settle(GROUP, TOPIC, consumerId, held.map((d) => ({ partition: d.partition, offset: d.offset, outcome: 'ack' as const })));
      }
      await settle(5);
      const pending = [...this.messages.values()].some((message) => message.state === 'pending');
      if (acked === 0 && !pending) break;
    }
  }

  async deadLetters(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const topic = (await this.broker.listTopics()).find((entry) => entry.name === `${GROUP}.dlq`);
    if (topic === undefined) return out;
    const fetched = await this.broker.fetch({ topic: topic.name, partition: 0, offset: 0, maxBytes: 64 << 20, minBytes: 0, maxWaitMs: 0 });
    for (const message of decodeBatches(fetched.batches)) {
      const body = message.body.toString();
      assert.ok(!out.has(body), `${body} dead-lettered twice`);
      out.set(body, String(decodeHeaders(message.headers)['weir.dlq.reason']));
    }
    return out;
  }
}

test('shared groups agree with the reference model (property)', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(opArbitrary, { minLength: 5, maxLength: 60 }), async (ops) => {
      const harness = new Harness();
      harness.broker = await BrokerCore.open({ store: harness.store, clock: harness.clock, scheduler: harness.scheduler, ackFlushIntervalMs: 100 });
      await harness.broker.createTopic(TOPIC, 2);
      try {
        for (const op of ops) {
          switch (op.kind) {
            case 'publish':
              await harness.publish(op.count, op.ttlMs, op.priority, op.partition);
              break;
            case 'subscribe':
              await harness.subscribe(op.prefetch);
              break;
            case 'pull':
              await harness.pull(op.maxMessages);
              break;
            case 'purge':
              harness.purge();
              break;
            case 'failWrite':
              await harness.failWrite();
              break;
            case 'ack':
            case 'reject':
              await harness.outcome(op.kind, op.consumer, op.pick);
              break;
            case 'nack':
              await harness.outcome('nack', op.consumer, op.pick, op.delayMs);
              break;
            case 'crash':
              harness.crash(op.consumer);
              break;
            case 'restart':
              await harness.restart();
              break;
            case 'advance':
              harness.advance(op.ms);
              break;
          }
          await settle(4);
          assert.deepEqual(harness.violations, [], `after ${JSON.stringify(op)}`);
        }
        await harness.drain();
        assert.deepEqual(harness.violations, [], 'while draining');
        const dead = await harness.deadLetters();
        for (const message of harness.messages.values()) {
          assert.notEqual(message.state, 'pending', `${message.body} was lost: never acknowledged, dead-lettered or expired`);
          if (message.state === 'dead') assert.equal(dead.get(message.body), message.deadReason, `${message.body} dead-letter reason`);
          else assert.ok(!dead.has(message.body), `${message.body} is ${message.state} but was dead-lettered`);
        }
      } finally {
        await harness.broker.close();
      }
    }),
    { numRuns: Number(process.env.WEIR_CHAOS) ? 1000 : 120 },
  );
});
