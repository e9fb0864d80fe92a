/**
 * What a scenario needs of a protocol: somewhere to send (topics or queues, made for the run and removed after it),
 * producers, and consumers that hand each delivered body to the scenario. One implementation per protocol
 * (native-driver.ts, amqp-driver.ts); the scenarios and the measuring do not know which one runs.
 */

/** How consumers take messages: a shared stream group, every message to each subscriber, or a work queue. */
export type ConsumerKind = 'group' | 'fanout' | 'queue';

export interface PerfProducer {
  /** Sends `bodies` to destination `destination`; resolves once the broker acknowledged them (per the ack mode). */
  send(destination: number, bodies: readonly Buffer[]): Promise<void>;
  /** Waits until everything sent so far was acknowledged. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface PerfConsumer {
  /** Stops consuming and disconnects; deliveries after it are not counted. */
  close(): Promise<void>;
}

export interface PerfDriver {
  /** Creates the run's destinations: `destinations` topics or queues (fanout: one, with `subscribers` queues). */
  setUp(layout: { destinations: number; subscribers: number; kind: ConsumerKind }): Promise<void>;
  producer(index: number): Promise<PerfProducer>;
  /**
   * A consumer of `destination` (fanout: subscriber `destination`), subscribed and ready once this resolves; calls
   * `onMessage` with each delivered body (acknowledged by the driver when the kind needs it).
   */
  consumer(destination: number, index: number, onMessage: (body: Buffer) => void): Promise<PerfConsumer>;
  /** Removes what setUp created. */
  tearDown(): Promise<void>;
  close(): Promise<void>;
}

/** Where a run's failure came from, for the report. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
