/**
 * Publisher confirms of one channel (RabbitMQ's confirm extension, https://www.rabbitmq.com/docs/confirms): every
 * publish after confirm.select gets a sequence number; it is confirmed once every queue it was routed to has stored
 * it. Confirms that complete a prefix are sent as one basic.ack with `multiple`; others one by one, and a later
 * `multiple` never covers a tag already answered on its own (a client must never see a tag twice).
 */
export interface ConfirmSink {
  ack(deliveryTag: number, multiple: boolean): void;
  nack(deliveryTag: number, multiple: boolean): void;
}

export class PublisherConfirms {
  private sequence = 0;
  /**
   * Outstanding tags in publish order → appends still pending (Map keeps insertion order: the first is the lowest).
   * A count rather than an object per publish; the rare failed tags are kept aside in `failed`.
   */
  private readonly pending = new Map<number, number>();
  private readonly failed = new Set<number>();
  /** Every tag at or below this has been answered. */
  private answeredUpTo = 0;
  /** Tags above `answeredUpTo` answered on their own. */
  private readonly answeredAlone = new Set<number>();
  private readonly completed: number[] = [];
  private flushScheduled = false;

  constructor(private readonly sink: ConfirmSink) {}

  /** Numbers a publish routed to `appends` queues (0: confirmed at once). */
  next(appends: number): number {
    const tag = ++this.sequence;
    this.pending.set(tag, appends);
    if (appends === 0) this.done(tag);
    return tag;
  }

  /** One of the publish's appends resolved (`ok`) or failed. */
  settled(tag: number, ok: boolean): void {
    const remaining = this.pending.get(tag);
    if (remaining === undefined) return;
    if (!ok) this.failed.add(tag);
    this.pending.set(tag, remaining - 1);
    if (remaining - 1 <= 0) this.done(tag);
  }

  private done(tag: number): void {
    this.completed.push(tag);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Appends of one fsync resolve in the same tick: answering after them lets one `multiple` ack cover them all.
    queueMicrotask(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const nacked: number[] = [];
    const acked: number[] = [];
    for (const tag of this.completed) {
      if (!this.pending.delete(tag)) continue;
      if (this.failed.delete(tag)) nacked.push(tag);
      else acked.push(tag);
    }
    this.completed.length = 0;
    for (const tag of nacked) {
      this.sink.nack(tag, false);
      this.answeredAlone.add(tag);
    }
    const firstPending = this.pending.size === 0 ? this.sequence + 1 : this.pending.keys().next().value!;
    const prefixEnd = firstPending - 1;
    let coveredByMultiple = false;
    if (prefixEnd > this.answeredUpTo && acked.length > 0) {
      let alone = false;
      for (const tag of this.answeredAlone) if (tag <= prefixEnd) alone = true;
      const inPrefix = acked.filter((tag) => tag <= prefixEnd).length;
      if (!alone && inPrefix > 1) {
        this.sink.ack(prefixEnd, true);
        coveredByMultiple = true;
      }
    }
    for (const tag of acked) {
      if (coveredByMultiple && tag <= prefixEnd) continue;
      this.sink.ack(tag, false);
      this.answeredAlone.add(tag);
    }
    if (prefixEnd > this.answeredUpTo) {
      this.answeredUpTo = prefixEnd;
      for (const tag of this.answeredAlone) if (tag <= prefixEnd) this.answeredAlone.delete(tag);
    }
  }

  get outstanding(): number {
    return this.pending.size;
  }
}
