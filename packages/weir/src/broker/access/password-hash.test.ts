import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { hashPassword, storedHashProblem, verifyPassword } from './password-hash.js';

describe('access: password hashes in RabbitMQ format', () => {
  it("access: reproduces the example of RabbitMQ's password documentation (salt 908DC60A, password test12)", () => {
    const hash = hashPassword('test12', 'rabbit_password_hashing_sha256', Buffer.from('908DC60A', 'hex'));
    assert.equal(hash, 'kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR');
    assert.ok(verifyPassword('test12', hash, 'rabbit_password_hashing_sha256'));
  });

  it('access: sha512 is base64 of the salt and SHA-512(salt ‖ password)', () => {
    const salt = Buffer.from('0a0b0c0d', 'hex');
    const expected = Buffer.concat([salt, createHash('sha512').update(Buffer.concat([salt, Buffer.from('pässword', 'utf8')])).digest()]).toString('base64');
    assert.equal(hashPassword('pässword', 'rabbit_password_hashing_sha512', salt), expected);
    assert.ok(verifyPassword('pässword', expected, 'rabbit_password_hashing_sha512'));
    assert.ok(!verifyPassword('pässword', expected, 'rabbit_password_hashing_sha256'), 'the algorithm is part of the check');
  });

  it('access: a fresh random salt each time', () => {
    assert.notEqual(hashPassword('same'), hashPassword('same'));
  });

  it('access: the password verifies; any other does not', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1 }), fc.string({ unit: 'grapheme', minLength: 1 }), (password, other) => {
        const hash = hashPassword(password);
        assert.ok(verifyPassword(password, hash, 'rabbit_password_hashing_sha256'));
        assert.equal(verifyPassword(other, hash, 'rabbit_password_hashing_sha256'), other === password);
      }),
      { numRuns: 200 },
    );
  });

  it('access: no password and malformed hashes never verify', () => {
    for (const stored of ['', 'not base64!', 'AAAA', hashPassword('x').slice(0, -4)]) assert.ok(!verifyPassword('', stored, 'rabbit_password_hashing_sha256'), stored);
  });

  it('access: storedHashProblem accepts well-formed hashes and "" (no password), and says what is wrong with others', () => {
    assert.equal(storedHashProblem(hashPassword('x'), 'rabbit_password_hashing_sha256'), null);
    assert.equal(storedHashProblem(hashPassword('x', 'rabbit_password_hashing_sha512'), 'rabbit_password_hashing_sha512'), null);
    assert.equal(storedHashProblem('', 'rabbit_password_hashing_sha256'), null);
    assert.equal(storedHashProblem('%%%%', 'rabbit_password_hashing_sha256'), 'must be base64');
    assert.match(storedHashProblem(hashPassword('x'), 'rabbit_password_hashing_sha512')!, /must decode to 68 bytes .* not 36/);
  });
});
