import { isSocket, type SyscallRecord } from './strace-trace.js';

/**
 * Checks a broker's system-call trace for acknowledgements that left before the fdatasync covering the log bytes
 * they acknowledge ("ack before fsync").
 *
 * - Log bytes: positional writes (pwrite64 / pwritev / pwritev2) to commit-log segments; a segment's file offset plus
 *   its base position (its file name) gives the global log position.
 * - A sync covers a write when it ran on the same segment after the write had returned.
 * - Acknowledgements are decoded from each socket's outgoing byte stream (the writes on it, in order):
 *   native Produce responses (docs/protocol.md "Framing" and "Produce": the response names the batch's commit-log
 *   `position`; the batch's own length field, in the logged bytes, gives its end) and AMQP basic.ack (AMQP 0-9-1
 *   §4.2.3 frames, class 60 method 80; its delivery tag names publishes, whose bodies the caller gives and which are
 *   found in the logged bytes).
 * - An acknowledgement leaves when the socket write holding its first byte begins; every logged byte it acknowledges
 *   must by then be covered by a sync that had returned.
 */
export interface AckAuditOptions {
  /** The global position of the segment a descriptor's target names, or null when it is not a commit-log segment. */
  segmentBase(target: string): number | null;
  /**
   * Which protocol a socket speaks, from what `-yy` printed for it (e.g. by its local port), or null to ignore it.
   * Streams must be traced from a frame boundary: attach while the connections are idle.
   */
  socketProtocol(target: string): 'native' | 'amqp' | null;
  /** The body published on an AMQP channel under a delivery tag, or undefined when the test did not publish it. */
  amqpBody(channel: number, deliveryTag: number): Buffer | undefined;
}

export interface AuditedAck {
  protocol: 'native' | 'amqp';
  /** What was acknowledged, for messages: `produce position 123` or `basic.ack tag 7`. */
  what: string;
  /** The socket write that carried it. */
  write: SyscallRecord;
  /** The sync that covered it last (the latest one needed), when every byte was covered. */
  coveredBy: SyscallRecord | null;
}

export interface AckAuditReport {
  acks: AuditedAck[];
  /** Human-readable, one per acknowledgement that was not covered (or could not be checked). */
  violations: string[];
  logWrites: number;
  syncs: number;
}

const WRITES = new Set(['pwrite64', 'pwritev', 'pwritev2', 'write', 'writev']);
const SYNCS = new Set(['fdatasync', 'fsync']);
const PRODUCE_API_KEY = 8;

interface LogWrite {
  record: SyscallRecord;
  /** Global positions [start, end) actually written. */
  start: number;
  end: number;
}

export function auditAcks(records: readonly SyscallRecord[], options: AckAuditOptions): AckAuditReport {
  const logWrites: LogWrite[] = [];
  const syncs: SyscallRecord[] = [];
  const streams = new Map<string, SyscallRecord[]>();
  for (const record of records) {
    const base = options.segmentBase(record.target);
    if (base !== null) {
      if (SYNCS.has(record.name) && record.result === 0) syncs.push(record);
      else if (WRITES.has(record.name) && record.offset !== null && record.result !== null && record.result > 0) {
        logWrites.push({ record, start: base + record.offset, end: base + record.offset + record.result });
      }
    } else if (isSocket(record) && (record.name === 'write' || record.name === 'writev') && record.result !== null && record.result > 0 && record.data !== null) {
      const key = `${record.fd}<${record.target}>`;
      const list = streams.get(key) ?? [];
      list.push(record);
      streams.set(key, list);
    }
  }
  const report: AckAuditReport = { acks: [], violations: [], logWrites: logWrites.length, syncs: syncs.length };
  const check = (protocol: AuditedAck['protocol'], what: string, write: SyscallRecord, ranges: Array<[number, number]> | string): void => {
    const ack: AuditedAck = { protocol, what, write, coveredBy: null };
    report.acks.push(ack);
    if (typeof ranges === 'string') {
      report.violations.push(`${what} (sent at ${write.time}): ${ranges}`);
      return;
    }
    for (const [start, end] of ranges) {
      const writes = logWrites.filter((logWrite) => logWrite.start < end && logWrite.end > start);
      const written = writes.reduce((sum, logWrite) => sum + Math.min(end, logWrite.end) - Math.max(start, logWrite.start), 0);
      if (written < end - start) {
        report.violations.push(`${what} (sent at ${write.time}): log bytes [${start}, ${end}) were not all written before the trace ended`);
        return;
      }
      for (const logWrite of writes) {
        const sync = syncs.find((candidate) => candidate.target === logWrite.record.target && candidate.entry > logWrite.record.exit && candidate.exit < write.entry);
        if (sync === undefined) {
          report.violations.push(
            `${what} left in a write at ${write.time} before any fdatasync of ${logWrite.record.target} covering log bytes [${logWrite.start}, ${logWrite.end}) written at ${logWrite.record.time}`,
          );
          return;
        }
        if (ack.coveredBy === null || sync.exit > ack.coveredBy.exit) ack.coveredBy = sync;
      }
    }
  };
  for (const writes of streams.values()) {
    const stream = new SocketStream(writes);
    const protocol = options.socketProtocol(writes[0]!.target);
    if (protocol === 'amqp') auditAmqpStream(stream, options, logWrites, check);
    else if (protocol === 'native') auditNativeStream(stream, logWrites, check);
  }
  return report;
}

type Check = (protocol: AuditedAck['protocol'], what: string, write: SyscallRecord, ranges: Array<[number, number]> | string) => void;

/** The bytes a socket sent, in order, and which write carried each. */
class SocketStream {
  readonly bytes: Buffer;
  private readonly starts: number[] = [];

  constructor(private readonly writes: readonly SyscallRecord[]) {
    let at = 0;
    const parts: Buffer[] = [];
    for (const write of writes) {
      this.starts.push(at);
      const sent = write.data!.subarray(0, write.result!);
      parts.push(sent);
      at += sent.byteLength;
    }
    this.bytes = Buffer.concat(parts);
  }

  /** The write that sent the byte at `index` of the stream. */
  writeAt(index: number): SyscallRecord {
    let low = 0;
    let high = this.starts.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.starts[middle]! <= index) low = middle;
      else high = middle - 1;
    }
    return this.writes[low]!;
  }

  get truncated(): boolean {
    return this.writes.some((write) => write.truncated || write.data!.byteLength < write.result!);
  }
}

function auditNativeStream(stream: SocketStream, logWrites: readonly LogWrite[], check: Check): void {
  const bytes = stream.bytes;
  for (let at = 0; at + 4 <= bytes.byteLength; ) {
    const length = bytes.readUInt32LE(at);
    const end = at + 4 + length;
    if (end > bytes.byteLength) break;
    // [kind:1][apiKey:int16][correlationId:int32][errorCode:int16][errorMessage:nullableString][fields]
    if (bytes[at + 4] === 1 && bytes.readInt16LE(at + 5) === PRODUCE_API_KEY && bytes.readInt16LE(at + 11) === 0) {
      const messageLength = bytes.readInt16LE(at + 13);
      const fields = at + 15 + Math.max(0, messageLength);
      // [partition:int32][baseOffset:int64][storeTimestamp:int64][position:int64][duplicate:bool]
      const partition = bytes.readInt32LE(fields);
      const baseOffset = Number(bytes.readBigInt64LE(fields + 4));
      const position = Number(bytes.readBigInt64LE(fields + 20));
      const what = `native produce ack of partition ${partition} offset ${baseOffset} (log position ${position})`;
      check('native', what, stream.writeAt(at), stream.truncated ? 'the socket data was cut short by strace -s' : batchRange(position, logWrites));
    }
    at = end;
  }
}

/** The log range of the batch at `position`: its first four bytes, as logged, are its length. */
function batchRange(position: number, logWrites: readonly LogWrite[]): Array<[number, number]> | string {
  const write = logWrites.find((logWrite) => logWrite.start <= position && position + 4 <= logWrite.end);
  if (write === undefined) return `no log write holds the batch at position ${position}`;
  const data = write.record.data!;
  const at = position - write.start;
  if (write.record.truncated && at + 4 > data.byteLength) return 'the logged bytes were cut short by strace -s';
  return [[position, position + data.readUInt32LE(at)]];
}

function auditAmqpStream(stream: SocketStream, options: AckAuditOptions, logWrites: readonly LogWrite[], check: Check): void {
  const bytes = stream.bytes;
  const lastTag = new Map<number, number>();
  for (let at = 0; at + 7 <= bytes.byteLength; ) {
    const type = bytes[at]!;
    const channel = bytes.readUInt16BE(at + 1);
    const size = bytes.readUInt32BE(at + 3);
    const end = at + 7 + size + 1;
    if (end > bytes.byteLength) break;
    // basic.nack (method 120) settles tags too: a later `multiple` ack starts after them.
    if (type === 1 && size >= 13 && bytes.readUInt16BE(at + 7) === 60 && bytes.readUInt16BE(at + 9) === 120) {
      lastTag.set(channel, Math.max(lastTag.get(channel) ?? 0, Number(bytes.readBigUInt64BE(at + 11))));
    }
    if (type === 1 && size >= 13 && bytes.readUInt16BE(at + 7) === 60 && bytes.readUInt16BE(at + 9) === 80) {
      const tag = Number(bytes.readBigUInt64BE(at + 11));
      const multiple = (bytes[at + 19]! & 1) === 1;
      const first = multiple ? (lastTag.get(channel) ?? 0) + 1 : tag;
      lastTag.set(channel, Math.max(lastTag.get(channel) ?? 0, tag));
      for (let covered = first; covered <= tag; covered++) {
        const body = options.amqpBody(channel, covered);
        if (body === undefined) continue;
        const what = `amqp basic.ack of channel ${channel} tag ${covered}${multiple ? ` (multiple up to ${tag})` : ''}`;
        check('amqp', what, stream.writeAt(at), stream.truncated ? 'the socket data was cut short by strace -s' : bodyRange(body, logWrites));
      }
    }
    at = end;
  }
}

/** Where a (unique) body was logged. */
function bodyRange(body: Buffer, logWrites: readonly LogWrite[]): Array<[number, number]> | string {
  for (const write of logWrites) {
    const index = write.record.data!.indexOf(body);
    if (index >= 0 && index + body.byteLength <= write.end - write.start) return [[write.start + index, write.start + index + body.byteLength]];
  }
  return `its body ${JSON.stringify(body.toString())} is in no logged write (or strace -s cut it off)`;
}

/** The local port of a TCP socket as `-yy` prints it (`TCPv6:[[::ffff:127.0.0.1]:7654->[::ffff:127.0.0.1]:40000]`). */
export function localPort(target: string): number | null {
  const match = /^TCP(?:v6)?:\[(?:\[[^\]]*\]|[^:\]]*):(\d+)->/.exec(target);
  return match === null ? null : Number(match[1]);
}
