/**
 * A small fuzz engine shared by every decoder's fuzz test: a seeded PRNG, generators of hostile inputs (random bytes,
 * mutations of valid encodings, streams of valid encodings), random split points for streaming parsers, and a runner
 * that feeds a target and checks three things per input:
 *
 * - no crash: anything thrown must be one of the decoder's documented error types (`classify` names it, or returns
 *   null for an error that is a bug);
 * - no hang: the time of every input is measured, and the slowest must stay under `maxInputMs` (an endless loop is
 *   caught by the test's own timeout);
 * - no allocation beyond the declared limits: `Buffer.alloc`, `allocUnsafe` and `allocUnsafeSlow` are intercepted
 *   while the target runs, and the largest request must stay under `maxAllocationBytes` (so a length field of 2^32 is
 *   refused before anything is allocated for it).
 *
 * Input n is generated from its own PRNG seeded by (target seed, n), so a failure names the one input to replay:
 * `inputAt(target, n)`.
 *
 * `npm test` runs `shortInputs` per target with fixed seeds; WEIR_CHAOS=1 runs WEIR_FUZZ_INPUTS (10 million by
 * default) per target, from input WEIR_FUZZ_FROM (0 by default; a failure prints the line that replays it).
 */

export const CHAOS = process.env.WEIR_CHAOS === '1' || process.env.WEIR_CHAOS === 'true';

/** How many inputs a target runs: its short count normally, 10 million (or WEIR_FUZZ_INPUTS) under WEIR_CHAOS. */
export function inputCount(shortInputs: number): number {
  if (!CHAOS) return shortInputs;
  const configured = Number(process.env.WEIR_FUZZ_INPUTS ?? 10_000_000);
  return Number.isSafeInteger(configured) && configured > 0 ? configured : 10_000_000;
}

/** A test timeout that fits the run: generous under WEIR_CHAOS (hours), two minutes otherwise. */
export function fuzzTimeoutMs(): number {
  return CHAOS ? 6 * 3_600_000 : 120_000;
}

/** xorshift128: fast, deterministic, a period of 2^128 - 1. */
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, stream = 0) {
    // splitmix-style scrambling so nearby (seed, stream) pairs give unrelated sequences.
    let s = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
    const scramble = (): number => {
      s = (s + 0x6d2b79f5) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 15), z | 1);
      z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
      return (z ^ (z >>> 14)) >>> 0;
    };
    this.a = scramble() || 1;
    this.b = scramble();
    this.c = scramble();
    this.d = scramble();
  }

  /** A uniformly distributed uint32. */
  next(): number {
    let t = this.d;
    const s = this.a;
    this.d = this.c;
    this.c = this.b;
    this.b = s;
    t ^= t << 11;
    t ^= t >>> 8;
    this.a = (t ^ s ^ (s >>> 19)) >>> 0;
    return this.a;
  }

  /** An integer in [0, n) (n ≤ 2^32). */
  below(n: number): number {
    return n <= 1 ? 0 : this.next() % n;
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p * 0x1_0000_0000;
  }

  bytes(length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) out[i] = this.next() & 0xff;
    return out;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)]!;
  }
}

/** Values that sit on the edges of length and count fields. */
const EDGE_VALUES = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xfff8, 0xffff, 0x1_0000, 0x7fff_ffff, 0x8000_0000, 0xffff_fff0, 0xffff_ffff];

export type MutationKind = 'bitflip' | 'byteswap' | 'length' | 'byte' | 'truncate' | 'splice' | 'insert' | 'delete' | 'duplicate';
const MUTATIONS: readonly MutationKind[] = ['bitflip', 'byteswap', 'length', 'length', 'byte', 'truncate', 'splice', 'insert', 'delete', 'duplicate'];

/**
 * Applies 1 to 4 random mutations to a copy of `input`: bit flips, swapped bytes, a 1/2/4-byte field (a length, a
 * count, a type tag) set to an edge or random value in either byte order, truncation, splicing with another corpus
 * entry, inserted random bytes, deleted bytes, a duplicated run.
 */
export function mutate(input: Buffer, random: Random, corpus: readonly Buffer[] = []): Buffer {
  let bytes = Buffer.from(input);
  const rounds = 1 + random.below(4);
  for (let round = 0; round < rounds; round++) {
    if (bytes.length === 0) return random.bytes(random.below(16));
    switch (random.pick(MUTATIONS)) {
      case 'bitflip': {
        const flips = 1 + random.below(8);
        for (let i = 0; i < flips; i++) bytes[random.below(bytes.length)]! ^= 1 << random.below(8);
        break;
      }
      case 'byteswap': {
        const i = random.below(bytes.length);
        const j = random.below(bytes.length);
        const t = bytes[i]!;
        bytes[i] = bytes[j]!;
        bytes[j] = t;
        break;
      }
      case 'length': {
        const width = random.pick([2, 4, 4]);
        if (bytes.length < width) break;
        const at = random.below(bytes.length - width + 1);
        const edge = random.chance(0.75) ? random.pick(EDGE_VALUES) : random.next();
        const value = width === 2 ? edge & 0xffff : edge >>> 0;
        if (width === 2) random.chance(0.5) ? bytes.writeUInt16LE(value, at) : bytes.writeUInt16BE(value, at);
        else random.chance(0.5) ? bytes.writeUInt32LE(value, at) : bytes.writeUInt32BE(value, at);
        break;
      }
      case 'byte':
        bytes[random.below(bytes.length)] = random.chance(0.5) ? random.pick(EDGE_VALUES) & 0xff : random.next() & 0xff;
        break;
      case 'truncate':
        bytes = bytes.subarray(0, random.below(bytes.length));
        break;
      case 'splice': {
        const other = corpus.length > 0 ? random.pick(corpus) : random.bytes(1 + random.below(32));
        const cut = random.below(bytes.length + 1);
        const from = random.below(other.length + 1);
        bytes = Buffer.concat([bytes.subarray(0, cut), other.subarray(from)]);
        break;
      }
      case 'insert': {
        const at = random.below(bytes.length + 1);
        bytes = Buffer.concat([bytes.subarray(0, at), random.bytes(1 + random.below(8)), bytes.subarray(at)]);
        break;
      }
      case 'delete': {
        const at = random.below(bytes.length);
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + random.below(8))]);
        break;
      }
      case 'duplicate': {
        const at = random.below(bytes.length);
        const run = bytes.subarray(at, at + 1 + random.below(16));
        bytes = Buffer.concat([bytes.subarray(0, at), run, bytes.subarray(at)]);
        break;
      }
    }
  }
  return bytes;
}

/** 1 to `most` corpus entries back to back: a valid stream. */
export function stream(random: Random, corpus: readonly Buffer[], most = 6): Buffer {
  const count = 1 + random.below(most);
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) parts.push(random.pick(corpus));
  return Buffer.concat(parts);
}

/**
 * Cuts `input` into chunks at random points, as a socket might deliver it: sometimes byte by byte, sometimes in a
 * few large pieces, sometimes whole.
 */
export function split(input: Buffer, random: Random): Buffer[] {
  const style = random.below(4);
  if (style === 0 || input.length === 0) return [input];
  const chunks: Buffer[] = [];
  const most = style === 1 ? 1 : style === 2 ? 8 : Math.max(1, input.length >>> 1);
  for (let at = 0; at < input.length; ) {
    const size = 1 + random.below(most);
    chunks.push(input.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/** A decoder under test. */
export interface FuzzTarget {
  /** Printed in the summary line: `fuzz <name>: …`. */
  readonly name: string;
  readonly seed: number;
  /** Inputs under `npm test` (a few seconds' worth). */
  readonly shortInputs: number;
  /** Valid encodings to mutate and splice. */
  readonly corpus: readonly Buffer[];
  /** Largest single Buffer allocation the decoder may request for any input. */
  readonly maxAllocationBytes: number;
  /** Slowest input allowed, in ms (default 1000: generous, the machine is shared; real hangs never finish). */
  readonly maxInputMs?: number;
  /** Makes input n; by default the mix of `defaultInput`. */
  generate?(random: Random, n: number): Buffer;
  /**
   * Feeds one input to the decoder (splitting it with `random` if it is a streaming parser) and returns what
   * happened when it did not throw (e.g. 'decoded', 'incomplete'). Throws whatever the decoder throws.
   */
  run(input: Buffer, random: Random): string;
  /** The kind of a documented decoder error (e.g. its code), or null when `error` is a bug. */
  classify(error: unknown): string | null;
}

/** The default mix: random bytes, valid entries, valid streams, mutated entries and mutated streams. */
export function defaultInput(random: Random, n: number, corpus: readonly Buffer[]): Buffer {
  switch (n % 8) {
    case 0:
      return random.bytes(random.below(256));
    case 1:
      return stream(random, corpus);
    case 2:
    case 3:
      return mutate(stream(random, corpus), random, corpus);
    default:
      return mutate(random.pick(corpus), random, corpus);
  }
}

export function inputAt(target: FuzzTarget, n: number): { input: Buffer; random: Random } {
  const random = new Random(target.seed, n);
  const input = target.generate ? target.generate(random, n) : defaultInput(random, n, target.corpus);
  return { input, random };
}

export interface FuzzSummary {
  name: string;
  inputs: number;
  seconds: number;
  /** Inputs per outcome: what `run` returned, or the kind of error thrown (prefixed `error:`). */
  outcomes: Map<string, number>;
  maxInputMs: number;
  slowestInput: number;
  largestAllocation: number;
}

export class FuzzFailure extends Error {
  override name = 'FuzzFailure';
}

type Allocator = (size: number, ...rest: never[]) => Buffer;

/** Inputs between two turns of the event loop (timers and promise continuations a target left behind run then). */
const INPUTS_PER_TURN = 1000;

/** Runs `target` over `inputs` inputs (default: `inputCount(target.shortInputs)`); throws FuzzFailure on a finding. */
export async function fuzz(target: FuzzTarget, inputs = inputCount(target.shortInputs)): Promise<FuzzSummary> {
  const maxInputMs = target.maxInputMs ?? 1000;
  // Replaying a failure: start at its input (every input is generated from its own seed, so nothing before it matters).
  const first = CHAOS ? Math.max(0, Number(process.env.WEIR_FUZZ_FROM ?? 0) || 0) : 0;
  const outcomes = new Map<string, number>();
  const count = (kind: string): void => {
    outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
  };
  let measuring = false;
  let largestNow = 0;
  const originals = { alloc: Buffer.alloc, allocUnsafe: Buffer.allocUnsafe, allocUnsafeSlow: Buffer.allocUnsafeSlow };
  const watch = (original: Allocator): Allocator =>
    function (this: unknown, size: number, ...rest: never[]): Buffer {
      if (measuring && size > largestNow) largestNow = size;
      return original.call(this, size, ...rest);
    };
  Buffer.alloc = watch(originals.alloc as Allocator) as typeof Buffer.alloc;
  Buffer.allocUnsafe = watch(originals.allocUnsafe) as typeof Buffer.allocUnsafe;
  Buffer.allocUnsafeSlow = watch(originals.allocUnsafeSlow) as typeof Buffer.allocUnsafeSlow;
  const summary: FuzzSummary = { name: target.name, inputs, seconds: 0, outcomes, maxInputMs: 0, slowestInput: -1, largestAllocation: 0 };
  const started = performance.now();
  try {
    for (let n = first; n < first + inputs; n++) {
      // A loop that never yields would keep everything a target left to a timer or a promise alive until the end.
      if ((n - first) % INPUTS_PER_TURN === INPUTS_PER_TURN - 1) await new Promise<void>((resolve) => setImmediate(resolve));
      const { input, random } = inputAt(target, n);
      const replay = (): string =>
        `${target.name} input ${n} (seed ${target.seed}; replay with WEIR_FUZZ_FROM=${n} WEIR_FUZZ_INPUTS=1 WEIR_CHAOS=1), ${input.length} bytes: ${input.subarray(0, 256).toString('hex')}`;
      largestNow = 0;
      const before = performance.now();
      measuring = true;
      try {
        count(target.run(input, random));
      } catch (error) {
        measuring = false;
        const kind = target.classify(error);
        if (kind === null) throw new FuzzFailure(`${replay()}\nthrew an undocumented error: ${(error as Error)?.stack ?? String(error)}`, { cause: error });
        count(`error:${kind}`);
      } finally {
        measuring = false;
      }
      const took = performance.now() - before;
      if (took > summary.maxInputMs) {
        summary.maxInputMs = took;
        summary.slowestInput = n;
      }
      if (took > maxInputMs) throw new FuzzFailure(`${replay()}\ntook ${took.toFixed(1)} ms (limit ${maxInputMs} ms)`);
      if (largestNow > summary.largestAllocation) summary.largestAllocation = largestNow;
      if (largestNow > target.maxAllocationBytes) {
        throw new FuzzFailure(`${replay()}\nallocated a buffer of ${largestNow} bytes (limit ${target.maxAllocationBytes})`);
      }
    }
  } finally {
    Buffer.alloc = originals.alloc;
    Buffer.allocUnsafe = originals.allocUnsafe;
    Buffer.allocUnsafeSlow = originals.allocUnsafeSlow;
  }
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

/** One line: inputs, rate, outcomes and errors by kind, slowest input, largest allocation. */
export function formatSummary(summary: FuzzSummary): string {
  const number = (value: number): string => value.toLocaleString('en-US');
  const kinds = [...summary.outcomes.entries()].sort((a, b) => b[1] - a[1]).map(([kind, n]) => `${kind} ${number(n)}`);
  return (
    `fuzz ${summary.name}: ${number(summary.inputs)} inputs in ${summary.seconds.toFixed(1)} s ` +
    `(${number(Math.round(summary.inputs / Math.max(summary.seconds, 1e-9)))}/s); ${kinds.join(', ')}; ` +
    `max ${summary.maxInputMs.toFixed(2)} ms per input (input ${summary.slowestInput}); largest allocation ${number(summary.largestAllocation)} B`
  );
}

/** How many inputs ended in `prefix`-kind outcomes (e.g. 'error:' for all errors). */
export function countOf(summary: FuzzSummary, prefix: string): number {
  let total = 0;
  for (const [kind, n] of summary.outcomes) if (kind.startsWith(prefix)) total += n;
  return total;
}
