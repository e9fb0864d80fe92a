/**
 * Reads the output of `strace -f -tt -yy -xx -s <n> -o <file> -e trace=…` into one record per system call.
 *
 * With `-f` several threads trace at once, and strace splits a call that another thread interrupts into an
 * `<unfinished ...>` line and a later `<... name resumed>` line. Line order is the order strace saw the events, so
 * each call gets two sequence numbers: `entry` (when it began) and `exit` (when it returned). "A happened before B"
 * is then `A.exit < B.entry`, whatever the timestamps' resolution.
 */
export interface SyscallRecord {
  pid: number;
  /** `HH:MM:SS.micros` as strace printed it at entry. */
  time: string;
  name: string;
  fd: number;
  /** What `-yy` printed for the descriptor: a path, `TCPv6:[…->…]`, `socket:[inode]`, `pipe:[…]`. */
  target: string;
  /** Bytes the call passed (every string argument, in order), or null for calls that pass none. */
  data: Buffer | null;
  /** Whether strace cut a string short (`-s` too small): `data` is then a prefix. */
  truncated: boolean;
  /** File offset of a positional write (pwrite64, pwritev, pwritev2), else null. */
  offset: number | null;
  /** The return value, or null when the call had not returned when the trace ended. */
  result: number | null;
  errno: string | null;
  entry: number;
  exit: number;
}

const LINE = /^(\d+)\s+(\d\d:\d\d:\d\d\.\d+)\s+(.*)$/;
const UNFINISHED = ' <unfinished ...>';
const RESUMED = /^<\.\.\. (\w+) resumed>(.*)$/;
const CALL = /^(\w+)\((\d+)<(.*?)>(?=[,)])(.*)$/s;
const RESULT = /\)\s+=\s+(-?\d+|\?)(?:\s+(E[A-Z0-9]+))?.*$/;
const STRING = /"((?:\\x[0-9a-f]{2})*)"(\.\.\.)?/g;

/** Parses a whole trace. Lines that are not system calls on a descriptor (signals, exits, other calls) are skipped. */
export function parseStrace(text: string): SyscallRecord[] {
  const records: SyscallRecord[] = [];
  const open = new Map<number, { time: string; head: string; entry: number }>();
  let sequence = 0;
  for (const line of text.split('\n')) {
    const match = LINE.exec(line);
    if (match === null) continue;
    const pid = Number(match[1]);
    const time = match[2]!;
    let rest = match[3]!;
    const at = sequence++;
    const resumed = RESUMED.exec(rest);
    if (resumed !== null) {
      const started = open.get(pid);
      if (started === undefined) continue;
      open.delete(pid);
      const record = parseCall(pid, started.time, started.head + resumed[2]!, started.entry, at);
      if (record !== null) records.push(record);
      continue;
    }
    if (rest.endsWith(UNFINISHED)) {
      rest = rest.slice(0, -UNFINISHED.length);
      open.set(pid, { time, head: rest, entry: at });
      continue;
    }
    const record = parseCall(pid, time, rest, at, at);
    if (record !== null) records.push(record);
  }
  // Calls still running when tracing stopped: they began, but never returned.
  for (const [pid, started] of open) {
    const record = parseCall(pid, started.time, `${started.head}) = ?`, started.entry, Number.POSITIVE_INFINITY);
    if (record !== null) records.push({ ...record, result: null });
  }
  return records.sort((a, b) => a.entry - b.entry);
}

function parseCall(pid: number, time: string, text: string, entry: number, exit: number): SyscallRecord | null {
  const call = CALL.exec(text);
  if (call === null) return null;
  const [, name, fd, target, args] = call as unknown as [string, string, string, string, string];
  const result = RESULT.exec(args);
  const chunks: Buffer[] = [];
  let truncated = false;
  let lastStringEnd = -1;
  for (const string of args.matchAll(STRING)) {
    chunks.push(Buffer.from(string[1]!.replaceAll('\\x', ''), 'hex'));
    if (string[2] !== undefined) truncated = true;
    lastStringEnd = string.index + string[0].length;
  }
  return {
    pid,
    time,
    name,
    fd: Number(fd),
    // -xx escapes paths too.
    target: target.replace(/\\x([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
    data: lastStringEnd < 0 ? null : Buffer.concat(chunks),
    truncated,
    offset: positionalOffset(name, args),
    result: result === null || result[1] === '?' ? null : Number(result[1]),
    errno: result?.[2] ?? null,
    entry,
    exit,
  };
}

/** pwrite64(fd, buf, count, offset), pwritev(fd, iov, iovcnt, offset), pwritev2(fd, iov, iovcnt, offset, flags). */
function positionalOffset(name: string, args: string): number | null {
  if (name !== 'pwrite64' && name !== 'pwritev' && name !== 'pwritev2') return null;
  const close = args.lastIndexOf(') = ');
  if (close < 0) return null;
  const numbers = /((?:,\s*[\w|]+)+)$/.exec(args.slice(0, close).replace(/"(?:\\x[0-9a-f]{2})*"(?:\.\.\.)?/g, '""'));
  if (numbers === null) return null;
  const fields = numbers[1]!.split(',').map((field) => field.trim()).filter((field) => field !== '');
  const value = name === 'pwritev2' ? fields[fields.length - 2] : fields[fields.length - 1];
  return value === undefined || !/^\d+$/.test(value) ? null : Number(value);
}

/** Whether `-yy` described the descriptor as a network or local socket. */
export function isSocket(record: SyscallRecord): boolean {
  return /^(socket:|TCP|TCPv6|UDP|UDPv6|UNIX)/.test(record.target);
}
