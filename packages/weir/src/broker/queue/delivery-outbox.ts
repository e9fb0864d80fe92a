import type { Delivery } from './shared-subscription.js';

/** Body bytes written per slice, roughly: small enough that a slow reader's socket holds little past its high-water mark. */
const SLICE_BYTES = 64 * 1024;

/** Rewrite the list once this many written entries sit at its front and they are at least half of it. */
const COMPACT_AFTER = 1024;

export interface OutboxSocket {
  /** Writes `deliveries[from…to)` to the consumer's socket; false once the socket is full. */
  write(deliveries: readonly Delivery[], from: number, to: number): boolean;
  /** Calls `resume` once the socket has drained. */
  whenWritable(resume: () => void): void;
  /** The socket filled up: the consumer must get nothing more until `resumed`. */
  paused(): void;
  /** Everything handed over is written: the consumer may be dispatched to again. */
  resumed(): void;
}

/**
 * The deliveries a consumer was handed and has not yet written to its socket. A dispatch may hand a consumer without
 * prefetch its queue's whole read-ahead at once; they are written in slices of about SLICE_BYTES, and once the socket
 * is full the rest wait here (already leased) and the consumer is paused until the socket drains. So a consumer that
 * does not read cannot make the broker buffer more than the socket's high-water mark and one slice. Shared by the
 * protocols' shared-group consumers; the delivery array is the outbox's to keep (DeliverySink).
 */
export class DeliveryOutbox {
  private pending: Delivery[] = [];
  /** How many of `pending` are written. */
  private sent = 0;
  private waiting = false;

  constructor(private readonly socket: OutboxSocket) {}

  /** Hands over one dispatch's deliveries, in order, and writes what the socket takes. */
  add(deliveries: Delivery[]): void {
    if (this.sent === this.pending.length) {
      this.pending = deliveries;
      this.sent = 0;
    } else {
      for (const delivery of deliveries) this.pending.push(delivery);
    }
    if (this.waiting || this.flush()) return;
    this.waiting = true;
    this.socket.paused();
    this.socket.whenWritable(() => this.drained());
  }

  /** Forgets what is not yet written (the consumer is gone: its leases go back to the group). */
  clear(): void {
    this.pending = [];
    this.sent = 0;
  }

  /** Writes slices while the socket takes them; returns whether everything went. */
  private flush(): boolean {
    const pending = this.pending;
    while (this.sent < pending.length) {
      let bytes = 0;
      let end = this.sent;
      while (end < pending.length && (end === this.sent || bytes < SLICE_BYTES)) bytes += pending[end++]!.message.body.length;
      const from = this.sent;
      this.sent = end;
      if (!this.socket.write(pending, from, end)) {
        if (this.sent >= COMPACT_AFTER && this.sent * 2 >= pending.length) {
          this.pending = pending.slice(this.sent);
          this.sent = 0;
        }
        return false;
      }
    }
    this.pending = [];
    this.sent = 0;
    return true;
  }

  private drained(): void {
    if (!this.flush()) {
      this.socket.whenWritable(() => this.drained());
      return;
    }
    this.waiting = false;
    this.socket.resumed();
  }
}
