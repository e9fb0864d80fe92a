import { open, readdir, readFile, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { parseNumberedFileName } from '../../src/storage/file-names.js';
import { BatchCheck, checkBatch, checkBatchFrame, decodeMessages, RECORD_HEADER_BYTES, readBatchHeader, type StoredMessage } from '../../src/storage/record-batch.js';
import { flipBit } from '../../src/storage/test-support.js';

/**
 * Damage to a stopped broker's commit log, as a power loss or a failing disk would leave it (docs/storage.md,
 * "Checkpoint and recovery"). The harness reads the log itself to know which batch holds which value, so that it only
 * tears bytes a power loss could really have lost: nothing at or below the checkpoint position (fsynced before the
 * checkpoint was written) and nothing up to the end of the last batch holding a value any client saw (acknowledged or
 * read: its append had resolved, so it was fsynced). Everything past that frontier is fair game, since a power loss
 * may keep any prefix of unsynced writes.
 */

export interface LoggedBatch {
  /** Global commit-log position (the segment's start plus the offset in the file). */
  readonly position: number;
  readonly end: number;
  readonly segment: string;
  /** Where the batch starts inside its segment file. */
  readonly fileOffset: number;
  readonly queueId: number;
  readonly baseOffset: number;
  readonly count: number;
  /** Message bodies as text (the harness's values). */
  readonly values: readonly string[];
}

export interface LogLayout {
  readonly batches: readonly LoggedBatch[];
  /** The last segment and its size on disk. */
  readonly lastSegment: string;
  readonly lastSegmentStart: number;
  readonly fileEnd: number;
  /** Recovery point from the checkpoint file (0 when there is none). */
  readonly checkpoint: number;
}

/** The four ways a power loss leaves a log's tail. */
export type TailFault = 'truncate' | 'garbage' | 'zeros' | 'bitflip';
export const TAIL_FAULTS: readonly TailFault[] = ['truncate', 'garbage', 'zeros', 'bitflip'];

/** What was done to the log, for the run's record. */
export interface Corruption {
  readonly kind: TailFault | 'old-bitflip';
  /** False when there was nothing the fault could touch (e.g. no unsynced tail at the kill). */
  readonly applied: boolean;
  readonly detail: string;
  /** Values whose batch was damaged (old-bitflip only). */
  readonly values: readonly string[];
}

const MAX_BATCH_BYTES = 64 << 20;

/** Reads every segment and lists its valid batches (skipping invalid bytes between them, as recovery does). */
export async function readLogLayout(dataDir: string): Promise<LogLayout> {
  const directory = join(dataDir, 'commitlog');
  const segments = (await readdir(directory))
    .map((name) => ({ name, start: parseNumberedFileName(name, '.log') }))
    .filter((entry): entry is { name: string; start: number } => entry.start !== null)
    .sort((a, b) => a.start - b.start);
  if (segments.length === 0) throw new Error(`no commit-log segment in ${directory}`);
  const batches: LoggedBatch[] = [];
  let fileEnd = 0;
  for (const segment of segments) {
    const path = join(directory, segment.name);
    const bytes = await readFile(path);
    fileEnd = bytes.byteLength;
    let at = 0;
    for (;;) {
      if (checkBatch(bytes, at, bytes.byteLength, MAX_BATCH_BYTES) !== BatchCheck.Valid) {
        // Damage kept on disk (recovery leaves it there, marked lost) or the tail: go on at the next valid batch, if any.
        at = nextValidBatch(bytes, at + 1);
        if (at < 0) break;
      }
      const header = readBatchHeader(bytes, at);
      const messages: StoredMessage[] = [];
      decodeMessages(bytes, at, segment.start + at, 0, header.count, messages);
      batches.push({
        position: segment.start + at,
        end: segment.start + at + header.length,
        segment: path,
        fileOffset: at,
        queueId: header.queueId,
        baseOffset: header.baseOffset,
        count: header.count,
        values: messages.map((message) => message.body.toString('utf8')),
      });
      at += header.length;
    }
  }
  const last = segments[segments.length - 1]!;
  return { batches, lastSegment: join(directory, last.name), lastSegmentStart: last.start, fileEnd, checkpoint: await checkpointPosition(dataDir) };
}

function nextValidBatch(bytes: Buffer, from: number): number {
  for (let at = from; at + RECORD_HEADER_BYTES <= bytes.byteLength; at++) {
    if (checkBatchFrame(bytes, at, bytes.byteLength, MAX_BATCH_BYTES) === BatchCheck.Valid && checkBatch(bytes, at, bytes.byteLength, MAX_BATCH_BYTES) === BatchCheck.Valid) return at;
  }
  return -1;
}

async function checkpointPosition(dataDir: string): Promise<number> {
  try {
    const parsed = JSON.parse(await readFile(join(dataDir, 'checkpoint'), 'utf8')) as { position?: unknown };
    return typeof parsed.position === 'number' ? parsed.position : 0;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

/**
 * The lowest position a power loss could have cut the log at: past the checkpoint and past every batch holding a
 * value some client saw.
 */
export function durableFrontier(layout: LogLayout, observed: (value: string) => boolean): number {
  let frontier = layout.checkpoint;
  for (const batch of layout.batches) if (batch.end > frontier && batch.values.some(observed)) frontier = batch.end;
  return frontier;
}

async function writeAt(path: string, position: number, bytes: Buffer): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.write(bytes, 0, bytes.byteLength, position);
  } finally {
    await handle.close();
  }
}

/**
 * Tears the log's tail past `frontier` the way `kind` says; `random` draws every choice, so a seed replays it. Only the
 * last segment is touched (a power loss tears the file being appended to).
 */
export async function tearTail(layout: LogLayout, frontier: number, kind: TailFault, random: () => number): Promise<Corruption> {
  const fileEnd = layout.lastSegmentStart + layout.fileEnd;
  const from = Math.max(frontier, layout.lastSegmentStart);
  const pick = (low: number, high: number): number => low + Math.floor(random() * (high - low + 1));
  const none = (why: string): Corruption => ({ kind, applied: false, detail: why, values: [] });
  switch (kind) {
    case 'truncate': {
      if (fileEnd <= from) return none('no unsynced tail');
      const cut = pick(from, fileEnd - 1);
      await truncate(layout.lastSegment, cut - layout.lastSegmentStart);
      return { kind, applied: true, detail: `cut at ${cut} of ${fileEnd} (frontier ${frontier})`, values: [] };
    }
    case 'garbage': {
      // Garbage over part of the unsynced tail, possibly running past the end (a sector of stale or random data).
      const start = pick(from, fileEnd);
      const garbage = Buffer.alloc(pick(1, 4096));
      for (let index = 0; index < garbage.byteLength; index++) garbage[index] = Math.floor(random() * 256);
      await writeAt(layout.lastSegment, start - layout.lastSegmentStart, garbage);
      return { kind, applied: true, detail: `${garbage.byteLength} random bytes at ${start} of ${fileEnd} (frontier ${frontier})`, values: [] };
    }
    case 'zeros': {
      // The file grew but its data never reached the disk: zeros where the unsynced writes were, and beyond.
      const start = pick(from, fileEnd);
      const zeros = Buffer.alloc(pick(1, 8192));
      await writeAt(layout.lastSegment, start - layout.lastSegmentStart, zeros);
      return { kind, applied: true, detail: `${zeros.byteLength} zero bytes at ${start} of ${fileEnd} (frontier ${frontier})`, values: [] };
    }
    case 'bitflip': {
      const last = layout.batches[layout.batches.length - 1];
      if (last === undefined || last.position < from || last.segment !== layout.lastSegment) return none('the last record was seen by a client (synced): not a torn tail');
      const at = pick(last.position, last.end - 1);
      const bit = pick(0, 7);
      await flipBit(layout.lastSegment, at - layout.lastSegmentStart, bit);
      return { kind, applied: true, detail: `bit ${bit} flipped at ${at} in the last record [${last.position}, ${last.end})`, values: [] };
    }
  }
}

/**
 * Flips one bit in an older batch: one at or below the frontier (fsynced, seen by clients) with a valid batch after
 * it, so recovery cannot take it for a torn tail. `eligible` picks the batches worth damaging (e.g. those holding
 * values of the topics under test). The broker must then report the damage and never serve the batch's values.
 */
export async function damageOldRecord(layout: LogLayout, frontier: number, eligible: (batch: LoggedBatch) => boolean, random: () => number): Promise<Corruption> {
  const candidates = layout.batches.slice(0, -1).filter((batch) => batch.end <= frontier && eligible(batch));
  if (candidates.length === 0) return { kind: 'old-bitflip', applied: false, detail: 'no older batch to damage', values: [] };
  const batch = candidates[Math.floor(random() * candidates.length)]!;
  // Anywhere in the batch, its length field included: bit rot does not choose.
  const at = batch.position + Math.floor(random() * (batch.end - batch.position));
  const bit = Math.floor(random() * 8);
  await flipBit(batch.segment, batch.fileOffset + (at - batch.position), bit);
  return { kind: 'old-bitflip', applied: true, detail: `bit ${bit} flipped at ${at} in [${batch.position}, ${batch.end}) (queue ${batch.queueId}, offsets ${batch.baseOffset}+${batch.count})`, values: batch.values };
}
