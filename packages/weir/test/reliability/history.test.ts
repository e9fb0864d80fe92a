import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { checkHistory, History, passed, type TargetRules } from './history.js';

const STREAM: Record<string, TargetRules> = { s: { positional: true, duplicatesForbidden: true } };
const QUEUE: Record<string, TargetRules> = { q: { positional: false, duplicatesForbidden: false } };

/** A stream partition where producer `p` sent `count` values, all acknowledged at offsets 0…count-1. */
function acknowledgedStream(count: number): History {
  const history = new History();
  for (let offset = 0; offset < count; offset++) history.ok(history.invoke('s', 'p'), { partition: 0, offset });
  return history;
}

function readStream(history: History, offsets: readonly number[]): void {
  for (const offset of offsets) history.receive({ target: 's', partition: 0, offset, value: `p#${offset + 1}`, redelivered: false });
}

describe('reliability history checker', () => {
  it('passes a history where every acknowledged value was read once, in order', () => {
    const history = acknowledgedStream(5);
    readStream(history, [0, 1, 2, 3, 4]);
    const result = checkHistory(history, STREAM);
    assert.ok(passed(result));
    assert.deepEqual({ acknowledged: result.acknowledged, read: result.read, duplicates: result.duplicates }, { acknowledged: 5, read: 5, duplicates: 0 });
  });

  it('classifies lost values as before, between or after the values read', () => {
    const history = new History();
    for (let index = 0; index < 5; index++) history.ok(history.invoke('q', 'p'));
    for (const sequence of [2, 4]) history.receive({ target: 'q', value: `p#${sequence}`, redelivered: false });
    const result = checkHistory(history, QUEUE);
    assert.deepEqual(
      result.lost.map((lost) => `${lost.value}:${lost.where}`),
      ['p#1:before', 'p#3:between', 'p#5:after'],
    );
    assert.equal(passed(result), false);
  });

  it('reports values read that were never sent, and values read that definitely failed', () => {
    const history = new History();
    const refused = history.invoke('q', 'p');
    history.failed(refused);
    const maybe = history.invoke('q', 'p');
    history.unknown(maybe);
    history.receive({ target: 'q', value: refused.value, redelivered: false });
    history.receive({ target: 'q', value: maybe.value, redelivered: false });
    history.receive({ target: 'q', value: 'ghost#1', redelivered: false });
    const result = checkHistory(history, QUEUE);
    assert.deepEqual(result.abortedReads, [refused.value]);
    assert.deepEqual(result.unexpected, ['ghost#1']);
    assert.equal(result.unknownRead, 2, 'unknown outcomes may be read (counted, not a failure)');
  });

  it('counts queue redeliveries but flags a stream value at two positions', () => {
    const queue = new History();
    queue.ok(queue.invoke('q', 'p'));
    queue.receive({ target: 'q', value: 'p#1', redelivered: false });
    queue.receive({ target: 'q', value: 'p#1', redelivered: true });
    const queueResult = checkHistory(queue, QUEUE);
    assert.ok(passed(queueResult));
    assert.equal(queueResult.duplicates, 1);

    const stream = acknowledgedStream(2);
    readStream(stream, [0, 1, 0]);
    assert.ok(passed(checkHistory(stream, STREAM)), 're-reading the same offset is a redelivery');
    stream.receive({ target: 's', partition: 0, offset: 2, value: 'p#1', redelivered: false });
    const result = checkHistory(stream, STREAM);
    assert.equal(result.forbiddenDuplicates.length, 1);
    assert.equal(result.positionConflicts.length, 0, 'offset 2 was never acknowledged to another value');
  });

  it('flags two values at one offset and an acknowledged value read elsewhere', () => {
    const history = acknowledgedStream(2);
    history.receive({ target: 's', partition: 0, offset: 0, value: 'p#2', redelivered: false });
    history.receive({ target: 's', partition: 0, offset: 1, value: 'p#1', redelivered: false });
    const result = checkHistory(history, STREAM);
    assert.equal(result.positionConflicts.length, 2);
  });

  it('flags a hole below an offset read, unless the broker reported it damaged', () => {
    const history = acknowledgedStream(4);
    readStream(history, [0, 1, 3]);
    const result = checkHistory(history, STREAM);
    assert.equal(result.holes.length, 1);
    assert.deepEqual(result.lost.map((lost) => `${lost.value}:${lost.where}`), ['p#3:between']);

    history.injectDamage(['p#3']);
    assert.equal(checkHistory(history, STREAM).unreportedDamage.length, 1, 'damage the broker never reported is a silent loss');
    history.reportDamage({ target: 's', partition: 0, offsets: [2] });
    const reported = checkHistory(history, STREAM);
    assert.ok(passed(reported));
    assert.equal(reported.lostToReportedDamage, 1);
  });

  it('flags a producer out of order within a partition, but not a redelivery', () => {
    const history = new History();
    for (let index = 0; index < 3; index++) history.ok(history.invoke('q', 'p'));
    for (const [sequence, redelivered] of [[1, false], [2, false], [1, true], [3, false], [2, false]] as const) {
      history.receive({ target: 'q', value: `p#${sequence}`, redelivered });
    }
    assert.ok(passed(checkHistory(history, QUEUE)), 'a value read before is a redelivery even unflagged');
    const swapped = new History();
    for (let index = 0; index < 2; index++) swapped.ok(swapped.invoke('q', 'p'));
    swapped.receive({ target: 'q', value: 'p#2', redelivered: false });
    swapped.receive({ target: 'q', value: 'p#1', redelivered: false });
    assert.equal(checkHistory(swapped, QUEUE).orderViolations.length, 1);
  });

  it('survives a JSON round trip', () => {
    const history = acknowledgedStream(3);
    readStream(history, [0, 2]);
    history.injectDamage(['p#2']);
    const again = History.fromJson(JSON.parse(JSON.stringify(history.toJson())));
    assert.deepEqual(checkHistory(again, STREAM), checkHistory(history, STREAM));
    assert.equal(again.invoke('s', 'p').value, 'p#4', 'sequences continue after the saved ones');
  });

  // Properties: a model broker that keeps its promise always passes; dropping any acknowledged value always fails.
  const scenario = fc.record({
    producers: fc.integer({ min: 1, max: 3 }),
    outcomes: fc.array(fc.constantFrom('ok', 'failed', 'unknown-stored', 'unknown-lost'), { minLength: 1, maxLength: 60 }),
    redeliveries: fc.array(fc.nat(), { maxLength: 10 }),
  });

  function honestRun(input: { producers: number; outcomes: readonly string[]; redeliveries: readonly number[] }): History {
    const history = new History();
    const stored: string[] = [];
    input.outcomes.forEach((outcome, index) => {
      const send = history.invoke('s', `p${index % input.producers}`);
      if (outcome === 'ok') history.ok(send, { partition: 0, offset: stored.length });
      else if (outcome === 'failed') history.failed(send);
      else history.unknown(send);
      if (outcome === 'ok' || outcome === 'unknown-stored') stored.push(send.value);
    });
    stored.forEach((value, offset) => history.receive({ target: 's', partition: 0, offset, value, redelivered: false }));
    for (const pick of input.redeliveries) {
      if (stored.length === 0) break;
      const offset = pick % stored.length;
      history.receive({ target: 's', partition: 0, offset, value: stored[offset]!, redelivered: true });
    }
    return history;
  }

  it('property: an honest broker passes', () => {
    fc.assert(
      fc.property(scenario, (input) => {
        const result = checkHistory(honestRun(input), STREAM);
        assert.ok(passed(result), JSON.stringify(result));
      }),
    );
  });

  it('property: losing any acknowledged value fails, and says which', () => {
    fc.assert(
      fc.property(scenario, fc.nat(), (input, pick) => {
        const history = honestRun(input);
        const acknowledged = history.sends.filter((send) => send.status === 'ok');
        fc.pre(acknowledged.length > 0);
        const victim = acknowledged[pick % acknowledged.length]!.value;
        const kept = history.receives.filter((receive) => receive.value !== victim);
        const lossy = History.fromJson({ ...history.toJson(), receives: kept });
        const result = checkHistory(lossy, STREAM);
        assert.deepEqual(result.lost.map((lost) => lost.value), [victim]);
      }),
    );
  });

  it('property: serving a changed value is unexpected', () => {
    fc.assert(
      fc.property(scenario, fc.nat(), (input, pick) => {
        const history = honestRun(input);
        fc.pre(history.receives.length > 0);
        const index = pick % history.receives.length;
        const original = history.receives[index]!;
        const receives = history.receives.map((receive, at) => (at === index ? { ...receive, value: `${original.value}x` } : receive));
        const result = checkHistory(History.fromJson({ ...history.toJson(), receives }), STREAM);
        assert.ok(result.unexpected.includes(`${original.value}x`));
        assert.equal(passed(result), false);
      }),
    );
  });
});
