/**
 * Partition assignors: pure functions from the members' subscriptions (and, for sticky, the previous generation's
 * assignment) to an assignment in which every partition of a subscribed topic has exactly one owner. Members are
 * taken in member-id order so the result is deterministic.
 */
export type AssignmentStrategy = 'range' | 'round-robin' | 'sticky';

export const assignmentStrategies: readonly AssignmentStrategy[] = ['range', 'round-robin', 'sticky'];

export interface AssignorMember {
  memberId: string;
  topics: readonly string[];
}

/** Per member: topic → partition numbers (ascending). Members that get nothing have an empty map. */
export type Assignment = Map<string, Map<string, number[]>>;

export interface AssignmentInput {
  members: readonly AssignorMember[];
  /** Partition count of every existing topic; subscriptions to other topics are ignored. */
  partitionCounts: ReadonlyMap<string, number> | ((topic: string) => number | undefined);
  /** The previous generation's assignment (sticky keeps owners from it). */
  previous?: Assignment;
}

export function assign(strategy: AssignmentStrategy, input: AssignmentInput): Assignment {
  switch (strategy) {
    case 'range':
      return rangeAssign(input);
    case 'round-robin':
      return roundRobinAssign(input);
    case 'sticky':
      return stickyAssign(input);
  }
}

interface Prepared {
  /** Members sorted by id, with their subscriptions as sets. */
  members: Array<{ memberId: string; topics: Set<string> }>;
  /** Subscribed, existing topics, sorted, with their partition counts. */
  topics: Array<[string, number]>;
  result: Assignment;
}

function prepare(input: AssignmentInput): Prepared {
  const members = [...input.members].sort((a, b) => compare(a.memberId, b.memberId)).map((member) => ({ memberId: member.memberId, topics: new Set(member.topics) }));
  const countOf = typeof input.partitionCounts === 'function' ? input.partitionCounts : (topic: string) => (input.partitionCounts as ReadonlyMap<string, number>).get(topic);
  const subscribed = new Set<string>();
  for (const member of members) for (const topic of member.topics) subscribed.add(topic);
  const topics: Array<[string, number]> = [];
  for (const topic of [...subscribed].sort(compare)) {
    const count = countOf(topic);
    if (count !== undefined && count > 0) topics.push([topic, count]);
  }
  const result: Assignment = new Map(members.map((member) => [member.memberId, new Map<string, number[]>()]));
  return { members, topics, result };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function give(result: Assignment, memberId: string, topic: string, partition: number): void {
  const topics = result.get(memberId)!;
  let partitions = topics.get(topic);
  if (partitions === undefined) topics.set(topic, (partitions = []));
  partitions.push(partition);
}

function sortPartitions(result: Assignment): Assignment {
  for (const topics of result.values()) for (const partitions of topics.values()) partitions.sort((a, b) => a - b);
  return result;
}

/** Kafka's RangeAssignor: per topic, contiguous ranges to the subscribed members; the first ones get one extra. */
export function rangeAssign(input: AssignmentInput): Assignment {
  const { members, topics, result } = prepare(input);
  for (const [topic, count] of topics) {
    const subscribers = members.filter((member) => member.topics.has(topic));
    const share = Math.floor(count / subscribers.length);
    const extra = count % subscribers.length;
    let next = 0;
    subscribers.forEach((member, index) => {
      const length = share + (index < extra ? 1 : 0);
      for (let partition = next; partition < next + length; partition++) give(result, member.memberId, topic, partition);
      next += length;
    });
  }
  return result;
}

/** Kafka's RoundRobinAssignor: every (topic, partition) in order, dealt to members in turn, skipping non-subscribers. */
export function roundRobinAssign(input: AssignmentInput): Assignment {
  const { members, topics, result } = prepare(input);
  let turn = 0;
  for (const [topic, count] of topics) {
    for (let partition = 0; partition < count; partition++) {
      while (!members[turn % members.length]!.topics.has(topic)) turn++;
      give(result, members[turn % members.length]!.memberId, topic, partition);
      turn++;
    }
  }
  return result;
}

/**
 * Sticky: every partition stays with its previous owner if that member is still here and subscribed; the others go
 * to the least-loaded subscribed member; then, one at a time, a partition moves from the most-loaded member that can
 * give one to its least-loaded fellow subscriber while their loads differ by two or more, newly placed partitions
 * before kept ones. Every move shrinks the sum of the squared loads, so this ends; with identical subscriptions it
 * ends balanced (loads differ by at most one) with every member keeping at least min(previous, ⌊partitions/members⌋)
 * of its partitions.
 */
export function stickyAssign(input: AssignmentInput): Assignment {
  const { members, topics, result } = prepare(input);
  if (members.length === 0) return result;
  const partitionCount = new Map(topics);
  /** Partitions per member: kept ones first, then newly placed ones, so moves take from the end. */
  const owned = new Map<string, Array<[string, number]>>(members.map((member) => [member.memberId, []]));
  const taken = new Set<string>();
  const keyOf = (topic: string, partition: number): string => `${topic}\u0000${partition}`;
  for (const member of members) {
    const previous = input.previous?.get(member.memberId);
    if (previous === undefined) continue;
    for (const [topic, partitions] of [...previous].sort(([a], [b]) => compare(a, b))) {
      const count = partitionCount.get(topic);
      if (count === undefined || !member.topics.has(topic)) continue;
      for (const partition of partitions) {
        const key = keyOf(topic, partition);
        if (partition >= count || taken.has(key)) continue;
        taken.add(key);
        owned.get(member.memberId)!.push([topic, partition]);
      }
    }
  }
  const leastLoaded = (topic: string): string | null => {
    let best: string | null = null;
    let bestLoad = Infinity;
    for (const member of members) {
      if (!member.topics.has(topic)) continue;
      const load = owned.get(member.memberId)!.length;
      if (load < bestLoad) {
        best = member.memberId;
        bestLoad = load;
      }
    }
    return best;
  };
  for (const [topic, count] of topics) {
    for (let partition = 0; partition < count; partition++) {
      if (taken.has(keyOf(topic, partition))) continue;
      owned.get(leastLoaded(topic)!)!.push([topic, partition]);
    }
  }
  // One move at a time from the most-loaded member that can give, so no member is drained below its share and
  // refilled with someone else's partitions.
  const loadOf = (memberId: string): number => owned.get(memberId)!.length;
  for (;;) {
    const byLoad = [...members].sort((a, b) => loadOf(b.memberId) - loadOf(a.memberId) || compare(a.memberId, b.memberId));
    let moved = false;
    for (const member of byLoad) {
      const mine = owned.get(member.memberId)!;
      const targets = new Map<string, string | null>();
      for (let index = mine.length - 1; index >= 0 && !moved; index--) {
        const [topic, partition] = mine[index]!;
        if (!targets.has(topic)) targets.set(topic, leastLoaded(topic));
        const target = targets.get(topic)!;
        if (target === null || mine.length - loadOf(target) < 2) continue;
        mine.splice(index, 1);
        owned.get(target)!.push([topic, partition]);
        moved = true;
      }
      if (moved) break;
    }
    if (!moved) break;
  }
  for (const [memberId, partitions] of owned) for (const [topic, partition] of partitions) give(result, memberId, topic, partition);
  return sortPartitions(result);
}
