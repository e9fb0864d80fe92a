import type { Clock } from '../core/clock.js';
import { ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { MessageStore } from '../storage/message-store.js';
import { assignmentStrategies } from './assignors.js';
import { brokerError, invalidArgument, isNonNegativeInteger, type MetadataOp, shuttingDown } from './errors.js';
import { GroupCoordinator, type GroupMemberDescription, type GroupState, type JoinGroupRequest, type JoinGroupResult, type TopicAssignment } from './group-coordinator.js';
import type { OffsetCommit, OffsetStore } from './offset-store.js';
import type { Scheduler } from './scheduler.js';
import { type TopicObserver, type TopicRegistry, validateTopicName } from './topic-registry.js';

/**
 * `stream`: members coordinate through joins; each partition goes to one member. `broadcast`: no coordination; every
 * consumer instance reads every partition and commits its own offsets (clients use one group per instance, e.g.
 * `<group>/<instance id>`). A group's mode is fixed by its first use.
 */
export type GroupMode = 'stream' | 'broadcast' | 'shared' | 'key_shared';

const GROUP_KEY_PREFIX = 'group/';
const MAX_GROUP_NAME = 255;
const MAX_OFFSET_METADATA = 4096;
/** Bounds on member timeouts, in milliseconds. */
const MAX_TIMEOUT_MS = 3_600_000;

export interface SyncGroupRequest {
  group: string;
  generation: number;
  memberId: string;
}

export type HeartbeatRequest = SyncGroupRequest;

export interface LeaveGroupRequest {
  group: string;
  memberId: string;
}

export interface CommitOffsetsRequest {
  group: string;
  /** The member's generation, or -1 for a commit outside group coordination (no membership checks). */
  generation: number;
  memberId: string;
  offsets: ReadonlyArray<{ topic: string; partition: number; offset: number; metadata?: string }>;
  /** The group's mode; absent means the mode it has, or `stream` for a new group. */
  mode?: GroupMode;
}

export interface PartitionOffset {
  topic: string;
  partition: number;
  /** The committed offset (the next one to consume), or -1. */
  offset: number;
  metadata: string;
}

export interface GroupLag {
  topic: string;
  partition: number;
  /** -1 when none is committed. */
  committedOffset: number;
  endOffset: number;
  /** Messages between the committed offset (or the partition start) and the end. */
  lag: number;
}

export interface GroupSummary {
  group: string;
  mode: GroupMode;
  state: GroupState;
  members: number;
}

export interface GroupDescription {
  summary: GroupSummary;
  generation: number;
  /** The assignment strategy of the current generation; '' when there is none. */
  strategy: string;
  members: GroupMemberDescription[];
  /** Per partition of every topic the members subscribe to or the group has offsets for. */
  lag: GroupLag[];
}

/** `group/<uri-encoded name>`: the mode (fixed at first use) and the last generation, so generations keep growing across restarts. */
interface StoredGroup {
  mode: GroupMode;
  generation: number;
}

interface GroupEntry {
  name: string;
  mode: GroupMode;
  generation: number;
  /** Stream groups, once a member joined. */
  coordinator: GroupCoordinator | null;
}

function groupKey(name: string): string {
  return GROUP_KEY_PREFIX + encodeURIComponent(name);
}

function validateGroupName(name: unknown): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_GROUP_NAME || /[\u0000-\u001f\u007f]/.test(name)) {
    throw brokerError(ErrorCode.InvalidGroup, `a group name is 1 to ${MAX_GROUP_NAME} printable characters, not ${JSON.stringify(name)}`);
  }
}

function validateMode(mode: unknown): void {
  if (mode !== undefined && mode !== 'stream' && mode !== 'broadcast') throw invalidArgument(`a group mode is stream or broadcast, not ${String(mode)}`);
}

export interface ConsumerGroupsOptions {
  initialRebalanceDelayMs: number;
}

/**
 * Every consumer group: their modes, their coordinators (stream groups), and their committed offsets and lag. Routes
 * each group call to the group's coordinator after checking the group's mode.
 */
export class ConsumerGroups implements TopicObserver {
  private readonly groups = new Map<string, GroupEntry>();
  private closed = false;

  constructor(
    private readonly store: MessageStore,
    private readonly registry: TopicRegistry,
    private readonly offsets: OffsetStore,
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
    private readonly logger: Logger,
    private readonly options: ConsumerGroupsOptions,
  ) {
    for (const [key, value] of store.metadata.entries(GROUP_KEY_PREFIX)) {
      const stored = value as StoredGroup;
      const name = decodeURIComponent(key.slice(GROUP_KEY_PREFIX.length));
      this.groups.set(name, { name, mode: stored.mode, generation: stored.generation, coordinator: null });
    }
  }

  join(request: JoinGroupRequest): Promise<JoinGroupResult> {
    if (this.closed) return Promise.reject(shuttingDown());
    try {
      validateGroupName(request.group);
      if (typeof request.memberId !== 'string') throw invalidArgument('memberId must be a string');
      if (!Array.isArray(request.topics) || request.topics.length === 0) throw invalidArgument('a member subscribes to at least one topic');
      for (const topic of request.topics) {
        const error = validateTopicName(topic);
        if (error) throw invalidArgument(error);
      }
      if (!assignmentStrategies.includes(request.strategy)) throw invalidArgument(`strategy must be one of ${assignmentStrategies.join(', ')}, not ${String(request.strategy)}`);
      for (const field of ['sessionTimeoutMs', 'rebalanceTimeoutMs'] as const) {
        const value = request[field];
        if (!Number.isSafeInteger(value) || value < 1 || value > MAX_TIMEOUT_MS) throw invalidArgument(`${field} must be 1 to ${MAX_TIMEOUT_MS}, not ${value}`);
      }
      return this.coordinatorFor(request.group, true)!.join(request);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Claims a name for a shared or key_shared group (WorkQueues persists its definition under the same key). A name
   * already used in another mode is INVALID_GROUP.
   */
  claim(group: string, mode: 'shared' | 'key_shared'): void {
    validateGroupName(group);
    const entry = this.groups.get(group);
    if (entry !== undefined) {
      if (entry.mode !== mode) throw this.wrongMode(entry, mode);
      return;
    }
    this.groups.set(group, { name: group, mode, generation: 0, coordinator: null });
  }

  /** Gives back a shared group's name once its definition is deleted. */
  release(group: string): void {
    const entry = this.groups.get(group);
    if (entry !== undefined && (entry.mode === 'shared' || entry.mode === 'key_shared')) this.groups.delete(group);
  }

  sync(request: SyncGroupRequest): TopicAssignment[] {
    return this.memberCoordinator(request.group, request.memberId).sync(request.generation, request.memberId);
  }

  heartbeat(request: HeartbeatRequest): void {
    this.memberCoordinator(request.group, request.memberId).heartbeat(request.generation, request.memberId);
  }

  leave(request: LeaveGroupRequest): void {
    this.memberCoordinator(request.group, request.memberId).leave(request.memberId);
  }

  async commit(request: CommitOffsetsRequest): Promise<void> {
    if (this.closed) throw shuttingDown();
    validateGroupName(request.group);
    validateMode(request.mode);
    const entry = this.groups.get(request.group);
    if (entry !== undefined && request.mode !== undefined && entry.mode !== request.mode) throw this.wrongMode(entry, request.mode);
    const mode = entry?.mode ?? request.mode ?? 'stream';
    if (entry !== undefined && (mode === 'shared' || mode === 'key_shared')) throw this.wrongMode(entry, request.mode ?? 'stream');
    // Broadcast groups have no membership to check: every instance commits on its own.
    if (request.generation !== -1 && mode === 'stream') {
      const coordinator = entry?.coordinator;
      if (coordinator === null || coordinator === undefined) throw brokerError(ErrorCode.UnknownMember, `group "${request.group}" has no member "${request.memberId}"; join again`);
      coordinator.checkCommit(request.generation, request.memberId);
    }
    if (!Array.isArray(request.offsets)) throw invalidArgument('offsets must be a list');
    const commits: OffsetCommit[] = request.offsets.map(({ topic, partition, offset, metadata }) => {
      this.registry.queueId(topic, partition);
      if (!isNonNegativeInteger(offset)) throw invalidArgument(`a committed offset is a non-negative integer, not ${offset}`);
      const text = metadata ?? '';
      if (typeof text !== 'string' || text.length > MAX_OFFSET_METADATA) throw invalidArgument(`offset metadata is a string of at most ${MAX_OFFSET_METADATA} characters`);
      return { topic, partition, offset, metadata: text };
    });
    if (commits.length === 0) return;
    const extra: MetadataOp[] = [];
    if (entry === undefined) {
      this.groups.set(request.group, { name: request.group, mode, generation: 0, coordinator: null });
      extra.push({ key: groupKey(request.group), value: { mode, generation: 0 } satisfies StoredGroup });
    }
    await this.offsets.commit(request.group, commits, extra);
  }

  /** One entry per partition of the topic; offset -1 where nothing is committed. */
  fetchOffsets(group: string, topicName: string, mode?: GroupMode): PartitionOffset[] {
    if (this.closed) throw shuttingDown();
    validateGroupName(group);
    validateMode(mode);
    const entry = this.groups.get(group);
    if (entry !== undefined && mode !== undefined && entry.mode !== mode) throw this.wrongMode(entry, mode);
    const topic = this.registry.get(topicName);
    return topic.queueIds.map((_, partition) => {
      const committed = this.offsets.get(group, topic.name, partition);
      return { topic: topic.name, partition, offset: committed?.offset ?? -1, metadata: committed?.metadata ?? '' };
    });
  }

  describe(group: string): GroupDescription {
    validateGroupName(group);
    const entry = this.groups.get(group);
    const coordinator = entry?.coordinator ?? null;
    const topics = new Set(this.offsets.topicsOf(group));
    for (const topic of coordinator?.subscribedTopics() ?? []) topics.add(topic);
    const lag: GroupLag[] = [];
    for (const name of [...topics].sort()) {
      const topic = this.registry.find(name);
      if (topic === undefined) continue;
      topic.queueIds.forEach((queueId, partition) => {
        const info = this.store.queueById(queueId);
        const startOffset = info?.startOffset ?? 0;
        const endOffset = info?.endOffset ?? 0;
        const committedOffset = this.offsets.get(group, name, partition)?.offset ?? -1;
        const from = committedOffset < 0 ? startOffset : Math.max(committedOffset, startOffset);
        lag.push({ topic: name, partition, committedOffset, endOffset, lag: Math.max(0, endOffset - from) });
      });
    }
    const members = coordinator?.describeMembers() ?? [];
    return {
      summary: { group, mode: entry?.mode ?? 'stream', state: coordinator?.state ?? 'Empty', members: members.length },
      generation: coordinator?.generation ?? entry?.generation ?? 0,
      strategy: coordinator?.strategy ?? '',
      members,
      lag,
    };
  }

  list(): GroupSummary[] {
    return [...this.groups.values()]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((entry) => ({ group: entry.name, mode: entry.mode, state: entry.coordinator?.state ?? 'Empty', members: entry.coordinator?.memberCount ?? 0 }));
  }

  /** The coordinator of a stream group, once a member joined (tests check invariants through it). */
  coordinator(group: string): GroupCoordinator | null {
    return this.groups.get(group)?.coordinator ?? null;
  }

  topicChanged(name: string): void {
    for (const entry of this.groups.values()) entry.coordinator?.topicChanged(name);
  }

  /** Rejects every waiting join with BROKER_SHUTTING_DOWN and stops the groups' timers. */
  close(): void {
    this.closed = true;
    for (const entry of this.groups.values()) entry.coordinator?.close(shuttingDown());
  }

  private coordinatorFor(group: string, create: boolean): GroupCoordinator | null {
    let entry = this.groups.get(group);
    if (entry !== undefined && entry.mode !== 'stream') throw this.wrongMode(entry, 'stream');
    if (entry === undefined) {
      if (!create) return null;
      entry = { name: group, mode: 'stream', generation: 0, coordinator: null };
      this.groups.set(group, entry);
      this.persist(entry);
    }
    if (entry.coordinator === null && create) {
      const current = entry;
      current.coordinator = new GroupCoordinator(group, current.generation, {
        clock: this.clock,
        scheduler: this.scheduler,
        logger: this.logger,
        partitionCount: (topic) => this.registry.find(topic)?.queueIds.length,
        generationCompleted: (_, generation) => {
          current.generation = generation;
          this.persist(current);
        },
        initialRebalanceDelayMs: this.options.initialRebalanceDelayMs,
      });
    }
    return entry.coordinator;
  }

  private memberCoordinator(group: string, memberId: string): GroupCoordinator {
    if (this.closed) throw shuttingDown();
    validateGroupName(group);
    const coordinator = this.coordinatorFor(group, false);
    if (coordinator === null) throw brokerError(ErrorCode.UnknownMember, `group "${group}" has no member "${memberId}"; join again`);
    return coordinator;
  }

  /** Group records only matter across restarts (mode, generation floor): written in the background, failures logged. */
  private persist(entry: GroupEntry): void {
    const value: StoredGroup = { mode: entry.mode, generation: entry.generation };
    this.store.metadata.put(groupKey(entry.name), value).catch((error: unknown) => this.logger.warn({ err: error, group: entry.name }, 'could not store group metadata'));
  }

  private wrongMode(entry: GroupEntry, wanted: GroupMode): Error {
    return brokerError(ErrorCode.InvalidGroup, `group "${entry.name}" is a ${entry.mode} group; it cannot be used as a ${wanted} group`);
  }
}
