import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { assign, type Assignment, type AssignmentStrategy, assignmentStrategies, rangeAssign, roundRobinAssign, stickyAssign } from './assignors.js';

function flat(assignment: Assignment): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [member, topics] of assignment) out[member] = [...topics].flatMap(([topic, partitions]) => partitions.map((partition) => `${topic}-${partition}`));
  return out;
}

/** Every partition of a topic with a subscriber has exactly one owner, and only subscribers own partitions. */
export function checkCover(assignment: Assignment, members: ReadonlyArray<{ memberId: string; topics: readonly string[] }>, counts: ReadonlyMap<string, number>): void {
  const owners = new Map<string, string>();
  for (const [memberId, topics] of assignment) {
    const member = members.find((each) => each.memberId === memberId)!;
    for (const [topic, partitions] of topics) {
      assert.ok(member.topics.includes(topic), `${memberId} owns ${topic} without subscribing`);
      for (const partition of partitions) {
        const key = `${topic}-${partition}`;
        assert.ok(partition >= 0 && partition < counts.get(topic)!, `${key} exists`);
        assert.equal(owners.get(key), undefined, `${key} is owned by ${owners.get(key)} and ${memberId}`);
        owners.set(key, memberId);
      }
    }
  }
  for (const [topic, count] of counts) {
    if (!members.some((member) => member.topics.includes(topic))) continue;
    for (let partition = 0; partition < count; partition++) assert.ok(owners.has(`${topic}-${partition}`), `${topic}-${partition} has an owner`);
  }
}

describe('broker: assignors', () => {
  const counts = new Map([
    ['a', 5],
    ['b', 3],
  ]);
  const members = [
    { memberId: 'm2', topics: ['a', 'b'] },
    { memberId: 'm1', topics: ['a', 'b'] },
  ];

  it('broker: range assigns contiguous ranges per topic, the first members getting the extra', () => {
    assert.deepEqual(flat(rangeAssign({ members, partitionCounts: counts })), { m1: ['a-0', 'a-1', 'a-2', 'b-0', 'b-1'], m2: ['a-3', 'a-4', 'b-2'] });
  });

  it('broker: round robin deals partitions in turn, skipping members not subscribed', () => {
    assert.deepEqual(flat(roundRobinAssign({ members, partitionCounts: counts })), { m1: ['a-0', 'a-2', 'a-4', 'b-1'], m2: ['a-1', 'a-3', 'b-0', 'b-2'] });
    const mixed = roundRobinAssign({ members: [{ memberId: 'x', topics: ['a'] }, { memberId: 'y', topics: ['a', 'b'] }], partitionCounts: counts });
    assert.deepEqual(flat(mixed), { x: ['a-0', 'a-2', 'a-4'], y: ['a-1', 'a-3', 'b-0', 'b-1', 'b-2'] });
  });

  it('broker: sticky keeps owners and moves only what balance needs', () => {
    const big = new Map([['t', 12]]);
    const three = ['m1', 'm2', 'm3'].map((memberId) => ({ memberId, topics: ['t'] }));
    const initial = stickyAssign({ members: three, partitionCounts: big });
    for (const topics of initial.values()) assert.equal(topics.get('t')!.length, 4);
    // m2 leaves: m1 and m3 keep their 4 and share m2's.
    const two = stickyAssign({ members: [three[0]!, three[2]!], partitionCounts: big, previous: initial });
    for (const member of ['m1', 'm3']) {
      const before = initial.get(member)!.get('t')!;
      const after = two.get(member)!.get('t')!;
      assert.ok(before.every((partition) => after.includes(partition)), `${member} kept ${before} in ${after}`);
      assert.equal(after.length, 6);
    }
    // m4 joins: each of m1 and m3 gives up 2 and keeps 4 of its 6.
    const again = stickyAssign({ members: [three[0]!, three[2]!, { memberId: 'm4', topics: ['t'] }], partitionCounts: big, previous: two });
    for (const member of ['m1', 'm3']) {
      const after = again.get(member)!.get('t')!;
      assert.equal(after.length, 4);
      assert.ok(after.every((partition) => two.get(member)!.get('t')!.includes(partition)));
    }
    assert.equal(again.get('m4')!.get('t')!.length, 4);
  });

  it('broker: every assignor gives every partition exactly one subscribed owner (property)', () => {
    const topics = ['a', 'b', 'c', 'd'];
    fc.assert(
      fc.property(
        fc.constantFrom<AssignmentStrategy>(...assignmentStrategies),
        fc.array(fc.record({ id: fc.integer({ min: 0, max: 30 }), topics: fc.subarray(topics, { minLength: 1 }) }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 4, maxLength: 4 }),
        fc.array(fc.record({ id: fc.integer({ min: 0, max: 30 }), topic: fc.constantFrom(...topics), partition: fc.integer({ min: 0, max: 25 }) }), { maxLength: 40 }),
        (strategy, rawMembers, partitionCounts, previousClaims) => {
          const byId = new Map(rawMembers.map((member) => [`m${member.id}`, member.topics]));
          const members = [...byId].map(([memberId, subscribed]) => ({ memberId, topics: subscribed }));
          const counts = new Map(topics.map((topic, index) => [topic, partitionCounts[index]!]));
          // A previous assignment with clashes and stale entries: sticky must still produce a clean cover.
          const previous: Assignment = new Map();
          for (const claim of previousClaims) {
            const member = previous.get(`m${claim.id}`) ?? new Map<string, number[]>();
            previous.set(`m${claim.id}`, member);
            member.set(claim.topic, [...(member.get(claim.topic) ?? []), claim.partition]);
          }
          const result = assign(strategy, { members, partitionCounts: counts, previous });
          checkCover(result, members, counts);
          if (strategy !== 'range' && members.every((member) => member.topics.length === topics.length)) {
            const loads = [...result.values()].map((owned) => [...owned.values()].reduce((sum, partitions) => sum + partitions.length, 0));
            assert.ok(Math.max(...loads) - Math.min(...loads) <= 1, `balanced: ${loads}`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('broker: sticky with identical subscriptions keeps min(previous, share) partitions per member (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 1000 }), (partitions, before, after, seed) => {
        const counts = new Map([['t', partitions]]);
        const first = Array.from({ length: before }, (_, index) => ({ memberId: `m${index}`, topics: ['t'] }));
        const previous = stickyAssign({ members: first, partitionCounts: counts });
        // Some members leave, some join.
        const kept = first.filter((_, index) => (seed >> index) % 2 === 0 || index === 0);
        const joined = Array.from({ length: after }, (_, index) => ({ memberId: `n${index}`, topics: ['t'] }));
        const next = stickyAssign({ members: [...kept, ...joined], partitionCounts: counts, previous });
        const total = kept.length + joined.length;
        const floor = Math.floor(partitions / total);
        for (const member of kept) {
          const had = previous.get(member.memberId)!.get('t') ?? [];
          const has = next.get(member.memberId)!.get('t') ?? [];
          const stayed = has.filter((partition) => had.includes(partition)).length;
          assert.ok(stayed >= Math.min(had.length, floor), `${member.memberId} kept ${stayed} of ${had.length} (share ${floor})`);
        }
      }),
      { numRuns: 300 },
    );
  });
});
