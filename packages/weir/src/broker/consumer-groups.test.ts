import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock } from '../core/clock.js';
import { ErrorCode } from '../core/errors.js';
import { BrokerCore } from './broker-core.js';
import { ManualScheduler } from './scheduler.js';
import { memoryBroker, openDiskStore, rejectsWith, tempDirectory } from './test-support.js';

const standalone = (group: string, offsets: Array<{ topic: string; partition: number; offset: number; metadata?: string }>, mode?: 'stream' | 'broadcast') => ({ group, generation: -1, memberId: '', offsets, mode });

async function fill(broker: BrokerCore, topic: string, partition: number, count: number): Promise<void> {
  await broker.produce({ topic, partition, acks: 'durable', producerId: -1, producerEpoch: -1, baseSequence: -1, messages: Array.from({ length: count }, (_, index) => ({ body: `m${index}` })) });
}

describe('broker: committed offsets and group descriptions', () => {
  it('broker: offsets commit and fetch, one atomic metadata write per commit, and survive a restart (DiskMessageStore)', async () => {
    const { dataDir, cleanup } = await tempDirectory();
    const clock = new ManualClock();
    try {
      let store = await openDiskStore(dataDir, clock);
      let broker = await BrokerCore.open({ store, clock, scheduler: new ManualScheduler(clock) });
      await broker.createTopic('orders', 3);
      let applies = 0;
      const apply = store.metadata.apply.bind(store.metadata);
      store.metadata.apply = (ops) => {
        applies++;
        return apply(ops);
      };
      await broker.commitOffsets(
        standalone('billing', [
          { topic: 'orders', partition: 0, offset: 10, metadata: 'host-a' },
          { topic: 'orders', partition: 2, offset: 7 },
        ]),
      );
      assert.equal(applies, 1);
      await broker.commitOffsets(standalone('billing', [{ topic: 'orders', partition: 0, offset: 12 }]));
      assert.deepEqual(await broker.fetchOffsets('billing', 'orders'), [
        { topic: 'orders', partition: 0, offset: 12, metadata: '' },
        { topic: 'orders', partition: 1, offset: -1, metadata: '' },
        { topic: 'orders', partition: 2, offset: 7, metadata: '' },
      ]);
      // Group names may hold '/', as broadcast instances do.
      await broker.commitOffsets(standalone('billing/instance-1', [{ topic: 'orders', partition: 1, offset: 3 }], 'broadcast'));
      await broker.close();
      await store.close();

      store = await openDiskStore(dataDir, clock);
      broker = await BrokerCore.open({ store, clock, scheduler: new ManualScheduler(clock) });
      assert.deepEqual(
        (await broker.fetchOffsets('billing', 'orders')).map((entry) => entry.offset),
        [12, -1, 7],
      );
      assert.deepEqual(
        (await broker.fetchOffsets('billing/instance-1', 'orders')).map((entry) => entry.offset),
        [-1, 3, -1],
      );
      assert.deepEqual(await broker.listGroups(), [
        { group: 'billing', mode: 'stream', state: 'Empty', members: 0 },
        { group: 'billing/instance-1', mode: 'broadcast', state: 'Empty', members: 0 },
      ]);
      await broker.close();
      await store.close();
    } finally {
      await cleanup();
    }
  });

  it('broker: commits are validated', async () => {
    const { broker } = await memoryBroker();
    await broker.createTopic('t', 2);
    await rejectsWith(broker.commitOffsets(standalone('g', [{ topic: 'nope', partition: 0, offset: 1 }])), ErrorCode.UnknownTopic);
    await rejectsWith(broker.commitOffsets(standalone('g', [{ topic: 't', partition: 2, offset: 1 }])), ErrorCode.InvalidPartition);
    await rejectsWith(broker.commitOffsets(standalone('g', [{ topic: 't', partition: 0, offset: -1 }])), ErrorCode.InvalidArgument);
    await rejectsWith(broker.commitOffsets(standalone('g', [{ topic: 't', partition: 0, offset: 1, metadata: 'x'.repeat(5000) }])), ErrorCode.InvalidArgument);
    await rejectsWith(broker.commitOffsets(standalone('', [{ topic: 't', partition: 0, offset: 1 }])), ErrorCode.InvalidGroup);
    await rejectsWith(broker.commitOffsets({ group: 'g', generation: 3, memberId: 'm', offsets: [{ topic: 't', partition: 0, offset: 1 }] }), ErrorCode.UnknownMember);
    await rejectsWith(broker.fetchOffsets('g', 'nope'), ErrorCode.UnknownTopic);
    // Nothing of the failed commits was stored, and the group was not created.
    assert.deepEqual(await broker.listGroups(), []);
    await broker.close();
  });

  it('broker: describeGroup reports members, assignments, committed offsets and lag', async () => {
    const { broker, clock } = await memoryBroker();
    await broker.createTopic('orders', 2);
    await broker.createTopic('audit', 1);
    await fill(broker, 'orders', 0, 10);
    await fill(broker, 'orders', 1, 4);
    await fill(broker, 'audit', 0, 3);
    const joined = await broker.joinGroup({ group: 'reporting', memberId: '', clientId: 'report-1', host: '10.0.0.7', topics: ['orders'], strategy: 'round-robin', sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000 });
    await broker.syncGroup({ group: 'reporting', generation: joined.generation, memberId: joined.memberId });
    await broker.commitOffsets({ group: 'reporting', generation: joined.generation, memberId: joined.memberId, offsets: [{ topic: 'orders', partition: 0, offset: 6 }] });
    // A commit for a topic nobody subscribes to still shows in the lag.
    await broker.commitOffsets(standalone('reporting', [{ topic: 'audit', partition: 0, offset: 3 }]));
    clock.advance(1);
    const description = await broker.describeGroup('reporting');
    assert.deepEqual(description.summary, { group: 'reporting', mode: 'stream', state: 'Stable', members: 1 });
    assert.equal(description.generation, 1);
    assert.equal(description.strategy, 'round-robin');
    assert.deepEqual(description.members, [{ memberId: joined.memberId, clientId: 'report-1', host: '10.0.0.7', topics: ['orders'], assignment: [{ topic: 'orders', partitions: [0, 1] }] }]);
    assert.deepEqual(description.lag, [
      { topic: 'audit', partition: 0, committedOffset: 3, endOffset: 3, lag: 0 },
      { topic: 'orders', partition: 0, committedOffset: 6, endOffset: 10, lag: 4 },
      { topic: 'orders', partition: 1, committedOffset: -1, endOffset: 4, lag: 4 },
    ]);
    const unknown = await broker.describeGroup('never-used');
    assert.deepEqual(unknown, { summary: { group: 'never-used', mode: 'stream', state: 'Empty', members: 0 }, generation: 0, strategy: '', members: [], lag: [] });
    await broker.close();
  });

  it('broker: deleting a topic deletes its committed offsets', async () => {
    const { broker, store } = await memoryBroker();
    await broker.createTopic('t', 2);
    await broker.createTopic('u', 1);
    await broker.commitOffsets(standalone('g', [{ topic: 't', partition: 1, offset: 5 }, { topic: 'u', partition: 0, offset: 2 }]));
    await broker.deleteTopic('t');
    assert.deepEqual(
      store.metadata.entries('offsets/').map(([key]) => key),
      ['offsets/g/u/0'],
    );
    await broker.createTopic('t', 2);
    assert.deepEqual(
      (await broker.fetchOffsets('g', 't')).map((entry) => entry.offset),
      [-1, -1],
    );
    assert.deepEqual(
      (await broker.describeGroup('g')).lag.map((entry) => entry.topic),
      ['u'],
    );
    await broker.close();
  });

  it('broker: broadcast groups do no coordination and their mode is fixed by first use', async () => {
    const { broker } = await memoryBroker();
    await broker.createTopic('news', 2);
    await fill(broker, 'news', 0, 5);
    // Two instances read everything and keep their own offsets.
    await broker.commitOffsets(standalone('feed/instance-a', [{ topic: 'news', partition: 0, offset: 5 }], 'broadcast'));
    await broker.commitOffsets(standalone('feed/instance-b', [{ topic: 'news', partition: 0, offset: 2 }], 'broadcast'));
    assert.equal((await broker.fetchOffsets('feed/instance-a', 'news', { mode: 'broadcast' }))[0]!.offset, 5);
    assert.equal((await broker.fetchOffsets('feed/instance-b', 'news', { mode: 'broadcast' }))[0]!.offset, 2);
    // A broadcast commit needs no membership, whatever generation it carries.
    await broker.commitOffsets({ group: 'feed/instance-a', generation: 4, memberId: 'x', offsets: [{ topic: 'news', partition: 1, offset: 0 }] });
    const join = (group: string) => broker.joinGroup({ group, memberId: '', clientId: 'c', host: 'h', topics: ['news'], strategy: 'range', sessionTimeoutMs: 1000, rebalanceTimeoutMs: 1000 });
    await rejectsWith(join('feed/instance-a'), ErrorCode.InvalidGroup);
    await rejectsWith(broker.heartbeat({ group: 'feed/instance-a', generation: 0, memberId: 'x' }), ErrorCode.InvalidGroup);
    await rejectsWith(broker.commitOffsets(standalone('feed/instance-a', [{ topic: 'news', partition: 0, offset: 1 }], 'stream')), ErrorCode.InvalidGroup);
    await rejectsWith(broker.fetchOffsets('feed/instance-a', 'news', { mode: 'stream' }), ErrorCode.InvalidGroup);
    // And the other way round.
    await join('workers');
    await rejectsWith(broker.commitOffsets(standalone('workers', [{ topic: 'news', partition: 0, offset: 1 }], 'broadcast')), ErrorCode.InvalidGroup);
    const description = await broker.describeGroup('feed/instance-b');
    assert.equal(description.summary.mode, 'broadcast');
    assert.deepEqual(description.members, []);
    assert.deepEqual(description.lag, [
      { topic: 'news', partition: 0, committedOffset: 2, endOffset: 5, lag: 3 },
      { topic: 'news', partition: 1, committedOffset: -1, endOffset: 0, lag: 0 },
    ]);
    assert.deepEqual(
      (await broker.listGroups()).map(({ group, mode, state, members }) => [group, mode, state, members]),
      [
        ['feed/instance-a', 'broadcast', 'Empty', 0],
        ['feed/instance-b', 'broadcast', 'Empty', 0],
        ['workers', 'stream', 'CompletingRebalance', 1],
      ],
    );
    await broker.close();
  });

  it('broker: group generations keep growing across a restart', async () => {
    const { dataDir, cleanup } = await tempDirectory();
    const clock = new ManualClock();
    try {
      let store = await openDiskStore(dataDir, clock);
      let broker = await BrokerCore.open({ store, clock, scheduler: new ManualScheduler(clock) });
      await broker.createTopic('t', 1);
      const join = (target: BrokerCore) => target.joinGroup({ group: 'g', memberId: '', clientId: 'c', host: 'h', topics: ['t'], strategy: 'range', sessionTimeoutMs: 1000, rebalanceTimeoutMs: 1000 });
      const first = await join(broker);
      await broker.leaveGroup({ group: 'g', memberId: first.memberId });
      assert.equal((await broker.describeGroup('g')).generation, 2);
      await broker.close();
      await store.close();

      store = await openDiskStore(dataDir, clock);
      broker = await BrokerCore.open({ store, clock, scheduler: new ManualScheduler(clock) });
      assert.equal((await join(broker)).generation, 3);
      await broker.close();
      await store.close();
    } finally {
      await cleanup();
    }
  });
});
