import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Password hashes in RabbitMQ's format, so a RabbitMQ definitions export imports with working passwords and ours
 * import into RabbitMQ: base64( salt ‖ H(salt ‖ UTF-8 password) ) with a 4-byte random salt, H named by the algorithm
 * (`rabbit_password_hashing_sha256`, RabbitMQ's default since 3.6, or `rabbit_password_hashing_sha512`).
 */
export const HASHING_ALGORITHMS = ['rabbit_password_hashing_sha256', 'rabbit_password_hashing_sha512'] as const;
export type HashingAlgorithm = (typeof HASHING_ALGORITHMS)[number];
export const DEFAULT_HASHING_ALGORITHM: HashingAlgorithm = 'rabbit_password_hashing_sha256';

const SALT_BYTES = 4;
const DIGESTS: Record<HashingAlgorithm, { name: string; bytes: number }> = {
  rabbit_password_hashing_sha256: { name: 'sha256', bytes: 32 },
  rabbit_password_hashing_sha512: { name: 'sha512', bytes: 64 },
};

export function isHashingAlgorithm(value: unknown): value is HashingAlgorithm {
  return (HASHING_ALGORITHMS as readonly unknown[]).includes(value);
}

function digestOf(algorithm: HashingAlgorithm, salt: Uint8Array, password: string): Buffer {
  return createHash(DIGESTS[algorithm].name).update(salt).update(password, 'utf8').digest();
}

export function hashPassword(password: string, algorithm: HashingAlgorithm = DEFAULT_HASHING_ALGORITHM, salt: Uint8Array = randomBytes(SALT_BYTES)): string {
  return Buffer.concat([salt, digestOf(algorithm, salt, password)]).toString('base64');
}

/**
 * Whether `password` matches `storedHash`. The digest comparison takes the same time wherever the bytes differ, and a
 * hash that cannot match (empty: a user without a password, or malformed) still costs one digest, so the answer time
 * does not tell which case it was.
 */
export function verifyPassword(password: string, storedHash: string, algorithm: HashingAlgorithm): boolean {
  const stored = Buffer.from(storedHash, 'base64');
  const wellFormed = stored.length === SALT_BYTES + DIGESTS[algorithm].bytes;
  const salt = wellFormed ? stored.subarray(0, SALT_BYTES) : Buffer.alloc(SALT_BYTES);
  const digest = digestOf(algorithm, salt, password);
  return wellFormed && timingSafeEqual(digest, stored.subarray(SALT_BYTES));
}

/** What is wrong with a stored hash for `algorithm`, or null; '' (no password) is well formed. */
export function storedHashProblem(storedHash: string, algorithm: HashingAlgorithm): string | null {
  if (storedHash === '') return null;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(storedHash) || storedHash.length % 4 !== 0) return 'must be base64';
  const expected = SALT_BYTES + DIGESTS[algorithm].bytes;
  const length = Buffer.from(storedHash, 'base64').length;
  return length === expected ? null : `must decode to ${expected} bytes (a ${SALT_BYTES}-byte salt and the ${DIGESTS[algorithm].name} digest) for ${algorithm}, not ${length}`;
}
