import type { TransactionCheck, TransactionOutcome } from './transactions.js';

/** A live producer of a producer group: the protocol layer sends it check-backs. */
export interface ProducerGroupMember {
  readonly id: string;
  /** Sends the check to the producer; its answer comes back through `ProducerGroups.answer`. */
  sendCheck(check: TransactionCheck): void;
}

/**
 * Live producers per producer group, for transaction check-backs (RocketMQ's "check local transaction"): the broker
 * asks one live member of the transaction's producer group, in turn, and the first answer for that transaction settles
 * the question. Members join when a transactional producer connects and leave when its connection closes.
 */
export class ProducerGroups {
  private readonly groups = new Map<string, ProducerGroupMember[]>();
  private readonly turn = new Map<string, number>();
  private readonly waiting = new Map<string, Array<(outcome: TransactionOutcome) => void>>();

  /** Adds a member; returns the function that removes it. */
  join(group: string, member: ProducerGroupMember): () => void {
    let members = this.groups.get(group);
    if (members === undefined) this.groups.set(group, (members = []));
    members.push(member);
    return () => {
      const list = this.groups.get(group);
      if (list === undefined) return;
      const index = list.indexOf(member);
      if (index >= 0) list.splice(index, 1);
      if (list.length === 0) this.groups.delete(group);
    };
  }

  /** Asks a live member; null when the group has none. The caller bounds the wait (TransactionManager's check timeout). */
  ask(group: string, check: TransactionCheck): Promise<TransactionOutcome> | null {
    const members = this.groups.get(group);
    if (members === undefined || members.length === 0) return null;
    const index = (this.turn.get(group) ?? 0) % members.length;
    this.turn.set(group, index + 1);
    const answer = new Promise<TransactionOutcome>((resolve) => {
      let list = this.waiting.get(check.transactionId);
      if (list === undefined) this.waiting.set(check.transactionId, (list = []));
      list.push(resolve);
    });
    members[index]!.sendCheck(check);
    return answer;
  }

  /** An answer from a producer (also a plain commit or rollback: whatever decides the transaction answers its checks). */
  answer(transactionId: string, outcome: TransactionOutcome): void {
    const list = this.waiting.get(transactionId);
    if (list === undefined) return;
    this.waiting.delete(transactionId);
    for (const resolve of list) resolve(outcome);
  }

  /** Ends every wait with 'unknown' (the broker is stopping). */
  close(): void {
    for (const list of this.waiting.values()) for (const resolve of list) resolve('unknown');
    this.waiting.clear();
  }
}
