/** How a client retries: exponential backoff from `initialMs`, capped at `maxMs`, at most `retries` times. */
export interface RetryOptions {
  /** Delay before the first retry (before jitter). */
  initialMs: number;
  /** Longest delay between two attempts (before jitter). */
  maxMs: number;
  /** Retries after the first attempt; 0 never retries. */
  retries: number;
}

export const DEFAULT_RETRY: RetryOptions = { initialMs: 100, maxMs: 10_000, retries: 10 };

export function resolveRetry(options: Partial<RetryOptions> | undefined, defaults: RetryOptions = DEFAULT_RETRY): RetryOptions {
  const retry = { ...defaults, ...stripUndefined(options ?? {}) };
  if (!(retry.initialMs >= 0) || !(retry.maxMs >= retry.initialMs)) {
    throw new RangeError(`retry: need 0 <= initialMs <= maxMs, got initialMs ${retry.initialMs}, maxMs ${retry.maxMs}`);
  }
  if (!(retry.retries >= 0)) throw new RangeError(`retry.retries must be >= 0, got ${retry.retries}`);
  return retry;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as Partial<T>;
}

/**
 * The delay before retry number `attempt` (0 for the first retry): the exponential ceiling
 * `min(maxMs, initialMs * 2^attempt)`, of which a random half is kept ("equal jitter"), so the delays of many clients
 * retrying together spread out while each still grows.
 */
export function backoffDelay(attempt: number, options: Pick<RetryOptions, 'initialMs' | 'maxMs'>, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(Math.max(attempt, 0), 40));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/** Resolves after `ms`, or at once when `signal` aborts (it never rejects: callers check their own state). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
