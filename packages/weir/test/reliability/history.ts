/**
 * The history of a reliability run and its checker. Pure: no I/O, no clocks, so it can be tested on its own and a
 * saved history (JSON) can be checked again later.
 *
 * A history holds every send as invoked and how it ended — `ok` (acknowledged as durable: a native `durable` ack or an
 * AMQP publisher confirm), `failed` (the broker definitely refused it), `unknown` (the connection died first) — every
 * receive, and every place where the broker reported stored data as damaged. The checker then derives what a broker
 * that keeps its promise may never show: acknowledged values that are never read, values read that were never sent or
 * that definitely failed, two values at one (partition, offset), holes below an offset read, duplicates where the
 * protocol forbids them, and a producer's values out of order within a partition or queue.
 */

export type SendStatus = 'pending' | 'ok' | 'failed' | 'unknown';

export interface SendRecord {
  /** Where the value went: a topic or queue name. */
  readonly target: string;
  readonly producer: string;
  /** Position in the producer's own send order (1, 2, …). */
  readonly sequence: number;
  readonly value: string;
  status: SendStatus;
  /** Where the broker said it stored the value (native acks say; AMQP confirms do not). */
  partition?: number;
  offset?: number;
}

export interface ReceiveRecord {
  readonly target: string;
  /** Absent where the protocol does not say (AMQP). */
  readonly partition?: number;
  readonly offset?: number;
  readonly value: string;
  /** The broker flagged the delivery as a redelivery. */
  readonly redelivered: boolean;
}

/** Stored data the broker reported as damaged (a read failed with DATA_DAMAGED, or the queue is marked damaged). */
export interface DamageRecord {
  readonly target: string;
  readonly partition: number;
  /** The offsets the broker refused to serve. */
  readonly offsets: readonly number[];
}

/**
 * Bytes the harness itself damaged on disk (a flipped bit in old, synced data): the values there may be lost, but only
 * if the broker reported the damage; they must never be served changed.
 */
export interface InjectedDamage {
  readonly values: readonly string[];
}

export interface TargetRules {
  /**
   * Offsets are meaningful and every stored message stays readable from offset 0 (a stream, or a work queue whose topic
   * keeps its messages): one value per (partition, offset), no hole below an offset read.
   */
  readonly positional: boolean;
  /** A value read at two different positions is a protocol violation (idempotent producers: no duplicate appends). */
  readonly duplicatesForbidden: boolean;
}

export interface HistoryJson {
  readonly sends: SendRecord[];
  readonly receives: ReceiveRecord[];
  readonly damage: DamageRecord[];
  readonly injected: InjectedDamage[];
}

export class History {
  readonly sends: SendRecord[] = [];
  readonly receives: ReceiveRecord[] = [];
  readonly damage: DamageRecord[] = [];
  readonly injected: InjectedDamage[] = [];
  private readonly byValue = new Map<string, SendRecord>();
  private readonly sequences = new Map<string, number>();

  static fromJson(json: HistoryJson): History {
    const history = new History();
    for (const send of json.sends) {
      history.sends.push({ ...send });
      history.byValue.set(send.value, history.sends[history.sends.length - 1]!);
      history.sequences.set(send.producer, Math.max(history.sequences.get(send.producer) ?? 0, send.sequence));
    }
    history.receives.push(...json.receives);
    history.damage.push(...json.damage);
    history.injected.push(...json.injected);
    return history;
  }

  /** Records a send as invoked and returns its record; the value is `<producer>#<sequence>`, unique in the run. */
  invoke(target: string, producer: string): SendRecord {
    const sequence = (this.sequences.get(producer) ?? 0) + 1;
    this.sequences.set(producer, sequence);
    const record: SendRecord = { target, producer, sequence, value: `${producer}#${sequence}`, status: 'pending' };
    this.sends.push(record);
    this.byValue.set(record.value, record);
    return record;
  }

  ok(record: SendRecord, where?: { partition: number; offset: number }): void {
    record.status = 'ok';
    if (where !== undefined) {
      record.partition = where.partition;
      record.offset = where.offset;
    }
  }

  failed(record: SendRecord): void {
    record.status = 'failed';
  }

  /** The outcome cannot be known (the connection died): the value may or may not have been stored. */
  unknown(record: SendRecord): void {
    if (record.status === 'pending') record.status = 'unknown';
  }

  /** Every send still pending becomes unknown (at a kill, or at the end of a run). */
  settlePending(): void {
    for (const record of this.sends) if (record.status === 'pending') record.status = 'unknown';
  }

  receive(record: ReceiveRecord): void {
    this.receives.push(record);
  }

  reportDamage(record: DamageRecord): void {
    this.damage.push(record);
  }

  injectDamage(values: readonly string[]): void {
    this.injected.push({ values: [...values] });
  }

  sendOf(value: string): SendRecord | undefined {
    return this.byValue.get(value);
  }

  /** Whether every acknowledged value of `target` has been read (values in injected damage excused). */
  drained(target: string, read: ReadonlySet<string>): boolean {
    const excused = new Set(this.injected.flatMap((entry) => entry.values));
    return this.sends.every((send) => send.target !== target || send.status !== 'ok' || read.has(send.value) || excused.has(send.value));
  }

  toJson(): HistoryJson {
    return { sends: this.sends, receives: this.receives, damage: this.damage, injected: this.injected };
  }
}

export interface LostValue {
  readonly value: string;
  readonly target: string;
  /** Relative to the values of the same producer and target that were read. */
  readonly where: 'before' | 'between' | 'after' | 'none-read';
}

export interface Violation {
  readonly target: string;
  readonly detail: string;
}

export interface CheckResult {
  readonly acknowledged: number;
  /** Distinct values read. */
  readonly read: number;
  readonly reads: number;
  readonly lost: LostValue[];
  readonly unexpected: string[];
  readonly abortedReads: string[];
  /** Values read more than once (allowed where redelivery is: counted). */
  readonly duplicates: number;
  /** Duplicates the protocol forbids: one value at two positions of an idempotent stream. */
  readonly forbiddenDuplicates: Violation[];
  /** Two values at one (partition, offset), or an acknowledged value read somewhere else. */
  readonly positionConflicts: Violation[];
  /** An offset below one read that was never read (and was not reported damaged). */
  readonly holes: Violation[];
  readonly orderViolations: Violation[];
  /** Values lost to injected damage the broker never reported: a silent loss. */
  readonly unreportedDamage: string[];
  /** Values lost to injected damage the broker reported (allowed). */
  readonly lostToReportedDamage: number;
  /** Values sent without a known outcome that were read (allowed, counted). */
  readonly unknownRead: number;
}

/** Whether the check found nothing a broker keeping its promise could show. */
export function passed(result: CheckResult): boolean {
  return (
    result.lost.length === 0 &&
    result.unexpected.length === 0 &&
    result.abortedReads.length === 0 &&
    result.forbiddenDuplicates.length === 0 &&
    result.positionConflicts.length === 0 &&
    result.holes.length === 0 &&
    result.orderViolations.length === 0 &&
    result.unreportedDamage.length === 0
  );
}

const LIST_LIMIT = 20;

function positionKey(target: string, partition: number | undefined): string {
  return `${target}\u0000${partition ?? -1}`;
}

/** Checks a history; `rules` says per target what its protocol promises (targets not named: a plain queue). */
export function checkHistory(history: History, rules: Readonly<Record<string, TargetRules>>): CheckResult {
  const ruleOf = (target: string): TargetRules => rules[target] ?? { positional: false, duplicatesForbidden: false };
  const readValues = new Map<string, number>();
  const unexpected: string[] = [];
  const abortedReads: string[] = [];
  const forbiddenDuplicates: Violation[] = [];
  const positionConflicts: Violation[] = [];
  const holes: Violation[] = [];
  const orderViolations: Violation[] = [];
  let unknownRead = 0;

  // Where each value was read, and which value each position holds.
  const positionsOfValue = new Map<string, Set<string>>();
  const valueAt = new Map<string, Map<number, string>>();
  const noteAt = (target: string, partition: number, offset: number, value: string, what: string): void => {
    const key = positionKey(target, partition);
    let offsets = valueAt.get(key);
    if (offsets === undefined) valueAt.set(key, (offsets = new Map()));
    const existing = offsets.get(offset);
    if (existing === undefined) offsets.set(offset, value);
    else if (existing !== value) positionConflicts.push({ target, detail: `${partition}/${offset} holds ${existing} and ${value} (${what})` });
  };
  for (const send of history.sends) {
    if (send.status === 'ok' && send.partition !== undefined && send.offset !== undefined && ruleOf(send.target).positional) {
      noteAt(send.target, send.partition, send.offset, send.value, 'acknowledged there');
    }
  }

  const damagedOffsets = new Map<string, Set<number>>();
  for (const report of history.damage) {
    const key = positionKey(report.target, report.partition);
    const set = damagedOffsets.get(key) ?? new Set<number>();
    for (const offset of report.offsets) set.add(offset);
    damagedOffsets.set(key, set);
  }

  // Per (target, partition, producer): the last sequence among first-time, not-redelivered reads.
  const lastInOrder = new Map<string, number>();
  const readOffsets = new Map<string, number[]>();
  for (const receive of history.receives) {
    const send = history.sendOf(receive.value);
    const count = readValues.get(receive.value) ?? 0;
    readValues.set(receive.value, count + 1);
    if (send === undefined || send.target !== receive.target) {
      if (count === 0) unexpected.push(receive.value);
      continue;
    }
    if (count === 0) {
      if (send.status === 'failed') abortedReads.push(receive.value);
      if (send.status !== 'ok') unknownRead++;
    }
    const rule = ruleOf(receive.target);
    if (receive.partition !== undefined && receive.offset !== undefined) {
      if (rule.positional) {
        noteAt(receive.target, receive.partition, receive.offset, receive.value, 'read there');
        const key = positionKey(receive.target, receive.partition);
        const list = readOffsets.get(key) ?? [];
        list.push(receive.offset);
        readOffsets.set(key, list);
      }
      const position = `${receive.partition}/${receive.offset}`;
      const positions = positionsOfValue.get(receive.value) ?? new Set<string>();
      if (rule.duplicatesForbidden && positions.size > 0 && !positions.has(position)) {
        forbiddenDuplicates.push({ target: receive.target, detail: `${receive.value} read at ${[...positions].join(', ')} and at ${position}` });
      }
      positions.add(position);
      positionsOfValue.set(receive.value, positions);
    }
    // A value read before is a redelivery even when the broker does not flag it (e.g. its delivery count was lost in a crash).
    if (receive.redelivered || count > 0) continue;
    const orderKey = `${positionKey(receive.target, receive.partition)}\u0000${send.producer}`;
    const last = lastInOrder.get(orderKey) ?? 0;
    if (send.sequence < last) {
      orderViolations.push({ target: receive.target, detail: `${receive.value} read after ${send.producer}#${last}${receive.partition === undefined ? '' : ` in partition ${receive.partition}`}` });
    } else {
      lastInOrder.set(orderKey, send.sequence);
    }
  }

  const duplicates = [...readValues.values()].filter((count) => count > 1).length;

  // Holes: positional targets keep every message from offset 0, so every offset below the highest read must be read.
  for (const [key, offsetsRead] of readOffsets) {
    const [target, partitionText] = key.split('\u0000') as [string, string];
    const read = new Set(offsetsRead);
    const damaged = damagedOffsets.get(key) ?? new Set<number>();
    let highest = -1;
    for (const offset of read) highest = Math.max(highest, offset);
    const missing: number[] = [];
    for (let offset = 0; offset < highest; offset++) if (!read.has(offset) && !damaged.has(offset)) missing.push(offset);
    if (missing.length > 0) holes.push({ target, detail: `partition ${partitionText}: ${missing.length} offsets below ${highest} never read, e.g. ${missing.slice(0, 5).join(', ')}` });
  }

  // Lost: acknowledged, never read. Injected damage excuses a value only when the broker reported damage in its target.
  const injected = new Set(history.injected.flatMap((entry) => entry.values));
  const reportedTargets = new Set(history.damage.map((report) => report.target));
  const readSequences = new Map<string, number[]>();
  for (const value of readValues.keys()) {
    const send = history.sendOf(value);
    if (send === undefined) continue;
    const key = `${send.target}\u0000${send.producer}`;
    const list = readSequences.get(key) ?? [];
    list.push(send.sequence);
    readSequences.set(key, list);
  }
  const lost: LostValue[] = [];
  const unreportedDamage: string[] = [];
  let lostToReportedDamage = 0;
  let acknowledged = 0;
  for (const send of history.sends) {
    if (send.status !== 'ok') continue;
    acknowledged++;
    if (readValues.has(send.value)) continue;
    if (injected.has(send.value)) {
      if (reportedTargets.has(send.target)) lostToReportedDamage++;
      else unreportedDamage.push(send.value);
      continue;
    }
    const sequences = readSequences.get(`${send.target}\u0000${send.producer}`) ?? [];
    const below = sequences.some((sequence) => sequence < send.sequence);
    const above = sequences.some((sequence) => sequence > send.sequence);
    lost.push({ value: send.value, target: send.target, where: sequences.length === 0 ? 'none-read' : below && above ? 'between' : above ? 'before' : 'after' });
  }

  return {
    acknowledged,
    read: readValues.size,
    reads: history.receives.length,
    lost,
    unexpected,
    abortedReads,
    duplicates,
    forbiddenDuplicates,
    positionConflicts,
    holes,
    orderViolations,
    unreportedDamage,
    lostToReportedDamage,
    unknownRead,
  };
}

/** A short human summary of what failed, for assertion messages (lists cut to a few examples). */
export function describeFailures(result: CheckResult): string {
  const parts: string[] = [];
  const list = <T>(name: string, items: readonly T[], show: (item: T) => string): void => {
    if (items.length > 0) parts.push(`${name}: ${items.length} (${items.slice(0, LIST_LIMIT).map(show).join('; ')})`);
  };
  list('lost', result.lost, (item) => `${item.value} ${item.where}`);
  list('unexpected', result.unexpected, String);
  list('aborted reads', result.abortedReads, String);
  list('forbidden duplicates', result.forbiddenDuplicates, (item) => item.detail);
  list('position conflicts', result.positionConflicts, (item) => item.detail);
  list('holes', result.holes, (item) => `${item.target} ${item.detail}`);
  list('order violations', result.orderViolations, (item) => `${item.target} ${item.detail}`);
  list('damage never reported', result.unreportedDamage, String);
  return parts.join('\n');
}
