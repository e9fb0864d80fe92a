import { randomUUID } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { ErrorCode, type WeirError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { assign, type Assignment, type AssignmentStrategy } from './assignors.js';
import { brokerError } from './errors.js';
import type { Scheduler, TimerHandle } from './scheduler.js';

/**
 * - `Empty`: no members (offsets may still be committed).
 * - `PreparingRebalance`: a round is collecting joins; members learn of it from REBALANCE_IN_PROGRESS.
 * - `CompletingRebalance`: the round produced a generation and its assignment; waiting for members to sync.
 * - `Stable`: every member of the generation has synced.
 */
export type GroupState = 'Empty' | 'PreparingRebalance' | 'CompletingRebalance' | 'Stable';

export interface JoinGroupRequest {
  group: string;
  /** The id from an earlier join, or '' for a new member. */
  memberId: string;
  clientId: string;
  host: string;
  topics: readonly string[];
  /** Used when this member is the first of the group; later members follow the group's strategy. */
  strategy: AssignmentStrategy;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  /** Aborting (e.g. the connection closed) rejects this join with the signal's reason. */
  signal?: AbortSignal;
}

export interface JoinGroupResult {
  memberId: string;
  generation: number;
  /** Every member id of the generation, sorted. */
  members: string[];
}

export interface TopicAssignment {
  topic: string;
  partitions: number[];
}

export interface GroupMemberDescription {
  memberId: string;
  clientId: string;
  host: string;
  topics: string[];
  /** Partitions owned in the current generation. */
  assignment: TopicAssignment[];
}

export interface CoordinatorContext {
  clock: Clock;
  scheduler: Scheduler;
  logger: Logger;
  /** Partition count of an existing topic, else undefined. */
  partitionCount(topic: string): number | undefined;
  /** A round completed: persist the generation. */
  generationCompleted(group: string, generation: number): void;
  /** When an empty group gets its first member, wait this long for more before completing the round (Kafka's group.initial.rebalance.delay.ms). */
  initialRebalanceDelayMs: number;
}

interface JoinWaiter {
  resolve(result: JoinGroupResult): void;
  reject(error: unknown): void;
}

class Member {
  /** Monotonic time of the last sign of life (join, sync, heartbeat). */
  lastSeen = 0;
  /** Joined during the current round. */
  rejoined = false;
  /** Fetched its assignment for the current generation. */
  synced = false;
  /** Join calls waiting for the round to complete. */
  waiters: JoinWaiter[] = [];
  clientId = '';
  host = '';
  topics: string[] = [];
  sessionTimeoutMs = 0;
  rebalanceTimeoutMs = 0;

  constructor(readonly memberId: string) {}
}

function toTopicAssignments(topics: ReadonlyMap<string, number[]> | undefined): TopicAssignment[] {
  if (topics === undefined) return [];
  return [...topics]
    .filter(([, partitions]) => partitions.length > 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([topic, partitions]) => ({ topic, partitions: [...partitions] }));
}

function sameTopics(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((topic, index) => topic === b[index]);
}

/**
 * The coordinator of one consumer group, with Kafka's eager rebalance protocol and broker-side assignment.
 *
 * A round (PreparingRebalance) starts when a member joins or leaves, a session expires, a member changes its
 * subscription, or a subscribed topic appears or grows. It waits until every known member has joined again, or until
 * the longest rebalanceTimeoutMs of the members, and then drops those that did not. Completing the round bumps the
 * generation, computes the assignment with the group's strategy (chosen by the first member of an empty group),
 * answers every waiting join, and waits for the members to sync (CompletingRebalance → Stable).
 *
 * The assignment of a generation is computed once, as a function from partitions to members, so no partition is ever
 * owned by two members of one generation; commits and heartbeats of an older generation fail with
 * ILLEGAL_GENERATION, so a member that missed a round cannot act on partitions it no longer owns.
 *
 * Timers: one rebalance timer while a round runs, one session timer per coordinator set for the earliest session
 * deadline (re-armed when it fires; heartbeats only move lastSeen). Members waiting in a join are not expired: the
 * round's own timeout bounds them. Everything runs on the event loop; no call waits for another.
 */
export class GroupCoordinator {
  state: GroupState = 'Empty';
  /** Members of the current generation that have not synced yet; Stable once none are left. */
  private unsynced = 0;
  strategy: AssignmentStrategy | null = null;
  private readonly members = new Map<string, Member>();
  private assignment: Assignment = new Map();
  private roundTimer: TimerHandle | null = null;
  private delayTimer: TimerHandle | null = null;
  private delayDeadline = 0;
  private sessionTimer: { handle: TimerHandle; due: number } | null = null;
  private closedWith: WeirError | null = null;

  constructor(
    readonly name: string,
    public generation: number,
    private readonly context: CoordinatorContext,
  ) {}

  get memberCount(): number {
    return this.members.size;
  }

  join(request: JoinGroupRequest): Promise<JoinGroupResult> {
    if (this.closedWith !== null) return Promise.reject(this.closedWith);
    request.signal?.throwIfAborted();
    const now = this.context.clock.monotonic();
    let member: Member;
    const isNew = request.memberId === '';
    if (isNew) {
      member = new Member(`${request.clientId || 'member'}-${randomUUID()}`);
      if (this.members.size === 0) this.strategy = request.strategy;
      this.members.set(member.memberId, member);
    } else {
      const known = this.members.get(request.memberId);
      if (known === undefined) return Promise.reject(this.unknownMember(request.memberId));
      member = known;
    }
    const topics = [...new Set(request.topics)].sort();
    const subscriptionChanged = !sameTopics(member.topics, topics);
    member.clientId = request.clientId;
    member.host = request.host;
    member.topics = topics;
    member.sessionTimeoutMs = request.sessionTimeoutMs;
    member.rebalanceTimeoutMs = request.rebalanceTimeoutMs;
    member.lastSeen = now;

    const result = new Promise<JoinGroupResult>((resolve, reject) => {
      const waiter: JoinWaiter = { resolve, reject };
      member.waiters.push(waiter);
      const signal = request.signal;
      if (signal !== undefined) {
        const onAbort = (): void => {
          const index = member.waiters.indexOf(waiter);
          if (index < 0) return;
          member.waiters.splice(index, 1);
          // Nobody hears this join's answer: the round waits for the member to join again (or drops it).
          if (member.waiters.length === 0) member.rejoined = false;
          reject(signal.reason);
          this.armSessionTimer();
        };
        signal.addEventListener('abort', onAbort, { once: true });
        const detach = (): void => signal.removeEventListener('abort', onAbort);
        waiter.resolve = (value) => {
          detach();
          resolve(value);
        };
        waiter.reject = (error) => {
          detach();
          reject(error);
        };
      }
    });

    if ((this.state === 'Stable' || this.state === 'CompletingRebalance') && !isNew && !subscriptionChanged) {
      // A known member with an unchanged subscription gets the current generation back; nothing to rebalance.
      this.answer(member, [...this.members.keys()].sort());
    } else {
      const wasEmpty = this.state === 'Empty';
      this.startRound(isNew ? 'member joined' : subscriptionChanged ? 'subscription changed' : 'member rejoined');
      if (isNew && this.context.initialRebalanceDelayMs > 0 && (wasEmpty || this.delayTimer !== null)) this.delayRound();
      member.rejoined = true;
      this.maybeCompleteRound();
    }
    this.armSessionTimer();
    return result;
  }

  /** This member's assignment in `generation`. */
  sync(generation: number, memberId: string): TopicAssignment[] {
    const member = this.liveMember(memberId);
    member.lastSeen = this.context.clock.monotonic();
    if (this.state === 'PreparingRebalance') throw this.rebalancing();
    if (generation !== this.generation) throw this.illegalGeneration(generation);
    if (!member.synced) {
      member.synced = true;
      this.unsynced--;
    }
    if (this.state === 'CompletingRebalance' && this.unsynced === 0) this.state = 'Stable';
    return toTopicAssignments(this.assignment.get(memberId));
  }

  heartbeat(generation: number, memberId: string): void {
    const member = this.liveMember(memberId);
    member.lastSeen = this.context.clock.monotonic();
    if (this.state === 'PreparingRebalance') throw this.rebalancing();
    if (generation !== this.generation) throw this.illegalGeneration(generation);
  }

  leave(memberId: string): void {
    const member = this.liveMember(memberId);
    this.removeMember(member, 'left');
  }

  /**
   * May this member commit for this generation? Commits are allowed while a round collects joins (a member commits
   * before it rejoins, as Kafka's eager consumers do) but not between the round and the member's sync.
   */
  checkCommit(generation: number, memberId: string): void {
    this.liveMember(memberId);
    if (generation !== this.generation) throw this.illegalGeneration(generation);
    if (this.state === 'CompletingRebalance') throw this.rebalancing();
  }

  /** A topic appeared, grew or went away: rebalance if a member subscribes to it. */
  topicChanged(topic: string): void {
    if (this.state !== 'Stable' && this.state !== 'CompletingRebalance') return;
    for (const member of this.members.values()) {
      if (member.topics.includes(topic)) {
        this.startRound(`topic ${topic} changed`);
        return;
      }
    }
  }

  describeMembers(): GroupMemberDescription[] {
    return [...this.members.values()]
      .sort((a, b) => (a.memberId < b.memberId ? -1 : 1))
      .map((member) => ({
        memberId: member.memberId,
        clientId: member.clientId,
        host: member.host,
        topics: [...member.topics],
        assignment: this.state === 'PreparingRebalance' ? [] : toTopicAssignments(this.assignment.get(member.memberId)),
      }));
  }

  /** Subscribed topics of all members. */
  subscribedTopics(): Set<string> {
    const topics = new Set<string>();
    for (const member of this.members.values()) for (const topic of member.topics) topics.add(topic);
    return topics;
  }

  /** The current generation's assignment (tests check invariants on it). */
  currentAssignment(): ReadonlyMap<string, TopicAssignment[]> {
    return new Map([...this.assignment].map(([memberId, topics]) => [memberId, toTopicAssignments(topics)]));
  }

  /** Rejects every waiting join and stops the timers. */
  close(error: WeirError): void {
    this.closedWith = error;
    this.clearRoundTimers();
    if (this.sessionTimer !== null) this.context.scheduler.clearTimeout(this.sessionTimer.handle);
    this.sessionTimer = null;
    for (const member of this.members.values()) this.rejectWaiters(member, error);
  }

  // ---- rounds -----------------------------------------------------------------------------------------------------

  private startRound(reason: string): void {
    if (this.state === 'PreparingRebalance') return;
    this.state = 'PreparingRebalance';
    let timeout = 0;
    for (const member of this.members.values()) {
      member.rejoined = false;
      timeout = Math.max(timeout, member.rebalanceTimeoutMs);
    }
    this.delayDeadline = this.context.clock.monotonic() + timeout;
    this.roundTimer = this.context.scheduler.setTimeout(() => {
      this.roundTimer = null;
      this.roundTimedOut();
    }, timeout);
    this.context.logger.info({ group: this.name, generation: this.generation, reason }, 'group rebalancing');
  }

  /** Holds the round open for the initial delay (extended by each new member, never past the round's deadline). */
  private delayRound(): void {
    if (this.delayTimer !== null) this.context.scheduler.clearTimeout(this.delayTimer);
    const delay = Math.min(this.context.initialRebalanceDelayMs, Math.max(0, this.delayDeadline - this.context.clock.monotonic()));
    this.delayTimer = this.context.scheduler.setTimeout(() => {
      this.delayTimer = null;
      this.maybeCompleteRound();
    }, delay);
  }

  private maybeCompleteRound(): void {
    if (this.state !== 'PreparingRebalance' || this.delayTimer !== null) return;
    for (const member of this.members.values()) if (!member.rejoined) return;
    this.completeRound();
  }

  private roundTimedOut(): void {
    if (this.state !== 'PreparingRebalance') return;
    for (const member of [...this.members.values()]) {
      if (!member.rejoined) {
        this.context.logger.info({ group: this.name, memberId: member.memberId }, 'member did not rejoin in time; removed');
        this.members.delete(member.memberId);
        this.rejectWaiters(member, this.unknownMember(member.memberId));
      }
    }
    this.completeRound();
  }

  private completeRound(): void {
    this.clearRoundTimers();
    this.generation++;
    const now = this.context.clock.monotonic();
    if (this.members.size === 0) {
      this.state = 'Empty';
      this.assignment = new Map();
      this.strategy = null;
    } else {
      this.assignment = assign(this.strategy ?? 'range', {
        members: [...this.members.values()].map((member) => ({ memberId: member.memberId, topics: member.topics })),
        partitionCounts: (topic) => this.context.partitionCount(topic),
        previous: this.assignment,
      });
      this.state = 'CompletingRebalance';
      this.unsynced = this.members.size;
      // One sorted member list per generation, not one per member answered.
      const memberIds = [...this.members.keys()].sort();
      for (const member of this.members.values()) {
        member.rejoined = false;
        member.synced = false;
        member.lastSeen = now;
        this.answer(member, memberIds);
      }
    }
    this.context.logger.info({ group: this.name, generation: this.generation, members: this.members.size }, 'group generation completed');
    this.context.generationCompleted(this.name, this.generation);
    this.armSessionTimer();
  }

  private answer(member: Member, memberIds: readonly string[]): void {
    const result: JoinGroupResult = { memberId: member.memberId, generation: this.generation, members: [...memberIds] };
    const waiters = member.waiters;
    member.waiters = [];
    for (const waiter of waiters) waiter.resolve({ ...result, members: [...result.members] });
  }

  private clearRoundTimers(): void {
    if (this.roundTimer !== null) this.context.scheduler.clearTimeout(this.roundTimer);
    if (this.delayTimer !== null) this.context.scheduler.clearTimeout(this.delayTimer);
    this.roundTimer = this.delayTimer = null;
  }

  private removeMember(member: Member, reason: string): void {
    this.members.delete(member.memberId);
    this.rejectWaiters(member, this.unknownMember(member.memberId));
    this.context.logger.info({ group: this.name, memberId: member.memberId, reason }, 'member removed from group');
    if (this.members.size === 0) {
      if (this.state !== 'Empty') this.completeRound();
    } else if (this.state === 'PreparingRebalance') {
      this.maybeCompleteRound();
    } else {
      this.startRound(`member ${reason}`);
    }
  }

  private rejectWaiters(member: Member, error: WeirError): void {
    const waiters = member.waiters;
    member.waiters = [];
    for (const waiter of waiters) waiter.reject(error);
  }

  // ---- sessions ---------------------------------------------------------------------------------------------------

  private sessionDeadline(member: Member): number {
    // A member blocked in a join is bounded by the round's timeout instead.
    return member.waiters.length > 0 ? Infinity : member.lastSeen + member.sessionTimeoutMs;
  }

  private armSessionTimer(): void {
    if (this.closedWith !== null) return;
    let earliest = Infinity;
    for (const member of this.members.values()) earliest = Math.min(earliest, this.sessionDeadline(member));
    if (this.sessionTimer !== null && this.sessionTimer.due <= earliest) return;
    if (this.sessionTimer !== null) this.context.scheduler.clearTimeout(this.sessionTimer.handle);
    this.sessionTimer = null;
    if (earliest === Infinity) return;
    const handle = this.context.scheduler.setTimeout(
      () => {
        this.sessionTimer = null;
        this.expireSessions();
      },
      earliest - this.context.clock.monotonic(),
      { background: true },
    );
    this.sessionTimer = { handle, due: earliest };
  }

  private expireSessions(): void {
    const now = this.context.clock.monotonic();
    for (const member of [...this.members.values()]) {
      if (this.members.get(member.memberId) === member && this.sessionDeadline(member) <= now) this.removeMember(member, 'session expired');
    }
    this.armSessionTimer();
  }

  // ---- errors -----------------------------------------------------------------------------------------------------

  private liveMember(memberId: string): Member {
    const member = this.members.get(memberId);
    if (member === undefined) throw this.unknownMember(memberId);
    return member;
  }

  private unknownMember(memberId: string): WeirError {
    return brokerError(ErrorCode.UnknownMember, `group "${this.name}" has no member "${memberId}"; join again`);
  }

  private illegalGeneration(generation: number): WeirError {
    return brokerError(ErrorCode.IllegalGeneration, `group "${this.name}" is at generation ${this.generation}, not ${generation}; join again`);
  }

  private rebalancing(): WeirError {
    return brokerError(ErrorCode.RebalanceInProgress, `group "${this.name}" is rebalancing; join again`);
  }
}
