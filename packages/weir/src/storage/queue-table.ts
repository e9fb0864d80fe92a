import { type AppendListener, type QueueInfo, type QueueSettings, unknownQueue } from './message-store.js';

/** What a store keeps per queue that QueueInfo reports. */
export interface QueueRecord {
  readonly id: number;
  readonly name: string;
  readonly settings: QueueSettings;
  readonly startOffset: number;
  /** One past the last visible message. */
  readonly endOffset: number;
  /** Bytes of the visible messages from startOffset on. */
  readonly bytes: number;
  readonly damaged: boolean;
}

/**
 * A store's queues by id and by name, and the listeners waiting for appends: the bookkeeping both MessageStores share,
 * each with its own per-queue state.
 */
export class QueueTable<Q extends QueueRecord> {
  private readonly byId = new Map<number, Q>();
  private readonly byName = new Map<string, Q>();
  private readonly listeners = new Set<AppendListener>();

  add(queue: Q): void {
    this.byId.set(queue.id, queue);
    this.byName.set(queue.name, queue);
  }

  remove(queue: Q): void {
    this.byId.delete(queue.id);
    this.byName.delete(queue.name);
  }

  get(id: number): Q | undefined {
    return this.byId.get(id);
  }

  named(name: string): Q | undefined {
    return this.byName.get(name);
  }

  /** Throws UNKNOWN_QUEUE. */
  require(id: number): Q {
    const queue = this.byId.get(id);
    if (queue === undefined) throw unknownQueue(id);
    return queue;
  }

  /** Throws UNKNOWN_QUEUE. */
  requireNamed(name: string): Q {
    const queue = this.byName.get(name);
    if (queue === undefined) throw unknownQueue(name);
    return queue;
  }

  values(): IterableIterator<Q> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }

  info(queue: Q): QueueInfo {
    return {
      id: queue.id,
      name: queue.name,
      settings: { ...queue.settings },
      startOffset: queue.startOffset,
      endOffset: queue.endOffset,
      bytes: queue.bytes,
      damaged: queue.damaged,
    };
  }

  infoNamed(name: string): QueueInfo | null {
    const queue = this.byName.get(name);
    return queue ? this.info(queue) : null;
  }

  infoById(id: number): QueueInfo | null {
    const queue = this.byId.get(id);
    return queue ? this.info(queue) : null;
  }

  list(): QueueInfo[] {
    return [...this.byId.values()].map((queue) => this.info(queue));
  }

  onAppend(listener: AppendListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells the listeners that the queue's visible end moved. */
  appended(queueId: number, endOffset: number): void {
    for (const listener of this.listeners) listener(queueId, endOffset);
  }
}
