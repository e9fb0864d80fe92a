import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffDelay, resolveRetry, sleep } from './backoff.js';

describe('client: backoff', () => {
  const options = { initialMs: 100, maxMs: 5000 };

  it('client: backoff doubles from initialMs and is capped at maxMs', () => {
    const top = (): number => 1 - Number.EPSILON;
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 10, 100].map((attempt) => backoffDelay(attempt, options, top)),
      [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000],
    );
  });

  it('client: backoff keeps a random half of the ceiling (equal jitter)', () => {
    assert.equal(backoffDelay(3, options, () => 0), 400);
    assert.equal(backoffDelay(3, options, () => 0.5), 600);
    for (let run = 0; run < 1000; run++) {
      const attempt = run % 12;
      const ceiling = Math.min(5000, 100 * 2 ** attempt);
      const delay = backoffDelay(attempt, options);
      assert.ok(delay >= ceiling / 2 && delay <= ceiling, `${delay} outside [${ceiling / 2}, ${ceiling}]`);
    }
  });

  it('client: backoff spreads the delays of many clients', () => {
    const delays = new Set(Array.from({ length: 100 }, () => backoffDelay(5, options)));
    assert.ok(delays.size > 50);
  });

  it('client: resolveRetry fills defaults and rejects nonsense', () => {
    assert.deepEqual(resolveRetry({ retries: 2 }), { initialMs: 100, maxMs: 10_000, retries: 2 });
    assert.deepEqual(resolveRetry({ initialMs: 5, maxMs: undefined }, { initialMs: 1, maxMs: 50, retries: 1 }), { initialMs: 5, maxMs: 50, retries: 1 });
    assert.throws(() => resolveRetry({ initialMs: 10, maxMs: 5 }), RangeError);
    assert.throws(() => resolveRetry({ retries: -1 }), RangeError);
  });

  it('client: sleep ends early when its signal aborts', async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 10);
    await sleep(10_000, controller.signal);
    assert.ok(Date.now() - started < 1000);
  });
});
