import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import {
  crc32c,
  decodeRequest,
  encodeErrorResponse,
  encodeResponse,
  errorCodeOf,
  FrameReader,
  generatedMessageId,
  isProtocolError,
  type DecodedRequest,
  type DecodedRequestOf,
  type ErrorName,
  type ResponseOf,
  type TopicConfig,
  type TopicDescription,
} from 'weir-protocol';

/**
 * A small in-process broker for the client's unit tests, speaking the real native protocol over TCP (codecs from
 * weir-protocol). It is not the broker: storage is in memory, groups are a simplified eager protocol, and hooks let a
 * test drop connections, delay or fail requests. Tests that need the real broker live in packages/client/test.
 */

interface StoredBatch {
  baseOffset: number;
  count: number;
  encoded: Buffer;
  timestamps: number[];
}

interface PartitionData {
  batches: StoredBatch[];
  endOffset: number;
  waiters: Set<() => void>;
  /** Idempotence: producerId → state. */
  producers: Map<number, { epoch: number; nextSequence: number; window: Array<{ sequence: number; count: number; baseOffset: number; storeTimestamp: number; position: number }> }>;
}

interface TopicData {
  name: string;
  config: TopicConfig;
  partitions: PartitionData[];
}

class FakeError extends Error {
  constructor(
    readonly code: ErrorName,
    message: string,
  ) {
    super(message);
  }
}

/** What a hook may decide for a request. */
export type HookDecision =
  /** Answer normally. */
  | undefined
  /** Process the request, then destroy the connection before answering. */
  | 'process-then-drop'
  /** Destroy the connection without processing the request. */
  | 'drop'
  /** Never answer (and do not process). */
  | 'ignore'
  /** Answer with this error, without processing. */
  | { error: ErrorName; message?: string }
  /** Answer after this many milliseconds. */
  | { delayMs: number };

export interface FakeBrokerOptions {
  heartbeatMs?: number;
  maxFrameBytes?: number;
  /** How long a rebalance round waits for members that have not rejoined. */
  rebalanceWaitMs?: number;
}

interface Member {
  memberId: string;
  topics: string[];
  sessionTimeoutMs: number;
  lastSeen: number;
  joined: boolean;
  joinWaiter: ((result: { generation: number; members: string[] }) => void) | null;
}

class FakeGroup {
  members = new Map<string, Member>();
  state: 'Empty' | 'Preparing' | 'Stable' = 'Empty';
  generation = 0;
  assignment = new Map<string, Map<string, number[]>>();
  roundTimer: NodeJS.Timeout | null = null;
}

export class FakeBroker {
  readonly topics = new Map<string, TopicData>();
  readonly offsets = new Map<string, number>();
  readonly groups = new Map<string, FakeGroup>();
  readonly connections = new Set<Socket>();
  /** Every request received, in order (name and body). */
  readonly received: Array<{ name: string; body: unknown }> = [];
  hook: ((request: DecodedRequest, socket: Socket) => HookDecision) | null = null;
  private position = 0;
  private nextProducerId = 1;
  private readonly producerEpochs = new Map<number, number>();
  private sessionTimer: NodeJS.Timeout;

  private constructor(
    private readonly server: Server,
    private readonly options: FakeBrokerOptions,
  ) {
    this.sessionTimer = setInterval(() => this.expireSessions(), 50);
    this.sessionTimer.unref();
  }

  static async start(options: FakeBrokerOptions = {}): Promise<FakeBroker> {
    const server = createServer({ noDelay: true });
    const broker = new FakeBroker(server, options);
    server.on('connection', (socket) => broker.accept(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return broker;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  createTopic(name: string, partitions: number): void {
    this.topics.set(name, {
      name,
      config: { retentionMs: -1, retentionBytes: -1, flushPolicy: 'sync', flushIntervalMs: 1000, maxMessageBytes: 1 << 20 },
      partitions: Array.from({ length: partitions }, () => ({ batches: [], endOffset: 0, waiters: new Set(), producers: new Map() })),
    });
  }

  /** Every stored message body of a partition, in offset order, as UTF-8. */
  bodies(topic: string, partition: number): string[] {
    const out: string[] = [];
    for (const batch of this.topics.get(topic)!.partitions[partition]!.batches) out.push(...decodeBodies(batch.encoded));
    return out;
  }

  dropConnections(): void {
    for (const socket of this.connections) socket.destroy();
  }

  async close(): Promise<void> {
    clearInterval(this.sessionTimer);
    for (const group of this.groups.values()) if (group.roundTimer) clearTimeout(group.roundTimer);
    this.dropConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(socket: Socket): void {
    this.connections.add(socket);
    socket.on('close', () => this.connections.delete(socket));
    socket.on('error', () => {});
    const reader = new FrameReader(16 << 20);
    let handshaken = false;
    socket.on('data', (chunk: Buffer) => {
      reader.push(chunk);
      for (;;) {
        let payload: Buffer | null;
        try {
          payload = reader.next();
        } catch {
          socket.destroy();
          return;
        }
        if (payload === null) return;
        let request: DecodedRequest;
        try {
          request = decodeRequest(payload);
        } catch (error) {
          if (isProtocolError(error) && error.correlationId !== null && error.apiKey !== null) {
            socket.write(encodeErrorResponse(error.apiKey, error.correlationId, error.errorCode, error.message));
          }
          socket.destroy();
          return;
        }
        if (!handshaken && request.name !== 'Handshake') {
          socket.write(encodeErrorResponse(request.apiKey, request.correlationId, errorCodeOf('NOT_HANDSHAKEN'), 'handshake first'));
          socket.end();
          return;
        }
        handshaken = true;
        this.received.push({ name: request.name, body: request.body });
        this.dispatch(request, socket);
      }
    });
  }

  private dispatch(request: DecodedRequest, socket: Socket): void {
    const decision = this.hook?.(request, socket);
    if (decision === 'drop') {
      socket.destroy();
      return;
    }
    if (decision === 'ignore') return;
    if (typeof decision === 'object' && 'error' in decision) {
      socket.write(encodeErrorResponse(request.apiKey, request.correlationId, errorCodeOf(decision.error), decision.message ?? decision.error));
      return;
    }
    const delayMs = typeof decision === 'object' && 'delayMs' in decision ? decision.delayMs : 0;
    void this.handle(request).then(
      (answer) => {
        if (answer === null) return;
        const send = (): void => {
          if (decision === 'process-then-drop') {
            socket.destroy();
            return;
          }
          if (!socket.destroyed) socket.write(answer);
        };
        if (delayMs > 0) setTimeout(send, delayMs);
        else send();
      },
      (error: unknown) => {
        const code = error instanceof FakeError ? error.code : 'INTERNAL_ERROR';
        if (!socket.destroyed) socket.write(encodeErrorResponse(request.apiKey, request.correlationId, errorCodeOf(code), (error as Error).message));
      },
    );
  }

  private respond<N extends DecodedRequest['name']>(request: DecodedRequest & { name: N }, body: ResponseOf<N>): Buffer {
    return encodeResponse(request.name, request.correlationId, body);
  }

  private topic(name: string): TopicData {
    const topic = this.topics.get(name);
    if (topic === undefined) throw new FakeError('UNKNOWN_TOPIC', `topic "${name}" does not exist`);
    return topic;
  }

  private partition(topicName: string, partition: number): PartitionData {
    const data = this.topic(topicName).partitions[partition];
    if (data === undefined) throw new FakeError('INVALID_PARTITION', `topic "${topicName}" has no partition ${partition}`);
    return data;
  }

  private describe(topic: TopicData): TopicDescription {
    return {
      name: topic.name,
      config: topic.config,
      partitions: topic.partitions.map((data, partition) => ({ partition, startOffset: 0, endOffset: data.endOffset, bytes: 0 })),
    };
  }

  private async handle(request: DecodedRequest): Promise<Buffer | null> {
    switch (request.name) {
      case 'Handshake':
        return this.respond(request, {
          version: 1,
          brokerVersion: 'fake',
          maxFrameBytes: Math.min(request.body.maxFrameBytes, this.options.maxFrameBytes ?? 16 << 20),
          heartbeatMs: this.options.heartbeatMs ?? 10_000,
          connectionId: randomUUID(),
        });
      case 'Ping':
        return this.respond(request, {});
      case 'CreateTopic': {
        if (this.topics.has(request.body.name)) throw new FakeError('TOPIC_EXISTS', `topic "${request.body.name}" exists`);
        this.createTopic(request.body.name, request.body.partitions);
        const topic = this.topic(request.body.name);
        topic.config = request.body.config;
        return this.respond(request, { topic: this.describe(topic) });
      }
      case 'DeleteTopic':
        this.topic(request.body.name);
        this.topics.delete(request.body.name);
        return this.respond(request, {});
      case 'ListTopics':
        return this.respond(request, { topics: [...this.topics.values()].map((topic) => this.describe(topic)) });
      case 'DescribeTopic':
        return this.respond(request, { topic: this.describe(this.topic(request.body.name)) });
      case 'InitProducer': {
        let producerId = request.body.producerId;
        let producerEpoch = 0;
        if (producerId === -1) producerId = this.nextProducerId++;
        else if (!this.producerEpochs.has(producerId)) throw new FakeError('UNKNOWN_PRODUCER', `producer ${producerId} unknown`);
        else producerEpoch = this.producerEpochs.get(producerId)! + 1;
        this.producerEpochs.set(producerId, producerEpoch);
        return this.respond(request, { producerId, producerEpoch });
      }
      case 'Produce':
        return this.produce(request as DecodedRequest & { name: 'Produce' });
      case 'Fetch':
        return this.fetch(request as DecodedRequest & { name: 'Fetch' });
      case 'ListOffsets': {
        const data = this.partition(request.body.topic, request.body.partition);
        const timestamp = request.body.timestamp;
        let offset = data.endOffset;
        if (timestamp === -2) offset = 0;
        else if (timestamp >= 0) {
          search: for (const batch of data.batches) {
            for (let index = 0; index < batch.count; index++) {
              if (batch.timestamps[index]! >= timestamp) {
                offset = batch.baseOffset + index;
                break search;
              }
            }
          }
        }
        return this.respond(request, { offset });
      }
      case 'FetchOffsets': {
        const topic = this.topic(request.body.topic);
        return this.respond(request, {
          offsets: topic.partitions.map((_, partition) => ({
            topic: topic.name,
            partition,
            offset: this.offsets.get(`${request.body.group}|${topic.name}|${partition}`) ?? -1,
            metadata: '',
          })),
        });
      }
      case 'CommitOffsets': {
        const body = request.body;
        if (body.generation !== -1) {
          const group = this.groups.get(body.group);
          const member = group?.members.get(body.memberId);
          if (group === undefined || member === undefined) throw new FakeError('UNKNOWN_MEMBER', 'unknown member');
          if (body.generation !== group.generation) throw new FakeError('ILLEGAL_GENERATION', 'old generation');
        }
        for (const entry of body.offsets) this.offsets.set(`${body.group}|${entry.topic}|${entry.partition}`, entry.offset);
        return this.respond(request, {});
      }
      case 'JoinGroup':
        return this.join(request as DecodedRequest & { name: 'JoinGroup' });
      case 'SyncGroup': {
        const group = this.groups.get(request.body.group);
        const member = group?.members.get(request.body.memberId);
        if (group === undefined || member === undefined) throw new FakeError('UNKNOWN_MEMBER', 'unknown member');
        member.lastSeen = Date.now();
        if (group.state === 'Preparing') throw new FakeError('REBALANCE_IN_PROGRESS', 'rebalancing');
        if (request.body.generation !== group.generation) throw new FakeError('ILLEGAL_GENERATION', 'old generation');
        const owned = group.assignment.get(member.memberId) ?? new Map<string, number[]>();
        return this.respond(request, { assignment: [...owned].map(([topic, partitions]) => ({ topic, partitions })) });
      }
      case 'Heartbeat': {
        const group = this.groups.get(request.body.group);
        const member = group?.members.get(request.body.memberId);
        if (group === undefined || member === undefined) throw new FakeError('UNKNOWN_MEMBER', 'unknown member');
        member.lastSeen = Date.now();
        if (group.state === 'Preparing') throw new FakeError('REBALANCE_IN_PROGRESS', 'rebalancing');
        if (request.body.generation !== group.generation) throw new FakeError('ILLEGAL_GENERATION', 'old generation');
        return this.respond(request, {});
      }
      case 'LeaveGroup': {
        const group = this.groups.get(request.body.group);
        if (group === undefined || !group.members.has(request.body.memberId)) throw new FakeError('UNKNOWN_MEMBER', 'unknown member');
        group.members.delete(request.body.memberId);
        this.startRound(group);
        return this.respond(request, {});
      }
      default:
        throw new FakeError('UNKNOWN_API', `the fake broker does not implement ${request.name}`);
    }
  }

  private produce(request: DecodedRequest & { name: 'Produce' }): Buffer | null {
    const body = request.body as DecodedRequestOf<'Produce'>;
    const data = this.partition(body.topic, body.partition);
    const count = body.messages.length;
    const answer = (result: { baseOffset: number; storeTimestamp: number; position: number; duplicate: boolean }): Buffer | null =>
      body.acks === 0 ? null : this.respond(request, { partition: body.partition, ...result });
    let state: PartitionData['producers'] extends Map<number, infer S> ? S : never;
    if (body.producerId >= 0) {
      const epoch = this.producerEpochs.get(body.producerId);
      if (epoch === undefined) throw new FakeError('UNKNOWN_PRODUCER', `producer ${body.producerId} unknown`);
      if (epoch !== body.producerEpoch) throw new FakeError('INVALID_PRODUCER_EPOCH', 'fenced');
      let known = data.producers.get(body.producerId);
      if (known === undefined || known.epoch !== body.producerEpoch) {
        if (body.baseSequence !== 0) throw new FakeError('UNKNOWN_PRODUCER', `first batch must have sequence 0, not ${body.baseSequence}`);
        known = { epoch: body.producerEpoch, nextSequence: 0, window: [] };
        data.producers.set(body.producerId, known);
      }
      const duplicate = known.window.find((entry) => entry.sequence === body.baseSequence && entry.count === count);
      if (duplicate !== undefined) return answer({ ...duplicate, duplicate: true });
      if (body.baseSequence !== known.nextSequence) {
        throw new FakeError('OUT_OF_ORDER_SEQUENCE', `expected sequence ${known.nextSequence}, got ${body.baseSequence}`);
      }
      state = known;
    }
    const storeTimestamp = Date.now();
    const position = this.position;
    const baseOffset = data.endOffset;
    const encoded = encodeBatch(baseOffset, storeTimestamp, position, body.producerId >= 0 ? body.producerId : 0, body.producerEpoch, body.baseSequence, body.messages);
    this.position += encoded.length;
    data.batches.push({ baseOffset, count, encoded, timestamps: body.messages.map((message) => (message.timestamp >= 0 ? message.timestamp : storeTimestamp)) });
    data.endOffset += count;
    if (body.producerId >= 0) {
      state!.nextSequence = body.baseSequence + count;
      state!.window.push({ sequence: body.baseSequence, count, baseOffset, storeTimestamp, position });
      if (state!.window.length > 5) state!.window.shift();
    }
    for (const wake of [...data.waiters]) wake();
    return answer({ baseOffset, storeTimestamp, position, duplicate: false });
  }

  private async fetch(request: DecodedRequest & { name: 'Fetch' }): Promise<Buffer> {
    const body = request.body as DecodedRequestOf<'Fetch'>;
    const data = this.partition(body.topic, body.partition);
    if (body.offset > data.endOffset) throw new FakeError('OFFSET_OUT_OF_RANGE', `offset ${body.offset} is past the end ${data.endOffset}`);
    if (body.offset === data.endOffset && body.maxWaitMs > 0) {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          data.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, body.maxWaitMs);
        data.waiters.add(wake);
      });
    }
    const records: Buffer[] = [];
    let bytes = 0;
    for (const batch of data.batches) {
      if (batch.baseOffset + batch.count <= body.offset) continue;
      if (records.length > 0 && bytes + batch.encoded.length > body.maxBytes) break;
      records.push(batch.encoded);
      bytes += batch.encoded.length;
    }
    return this.respond(request, { startOffset: 0, endOffset: data.endOffset, records });
  }

  // ---- groups (simplified eager protocol) ----

  private join(request: DecodedRequest & { name: 'JoinGroup' }): Promise<Buffer> {
    const body = request.body as DecodedRequestOf<'JoinGroup'>;
    let group = this.groups.get(body.group);
    if (group === undefined) {
      group = new FakeGroup();
      this.groups.set(body.group, group);
    }
    let member: Member;
    if (body.memberId === '') {
      member = { memberId: randomUUID(), topics: [...body.topics], sessionTimeoutMs: body.sessionTimeoutMs, lastSeen: Date.now(), joined: false, joinWaiter: null };
      group.members.set(member.memberId, member);
    } else {
      const known = group.members.get(body.memberId);
      if (known === undefined) return Promise.reject(new FakeError('UNKNOWN_MEMBER', `unknown member ${body.memberId}`));
      member = known;
      member.topics = [...body.topics];
    }
    member.lastSeen = Date.now();
    const current = group;
    return new Promise<Buffer>((resolve) => {
      member.joined = true;
      member.joinWaiter = ({ generation, members }) => resolve(this.respond(request, { memberId: member.memberId, generation, members }));
      this.startRound(current);
      this.maybeComplete(current);
    });
  }

  private startRound(group: FakeGroup): void {
    if (group.state === 'Preparing') {
      this.maybeComplete(group);
      return;
    }
    group.state = 'Preparing';
    for (const member of group.members.values()) if (member.joinWaiter === null) member.joined = false;
    group.roundTimer = setTimeout(() => {
      group.roundTimer = null;
      for (const member of [...group.members.values()]) if (!member.joined) group.members.delete(member.memberId);
      this.complete(group);
    }, this.options.rebalanceWaitMs ?? 2000);
    this.maybeComplete(group);
  }

  private maybeComplete(group: FakeGroup): void {
    if (group.state !== 'Preparing') return;
    for (const member of group.members.values()) if (!member.joined) return;
    this.complete(group);
  }

  private complete(group: FakeGroup): void {
    if (group.roundTimer !== null) clearTimeout(group.roundTimer);
    group.roundTimer = null;
    group.generation++;
    group.state = group.members.size === 0 ? 'Empty' : 'Stable';
    const members = [...group.members.keys()].sort();
    group.assignment = new Map(members.map((id) => [id, new Map<string, number[]>()]));
    const topics = new Set<string>();
    for (const member of group.members.values()) for (const topic of member.topics) topics.add(topic);
    for (const topicName of topics) {
      const topic = this.topics.get(topicName);
      if (topic === undefined) continue;
      const subscribers = members.filter((id) => group.members.get(id)!.topics.includes(topicName));
      topic.partitions.forEach((_, partition) => {
        const owner = subscribers[partition % subscribers.length]!;
        const owned = group.assignment.get(owner)!;
        owned.set(topicName, [...(owned.get(topicName) ?? []), partition]);
      });
    }
    for (const member of group.members.values()) {
      member.joined = false;
      member.lastSeen = Date.now();
      const waiter = member.joinWaiter;
      member.joinWaiter = null;
      waiter?.({ generation: group.generation, members });
    }
  }

  private expireSessions(): void {
    const now = Date.now();
    for (const group of this.groups.values()) {
      let removed = false;
      for (const member of [...group.members.values()]) {
        if (member.joinWaiter === null && now - member.lastSeen > member.sessionTimeoutMs) {
          group.members.delete(member.memberId);
          removed = true;
        }
      }
      if (removed) this.startRound(group);
    }
  }
}

/** Encodes messages as one stored record batch (docs/storage.md, "Record batch"). */
export function encodeBatch(
  baseOffset: number,
  storeTimestamp: number,
  position: number,
  producerId: number,
  producerEpoch: number,
  baseSequence: number,
  messages: DecodedRequestOf<'Produce'>['messages'],
): Buffer {
  const encodedMessages = messages.map((message, index) => {
    const id = message.id ?? generatedMessageId(storeTimestamp, position, index);
    const tag = message.tag === null ? Buffer.alloc(0) : Buffer.from(message.tag);
    const headerParts: Buffer[] = [];
    if (message.headers.length > 0) {
      const count = Buffer.alloc(2);
      count.writeUInt16LE(message.headers.length);
      headerParts.push(count);
      for (const header of message.headers) {
        const name = Buffer.from(header.name);
        const head = Buffer.alloc(2 + name.length + 1 + 4);
        head.writeUInt16LE(name.length, 0);
        name.copy(head, 2);
        head[2 + name.length] = header.isString ? 0 : 1;
        head.writeUInt32LE(header.value.length, 3 + name.length);
        headerParts.push(head, Buffer.from(header.value));
      }
    }
    const headers = Buffer.concat(headerParts);
    const fixed = Buffer.alloc(4 + 8 + 1);
    const timestamp = message.timestamp >= 0 ? message.timestamp : storeTimestamp;
    fixed.writeUInt32LE(timestamp % 2 ** 32, 4);
    fixed.writeUInt32LE(Math.floor(timestamp / 2 ** 32), 8);
    fixed[12] = id.length;
    const keyLength = Buffer.alloc(2);
    keyLength.writeUInt16LE(message.key === null ? 0xffff : message.key.length);
    const tagLength = Buffer.from([tag.length]);
    const headersLength = Buffer.alloc(4);
    headersLength.writeUInt32LE(headers.length);
    const parts = [fixed, Buffer.from(id), keyLength, message.key === null ? Buffer.alloc(0) : Buffer.from(message.key), tagLength, tag, headersLength, headers, Buffer.from(message.body)];
    const encoded = Buffer.concat(parts);
    encoded.writeUInt32LE(encoded.length - 4, 0);
    return encoded;
  });
  const header = Buffer.alloc(48);
  const body = Buffer.concat(encodedMessages);
  const length = 48 + body.length;
  header.writeUInt32LE(length, 0);
  header[8] = 1;
  header[9] = 0;
  header.writeUInt16LE(messages.length, 10);
  header.writeUInt32LE(0, 12);
  const u64 = (value: number, at: number): void => {
    header.writeUInt32LE(value % 2 ** 32, at);
    header.writeUInt32LE(Math.floor(value / 2 ** 32), at + 4);
  };
  u64(baseOffset, 16);
  u64(storeTimestamp, 24);
  u64(producerId, 32);
  header.writeInt16LE(producerEpoch < 0 ? 0 : producerEpoch, 40);
  header.writeInt32LE(baseSequence, 44);
  const batch = Buffer.concat([header, body]);
  batch.writeUInt32LE(crc32c(batch.subarray(8)), 4);
  return batch;
}

function decodeBodies(batch: Buffer): string[] {
  const count = batch.readUInt16LE(10);
  const out: string[] = [];
  let cursor = 48;
  for (let index = 0; index < count; index++) {
    const end = cursor + 4 + batch.readUInt32LE(cursor);
    const idLength = batch[cursor + 12]!;
    let at = cursor + 13 + idLength;
    const keyLength = batch.readUInt16LE(at);
    at += 2 + (keyLength === 0xffff ? 0 : keyLength);
    at += 1 + batch[at]!;
    at += 4 + batch.readUInt32LE(at);
    out.push(batch.toString('utf8', at, end));
    cursor = end;
  }
  return out;
}
