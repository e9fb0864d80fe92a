import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { type AckAuditOptions, auditAcks, localPort } from './support/ack-audit.js';
import { parseStrace } from './support/strace-trace.js';

/**
 * The strace reader and the ack audit on a recorded trace (fixtures/fsync-audit-sample.strace: a broker under
 * fsync-audit.test.ts, cut to its first native produce acknowledgements and one AMQP confirm round), and on the same
 * trace edited to break the rule, so the audit is known to catch what it looks for.
 */
const sample = readFileSync(new URL('./fixtures/fsync-audit-sample.strace', import.meta.url), 'utf8');
const NATIVE_PORT = 46423;
const AMQP_PORT = 42893;
const AMQP_BODIES = Array.from({ length: 120 }, (_, index) => Buffer.from(`amqp-c7778747-${String(index).padStart(5, '0')}`));

const options: AckAuditOptions = {
  segmentBase: (target) => {
    const match = /\/commitlog\/(\d{20})\.log$/.exec(target);
    return match === null ? null : Number(match[1]);
  },
  socketProtocol: (target) => (localPort(target) === NATIVE_PORT ? 'native' : localPort(target) === AMQP_PORT ? 'amqp' : null),
  amqpBody: (_channel, tag) => AMQP_BODIES[tag - 1],
};

test('strace reader: calls split by other threads are joined, paths and offsets decoded', () => {
  const records = parseStrace(sample);
  const syncs = records.filter((record) => record.name === 'fdatasync');
  assert.ok(syncs.length >= 8);
  // 18499's fdatasync began on line 3 and returned on line 7 (sequence numbers count from 0).
  const split = syncs.find((record) => record.pid === 18499)!;
  assert.deepEqual([split.entry, split.exit, split.result], [2, 6, 0]);
  assert.match(split.target, /^\/tmp\/weir-fsync-audit-\w+\/commitlog\/0{20}\.log$/);
  const first = records[0]!;
  assert.equal(first.name, 'pwrite64');
  assert.equal(first.offset, 98);
  assert.equal(first.result, 111);
  assert.equal(first.data!.byteLength, 111);
  assert.equal(first.data!.readUInt32LE(0), 111, 'a whole record batch: its length field');
  assert.ok(first.data!.includes('native-c7778747-0-0'));
  const socketWrite = records.find((record) => record.target.startsWith('TCPv6:'))!;
  assert.equal(localPort(socketWrite.target), NATIVE_PORT);
});

test('strace reader: pwritev2 offsets, errors, cut strings and calls that never returned', () => {
  const trace = [
    '7 10:00:00.000001 pwritev2(5</data/commitlog/00000000000000001000.log>, [{iov_base="\\x01\\x02", iov_len=2}, {iov_base="\\x03", iov_len=1}], 2, 4096, RWF_DSYNC) = 3',
    '7 10:00:00.000002 pwrite64(5</data/commitlog/00000000000000001000.log>, "\\x01\\x02"..., 9, 7000) = -1 ENOSPC (No space left on device)',
    '8 10:00:00.000003 fdatasync(5</data/commitlog/00000000000000001000.log> <unfinished ...>',
    '8 10:00:00.000004 +++ exited with 0 +++',
  ].join('\n');
  const [pwritev2, failed, unfinished] = parseStrace(trace);
  assert.deepEqual([pwritev2!.offset, pwritev2!.result, [...pwritev2!.data!]], [4096, 3, [1, 2, 3]]);
  assert.deepEqual([failed!.offset, failed!.result, failed!.errno, failed!.truncated], [7000, -1, 'ENOSPC', true]);
  assert.deepEqual([unfinished!.name, unfinished!.result, unfinished!.exit], ['fdatasync', null, Number.POSITIVE_INFINITY]);
});

test('ack audit: the recorded trace acknowledges only after fdatasync', () => {
  const report = auditAcks(parseStrace(sample), options);
  assert.deepEqual(report.violations, []);
  const native = report.acks.filter((ack) => ack.protocol === 'native');
  const amqp = report.acks.filter((ack) => ack.protocol === 'amqp');
  assert.equal(native.length, 6, `${native.length} native acknowledgements`);
  assert.equal(amqp.length, 120, 'one basic.ack (multiple) covers every publish of the round');
  for (const ack of report.acks) assert.ok(ack.coveredBy !== null && ack.coveredBy.exit < ack.write.entry);
});

test('ack audit: an acknowledgement moved before its fdatasync is reported', () => {
  const lines = sample.split('\n');
  // The first native produce response (line 9) goes out right after its batch's pwrite64 (line 1), before any sync.
  const ack = lines.findIndex((line) => line.includes('write(22<TCPv6:'));
  const [moved] = lines.splice(ack, 1);
  lines.splice(1, 0, moved!);
  const report = auditAcks(parseStrace(lines.join('\n')), options);
  assert.equal(report.violations.length, 1, report.violations.join('\n'));
  assert.match(report.violations[0]!, /native produce ack of partition \d+ offset \d+ \(log position 98\) left in a write at .* before any fdatasync/);
});

test('ack audit: without the syncs every acknowledgement is reported; a failed sync covers nothing', () => {
  const withoutSyncs = sample
    .split('\n')
    .filter((line) => !/fdatasync/.test(line))
    .join('\n');
  const report = auditAcks(parseStrace(withoutSyncs), options);
  assert.equal(report.violations.length, report.acks.length);
  assert.ok(report.acks.length > 120);
  const failedSyncs = sample.replaceAll(/(fdatasync\(.*|<\.\.\. fdatasync resumed>\)) = 0$/gm, '$1 = -1 EIO (Input/output error)');
  assert.equal(auditAcks(parseStrace(failedSyncs), options).violations.length, report.acks.length);
});

test('ack audit: an acknowledged AMQP body that was never logged is reported', () => {
  const report = auditAcks(parseStrace(sample), { ...options, amqpBody: (_channel, tag) => (tag === 5 ? Buffer.from('never-published') : AMQP_BODIES[tag - 1]) });
  assert.equal(report.violations.length, 1);
  assert.match(report.violations[0]!, /tag 5 .*"never-published" is in no logged write/);
});
