import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, isWeirError } from '../core/errors.js';
import type { AssignmentStrategy } from './assignors.js';
import type { BrokerCore } from './broker-core.js';
import type { TopicAssignment } from './group-coordinator.js';
import type { ManualScheduler } from './scheduler.js';
import { isSettled, memoryBroker, rejectsWith, settle } from './test-support.js';

const SESSION_MS = 1000;
const REBALANCE_MS = 3000;

/** Ownership seen through syncGroup, per generation; fails the moment a partition has two owners in one generation. */
class OwnershipLog {
  private readonly byGeneration = new Map<number, Map<string, Set<string>>>();

  record(generation: number, memberId: string, assignment: readonly TopicAssignment[]): void {
    let owners = this.byGeneration.get(generation);
    if (owners === undefined) this.byGeneration.set(generation, (owners = new Map()));
    const mine = new Set(assignment.flatMap(({ topic, partitions }) => partitions.map((partition) => `${topic}-${partition}`)));
    for (const [other, theirs] of owners) {
      if (other === memberId) continue;
      for (const partition of mine) assert.ok(!theirs.has(partition), `generation ${generation}: ${partition} owned by ${other} and ${memberId}`);
    }
    owners.set(memberId, mine);
  }
}

/** A well-behaved consumer: joins, syncs, heartbeats, and rejoins when told to. */
class TestMember {
  memberId = '';
  generation = -1;
  synced = false;
  assignment: TopicAssignment[] = [];
  joining: Promise<void> | null = null;
  left = false;

  constructor(
    private readonly broker: BrokerCore,
    private readonly group: string,
    readonly topics: string[],
    private readonly log: OwnershipLog,
    private readonly strategy: AssignmentStrategy = 'range',
  ) {}

  join(): Promise<void> {
    if (this.joining !== null || this.left) return this.joining ?? Promise.resolve();
    this.synced = false;
    this.joining = this.broker
      .joinGroup({ group: this.group, memberId: this.memberId, clientId: 'test', host: '127.0.0.1', topics: this.topics, strategy: this.strategy, sessionTimeoutMs: SESSION_MS, rebalanceTimeoutMs: REBALANCE_MS })
      .then(
        (result) => {
          this.memberId = result.memberId;
          this.generation = result.generation;
          this.joining = null;
        },
        (error: unknown) => {
          this.joining = null;
          this.handle(error);
        },
      );
    return this.joining;
  }

  async sync(): Promise<void> {
    if (this.joining !== null || this.left || this.memberId === '' || this.synced) return;
    try {
      const { assignment } = await this.broker.syncGroup({ group: this.group, generation: this.generation, memberId: this.memberId });
      this.assignment = assignment;
      this.synced = true;
      this.log.record(this.generation, this.memberId, assignment);
    } catch (error) {
      this.handle(error);
    }
  }

  async heartbeat(): Promise<void> {
    if (this.joining !== null || this.left || this.memberId === '') return;
    try {
      await this.broker.heartbeat({ group: this.group, generation: this.generation, memberId: this.memberId });
    } catch (error) {
      this.handle(error);
    }
  }

  async leave(): Promise<void> {
    if (this.joining !== null || this.left || this.memberId === '') return;
    this.left = true;
    // A member that already expired has nothing to leave.
    await this.broker.leaveGroup({ group: this.group, memberId: this.memberId }).catch((error: unknown) => {
      if (!isWeirError(error, ErrorCode.UnknownMember)) throw error;
    });
  }

  /** One step of a consumer's loop. */
  async step(): Promise<void> {
    if (this.left || this.joining !== null) return;
    if (this.memberId === '') void this.join();
    else if (!this.synced) await this.sync();
    else await this.heartbeat();
  }

  get partitions(): string[] {
    return this.assignment.flatMap(({ topic, partitions }) => partitions.map((partition) => `${topic}-${partition}`));
  }

  private handle(error: unknown): void {
    if (isWeirError(error, ErrorCode.RebalanceInProgress) || isWeirError(error, ErrorCode.IllegalGeneration)) {
      void this.join();
    } else if (isWeirError(error, ErrorCode.UnknownMember)) {
      // Expired or dropped: start over as a new member, as a Kafka consumer does.
      this.memberId = '';
      this.assignment = [];
      void this.join();
    } else if (!isWeirError(error, ErrorCode.BrokerShuttingDown)) {
      throw error;
    }
  }
}

/** Runs the live members' loops while time passes, until the group settles. */
async function runFor(scheduler: ManualScheduler, members: readonly TestMember[], ms: number, stepMs = 100): Promise<void> {
  for (let elapsed = 0; elapsed < ms; elapsed += stepMs) {
    for (const member of members) await member.step();
    await settle();
    scheduler.advance(stepMs);
    await settle();
  }
}

function allPartitions(topic: string, count: number): string[] {
  return Array.from({ length: count }, (_, partition) => `${topic}-${partition}`);
}

function assertCover(members: readonly TestMember[], expected: readonly string[]): void {
  const owned = members.flatMap((member) => member.partitions);
  assert.equal(new Set(owned).size, owned.length, `no partition twice: ${owned}`);
  assert.deepEqual([...owned].sort(), [...expected].sort());
}

describe('broker: consumer groups', () => {
  it('broker: three members get a disjoint cover; after one leaves and one expires the last gets everything', async () => {
    const { broker, scheduler } = await memoryBroker();
    await broker.createTopic('jobs', 6);
    const log = new OwnershipLog();
    const [a, b, c] = [0, 1, 2].map(() => new TestMember(broker, 'workers', ['jobs'], log));
    await a!.join();
    assert.equal(a!.generation, 1, 'a lone member completes its round at once');
    void b!.join();
    void c!.join();
    await settle();
    assert.equal((await broker.describeGroup('workers')).summary.state, 'PreparingRebalance');
    await runFor(scheduler, [a!, b!, c!], 500);
    assert.equal(a!.generation, 2);
    assert.deepEqual(
      [a!, b!, c!].map((member) => member.partitions.length),
      [2, 2, 2],
    );
    assertCover([a!, b!, c!], allPartitions('jobs', 6));
    assert.equal((await broker.describeGroup('workers')).summary.state, 'Stable');

    await b!.leave();
    await runFor(scheduler, [a!, c!], 500);
    assertCover([a!, c!], allPartitions('jobs', 6));
    assert.equal(a!.generation, 3);

    // c stops heartbeating: its session runs out and a takes over.
    await runFor(scheduler, [a!], SESSION_MS + REBALANCE_MS);
    const description = await broker.describeGroup('workers');
    assert.deepEqual(
      description.members.map((member) => member.memberId),
      [a!.memberId],
    );
    assert.deepEqual(a!.partitions, allPartitions('jobs', 6));
    assert.equal(description.summary.state, 'Stable');
    await broker.close();
  });

  it('broker: a round drops members that do not rejoin within the rebalance timeout', async () => {
    const { broker, scheduler } = await memoryBroker();
    await broker.createTopic('jobs', 4);
    const log = new OwnershipLog();
    const [a, b] = [0, 1].map(() => new TestMember(broker, 'g', ['jobs'], log));
    await runFor(scheduler, [a!, b!], 500);
    assertCover([a!, b!], allPartitions('jobs', 4));
    // A third member joins; b heartbeats (so its session stays alive) but never rejoins.
    const c = new TestMember(broker, 'g', ['jobs'], log);
    void c.join();
    await settle();
    for (let elapsed = 0; elapsed < REBALANCE_MS; elapsed += 100) {
      await a!.step();
      await broker.heartbeat({ group: 'g', generation: b!.generation, memberId: b!.memberId }).catch(() => {});
      scheduler.advance(100);
      await settle();
    }
    await runFor(scheduler, [a!, c], 300);
    const members = (await broker.describeGroup('g')).members.map((member) => member.memberId).sort();
    assert.deepEqual(members, [a!.memberId, c.memberId].sort());
    assertCover([a!, c], allPartitions('jobs', 4));
    await rejectsWith(broker.heartbeat({ group: 'g', generation: b!.generation, memberId: b!.memberId }), ErrorCode.UnknownMember);
    await broker.close();
  });

  it('broker: heartbeat, sync and commit answer UNKNOWN_MEMBER, ILLEGAL_GENERATION and REBALANCE_IN_PROGRESS as Kafka does', async () => {
    const { broker } = await memoryBroker();
    await broker.createTopic('t', 2);
    const join = (memberId = '') => broker.joinGroup({ group: 'g', memberId, clientId: 'c', host: 'h', topics: ['t'], strategy: 'range', sessionTimeoutMs: SESSION_MS, rebalanceTimeoutMs: REBALANCE_MS });
    const commit = (generation: number, memberId: string) => broker.commitOffsets({ group: 'g', generation, memberId, offsets: [{ topic: 't', partition: 0, offset: 1 }] });
    await rejectsWith(broker.heartbeat({ group: 'g', generation: 0, memberId: 'nobody' }), ErrorCode.UnknownMember);
    const first = await join();
    assert.equal(first.generation, 1);
    assert.deepEqual(first.members, [first.memberId]);
    await rejectsWith(broker.heartbeat({ group: 'g', generation: 1, memberId: 'nobody' }), ErrorCode.UnknownMember);
    await rejectsWith(broker.heartbeat({ group: 'g', generation: 0, memberId: first.memberId }), ErrorCode.IllegalGeneration);
    await rejectsWith(broker.syncGroup({ group: 'g', generation: 2, memberId: first.memberId }), ErrorCode.IllegalGeneration);
    // Between the round and the sync, commits wait for the sync.
    await rejectsWith(commit(1, first.memberId), ErrorCode.RebalanceInProgress);
    await broker.heartbeat({ group: 'g', generation: 1, memberId: first.memberId });
    assert.deepEqual((await broker.syncGroup({ group: 'g', generation: 1, memberId: first.memberId })).assignment, [{ topic: 't', partitions: [0, 1] }]);
    await commit(1, first.memberId);
    await rejectsWith(commit(0, first.memberId), ErrorCode.IllegalGeneration);
    await rejectsWith(commit(1, 'nobody'), ErrorCode.UnknownMember);
    await commit(-1, '');

    const second = join();
    await settle();
    await rejectsWith(broker.heartbeat({ group: 'g', generation: 1, memberId: first.memberId }), ErrorCode.RebalanceInProgress);
    await rejectsWith(broker.syncGroup({ group: 'g', generation: 1, memberId: first.memberId }), ErrorCode.RebalanceInProgress);
    // While the round collects joins, a member may still commit for its generation (eager consumers commit on revoke).
    await commit(1, first.memberId);
    const rejoined = await join(first.memberId);
    assert.equal(rejoined.generation, 2);
    assert.equal((await second).generation, 2);
    assert.deepEqual(rejoined.members, [first.memberId, (await second).memberId].sort());
    await rejectsWith(join('stranger'), ErrorCode.UnknownMember);
    await rejectsWith(broker.joinGroup({ group: 'g', memberId: '', clientId: 'c', host: 'h', topics: [], strategy: 'range', sessionTimeoutMs: 1, rebalanceTimeoutMs: 1 }), ErrorCode.InvalidArgument);
    await rejectsWith(broker.joinGroup({ group: 'g', memberId: '', clientId: 'c', host: 'h', topics: ['t'], strategy: 'random' as never, sessionTimeoutMs: 1, rebalanceTimeoutMs: 1 }), ErrorCode.InvalidArgument);
    await rejectsWith(broker.joinGroup({ group: '', memberId: '', clientId: 'c', host: 'h', topics: ['t'], strategy: 'range', sessionTimeoutMs: 1, rebalanceTimeoutMs: 1 }), ErrorCode.InvalidGroup);
    await broker.close();
  });

  it('broker: the sticky strategy keeps partitions with their previous owners', async () => {
    const { broker, scheduler } = await memoryBroker();
    await broker.createTopic('s', 12);
    const log = new OwnershipLog();
    const members = [0, 1, 2].map(() => new TestMember(broker, 'sticky', ['s'], log, 'sticky'));
    await runFor(scheduler, members, 500);
    assertCover(members, allPartitions('s', 12));
    const before = new Map(members.map((member) => [member, member.partitions]));
    await members[1]!.leave();
    const remaining = [members[0]!, members[2]!];
    await runFor(scheduler, remaining, 500);
    assertCover(remaining, allPartitions('s', 12));
    for (const member of remaining) {
      assert.ok(before.get(member)!.every((partition) => member.partitions.includes(partition)), 'every kept member keeps its partitions');
    }
    const newcomer = new TestMember(broker, 'sticky', ['s'], log, 'sticky');
    const afterLeave = new Map(remaining.map((member) => [member, member.partitions]));
    await runFor(scheduler, [...remaining, newcomer], 500);
    assertCover([...remaining, newcomer], allPartitions('s', 12));
    for (const member of remaining) {
      assert.equal(member.partitions.length, 4);
      assert.ok(member.partitions.every((partition) => afterLeave.get(member)!.includes(partition)), 'only moved what the newcomer needed');
    }
    assert.equal((await broker.describeGroup('sticky')).strategy, 'sticky');
    await broker.close();
  });

  it('broker: more partitions or a new subscribed topic trigger a rebalance that assigns them', async () => {
    const { broker, scheduler } = await memoryBroker();
    await broker.createTopic('grow', 2);
    const log = new OwnershipLog();
    const members = [0, 1].map(() => new TestMember(broker, 'g', ['grow', 'later'], log));
    await runFor(scheduler, members, 500);
    assertCover(members, allPartitions('grow', 2));
    await broker.alterTopic('grow', { partitions: 5 });
    await runFor(scheduler, members, 500);
    assertCover(members, allPartitions('grow', 5));
    await broker.createTopic('later', 3);
    await runFor(scheduler, members, 500);
    assertCover(members, [...allPartitions('grow', 5), ...allPartitions('later', 3)]);
    await broker.deleteTopic('later');
    await runFor(scheduler, members, 500);
    assertCover(members, allPartitions('grow', 5));
    await broker.close();
  });

  it('broker: the initial rebalance delay gathers members that join together into one generation', async () => {
    const { broker, scheduler } = await memoryBroker({ initialRebalanceDelayMs: 300 });
    await broker.createTopic('t', 3);
    const log = new OwnershipLog();
    const members = [0, 1, 2].map(() => new TestMember(broker, 'g', ['t'], log));
    for (const member of members) void member.join();
    await settle();
    scheduler.advance(299);
    await settle();
    assert.ok(members.every((member) => member.generation === -1));
    scheduler.advance(1);
    await settle();
    assert.deepEqual(
      members.map((member) => member.generation),
      [1, 1, 1],
    );
    await broker.close();
  });

  it('broker: close and abort wake waiting joins', async () => {
    const { broker } = await memoryBroker();
    await broker.createTopic('t', 1);
    const join = (signal?: AbortSignal) => broker.joinGroup({ group: 'g', memberId: '', clientId: 'c', host: 'h', topics: ['t'], strategy: 'range', sessionTimeoutMs: SESSION_MS, rebalanceTimeoutMs: REBALANCE_MS, signal });
    await join();
    const controller = new AbortController();
    const aborted = join(controller.signal);
    const waiting = join();
    assert.equal(await isSettled(waiting), false);
    controller.abort(new Error('gone'));
    await assert.rejects(aborted, /gone/);
    await broker.close();
    await rejectsWith(waiting, ErrorCode.BrokerShuttingDown);
    await rejectsWith(join(), ErrorCode.BrokerShuttingDown);
  });

  it('broker: random joins, leaves, crashes, heartbeats and time never give a partition two owners in a generation (property)', async () => {
    type Op = { kind: 'join' | 'stepAll' | 'grow' } | { kind: 'step' | 'leave' | 'crash'; who: number } | { kind: 'advance'; ms: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 3, arbitrary: fc.constant({ kind: 'join' as const }) },
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('step' as const), who: fc.nat(20) }) },
      { weight: 6, arbitrary: fc.constant({ kind: 'stepAll' as const }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('leave' as const), who: fc.nat(20) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('crash' as const), who: fc.nat(20) }) },
      { weight: 3, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 2500 }) }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'grow' as const }) },
    );
    const stats = { runs: 0, checked: 0, generations: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 80 }), fc.constantFrom<AssignmentStrategy>('range', 'round-robin', 'sticky'), async (ops, strategy) => {
        stats.runs++;
        const { broker, scheduler } = await memoryBroker();
        await broker.createTopic('a', 5);
        await broker.createTopic('b', 3);
        const log = new OwnershipLog();
        const members: TestMember[] = [];
        const live: TestMember[] = [];
        let partitionsOfA = 5;
        const checkCoordinator = (): void => {
          const coordinator = broker.internals.groups.coordinator('p');
          if (coordinator === null) return;
          const seen = new Set<string>();
          for (const assignment of coordinator.currentAssignment().values()) {
            for (const { topic, partitions } of assignment) {
              for (const partition of partitions) {
                const key = `${topic}-${partition}`;
                assert.ok(!seen.has(key), `coordinator assigns ${key} twice`);
                seen.add(key);
              }
            }
          }
        };
        for (const step of ops) {
          const target = 'who' in step ? live[step.who % Math.max(1, live.length)] : undefined;
          if (step.kind === 'join') {
            const member = new TestMember(broker, 'p', members.length % 2 === 0 ? ['a', 'b'] : ['a'], log, strategy);
            members.push(member);
            live.push(member);
            void member.join();
          } else if (step.kind === 'step' && target) {
            await target.step();
          } else if (step.kind === 'stepAll') {
            for (const member of live) await member.step();
          } else if (step.kind === 'leave' && target) {
            await target.leave();
            live.splice(live.indexOf(target), 1);
          } else if (step.kind === 'crash' && target) {
            live.splice(live.indexOf(target), 1);
          } else if (step.kind === 'advance') {
            scheduler.advance(step.ms);
          } else if (step.kind === 'grow' && partitionsOfA < 9) {
            partitionsOfA++;
            await broker.alterTopic('a', { partitions: partitionsOfA });
          }
          await settle();
          checkCoordinator();
        }
        // Let the survivors settle: crashed members expire, rounds complete, everyone syncs.
        await runFor(scheduler, live, SESSION_MS + 2 * REBALANCE_MS);
        checkCoordinator();
        const description = await broker.describeGroup('p');
        const current = live.filter((member) => member.memberId !== '');
        if (live.length > 0) {
          assert.equal(description.summary.state, 'Stable');
          assert.deepEqual(description.members.map((member) => member.memberId).sort(), current.map((member) => member.memberId).sort());
          assert.ok(current.every((member) => member.synced && member.generation === description.generation));
          const expected = [...allPartitions('a', partitionsOfA), ...(current.some((member) => member.topics.includes('b')) ? allPartitions('b', 3) : [])];
          stats.checked++;
          stats.generations += description.generation;
          assertCover(current, expected);
        }
        await broker.close();
      }),
      { numRuns: 100 },
    );
    // The property must have been exercised: many runs end with a settled group of several generations.
    assert.ok(stats.checked > 20 && stats.generations > stats.checked, JSON.stringify(stats));
  });
});
