import { ErrorCode } from '../core/errors.js';
import type { KeyValueStore } from '../storage/message-store.js';
import { brokerError } from './errors.js';

const NEXT_ID_KEY = 'producer/next-id';
const EPOCH_KEY_PREFIX = 'producer/epoch/';
/** Epochs travel as int16 on the wire; past this a producer gets a fresh id instead (as Kafka does). */
const MAX_EPOCH = 0x7fff;

export interface ProducerIdentity {
  producerId: number;
  producerEpoch: number;
}

/**
 * Idempotent producer identities: ids from a durable counter (`producer/next-id`, ids start at 1 because a stored
 * batch uses producer id 0 for "none"), and the current epoch of each id (`producer/epoch/<id>`, written only once an
 * id is resumed; a missing key means epoch 0). Resuming an id bumps its epoch, which fences every older instance.
 *
 * Concurrency: the counter and epochs change in memory at call time (so concurrent calls get distinct answers) and a
 * call resolves once its change is durable. A failed write leaves a gap in the ids or a skipped epoch, both harmless.
 */
export class ProducerIds {
  private nextId: number;
  private readonly epochs = new Map<number, number>();

  constructor(private readonly metadata: KeyValueStore) {
    this.nextId = (metadata.get(NEXT_ID_KEY) as number | undefined) ?? 1;
    for (const [key, value] of metadata.entries(EPOCH_KEY_PREFIX)) this.epochs.set(Number(key.slice(EPOCH_KEY_PREFIX.length)), value as number);
  }

  /** A new id (for -1 or no argument), or the next epoch of a known one. */
  async init(producerId = -1): Promise<ProducerIdentity> {
    if (producerId === -1) return this.allocate();
    const current = this.epochOf(producerId);
    if (current === undefined) throw brokerError(ErrorCode.UnknownProducer, `producer id ${producerId} is unknown; initialise with -1 for a new one`);
    if (current >= MAX_EPOCH) return this.allocate();
    const producerEpoch = current + 1;
    this.epochs.set(producerId, producerEpoch);
    await this.metadata.put(EPOCH_KEY_PREFIX + producerId, producerEpoch);
    return { producerId, producerEpoch };
  }

  /** The current epoch of a known id, or undefined. */
  epochOf(producerId: number): number | undefined {
    if (!Number.isSafeInteger(producerId) || producerId < 1 || producerId >= this.nextId) return undefined;
    return this.epochs.get(producerId) ?? 0;
  }

  /** Throws UNKNOWN_PRODUCER or INVALID_PRODUCER_EPOCH unless (id, epoch) is a current producer. */
  check(producerId: number, producerEpoch: number): void {
    const current = this.epochOf(producerId);
    if (current === undefined) throw brokerError(ErrorCode.UnknownProducer, `producer id ${producerId} is unknown; initialise the producer again`);
    if (producerEpoch !== current) {
      throw brokerError(ErrorCode.InvalidProducerEpoch, `producer ${producerId} has epoch ${current}; epoch ${producerEpoch} is ${producerEpoch < current ? 'fenced' : 'not valid'}`);
    }
  }

  private async allocate(): Promise<ProducerIdentity> {
    const producerId = this.nextId++;
    await this.metadata.put(NEXT_ID_KEY, this.nextId);
    return { producerId, producerEpoch: 0 };
  }
}
