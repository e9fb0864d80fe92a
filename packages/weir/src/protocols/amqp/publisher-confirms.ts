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

/** A tag's entry once it has been answered (acked or nacked). */
const ANSWERED = -1;

export class PublisherConfirms {
  private sequence = 0;
  /**
   * Appends still pending for each tag from `base` to `sequence`, in a ring indexed from `head` (tags are numbered
   * consecutively, so a ring holds them without a map entry per publish): above 0 pending, 0 complete and waiting for
   * the flush, ANSWERED once acked or nacked. The rare failed tags are kept aside in `failed`.
   */
  private ring = new Int32Array(1024);
  private head = 0;
  /** Lowest tag not yet answered (`sequence + 1` when none is open). */
  private base = 1;
  /** Tags numbered and not yet answered. */
  private open = 0;
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
    if (tag - this.base >= this.ring.length) this.grow();
    this.ring[this.slot(tag)] = appends;
    this.open++;
    if (appends === 0) this.done(tag);
    return tag;
  }

  /** One of the publish's appends resolved (`ok`) or failed. */
  settled(tag: number, ok: boolean): void {
    if (tag < this.base || tag > this.sequence) return;
    const slot = this.slot(tag);
    const remaining = this.ring[slot]!;
    if (remaining <= 0) return;
    if (!ok) this.failed.add(tag);
    this.ring[slot] = remaining - 1;
    if (remaining === 1) this.done(tag);
  }

  get outstanding(): number {
    return this.open;
  }

  private slot(tag: number): number {
    return (this.head + tag - this.base) & (this.ring.length - 1);
  }

  /** Doubles the ring (its length stays a power of two), unrolling it so `head` is 0. */
  private grow(): void {
    const count = this.sequence - this.base;
    const next = new Int32Array(this.ring.length * 2);
    for (let index = 0; index < count; index++) next[index] = this.ring[(this.head + index) & (this.ring.length - 1)]!;
    this.ring = next;
    this.head = 0;
  }

  private done(tag: number): void {
    this.completed.push(tag);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Appends of one fsync resolve in the same tick: answering after them lets one `multiple` ack cover them all.
    queueMicrotask(this.flushSoon);
  }

  /** Made once: an arrow written inside done would allocate its context for every tag. */
  private readonly flushSoon = (): void => this.flush();

  private flush(): void {
    this.flushScheduled = false;
    const nacked: number[] = [];
    let acked = 0;
    for (const tag of this.completed) {
      const slot = this.slot(tag);
      if (tag < this.base || this.ring[slot] !== 0) continue;
      this.ring[slot] = ANSWERED;
      this.open--;
      if (this.failed.delete(tag)) nacked.push(tag);
      else this.completed[acked++] = tag;
    }
    this.completed.length = acked;
    while (this.base <= this.sequence && this.ring[this.head] === ANSWERED) {
      this.head = (this.head + 1) & (this.ring.length - 1);
      this.base++;
    }
    for (const tag of nacked) {
      this.sink.nack(tag, false);
      this.answeredAlone.add(tag);
    }
    const prefixEnd = this.base - 1;
    let coveredByMultiple = false;
    if (prefixEnd > this.answeredUpTo && acked > 0) {
      let alone = false;
      for (const tag of this.answeredAlone) if (tag <= prefixEnd) alone = true;
      let inPrefix = 0;
      for (const tag of this.completed) if (tag <= prefixEnd) inPrefix++;
      if (!alone && inPrefix > 1) {
        this.sink.ack(prefixEnd, true);
        coveredByMultiple = true;
      }
    }
    for (const tag of this.completed) {
      if (coveredByMultiple && tag <= prefixEnd) continue;
      this.sink.ack(tag, false);
      this.answeredAlone.add(tag);
    }
    this.completed.length = 0;
    if (prefixEnd > this.answeredUpTo) {
      this.answeredUpTo = prefixEnd;
      for (const tag of this.answeredAlone) if (tag <= prefixEnd) this.answeredAlone.delete(tag);
    }
  }
}
