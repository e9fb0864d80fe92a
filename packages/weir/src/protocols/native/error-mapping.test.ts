import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, WeirError } from '../../core/errors.js';
import { protocolErrorOf } from './error-mapping.js';

describe('native: error mapping', () => {
  it('native: every domain error code reaches the wire as a protocol error (add new codes to both tables)', () => {
    const deliberatelyInternal = new Set<string>([ErrorCode.BadFormat]);
    for (const code of Object.values(ErrorCode)) {
      const mapped = protocolErrorOf(new WeirError(code, 'm'));
      assert.equal(mapped.name === 'INTERNAL_ERROR', deliberatelyInternal.has(code), `${code} → ${mapped.name}`);
    }
  });

  it('native: access-control errors keep their names', () => {
    for (const code of [ErrorCode.UnknownUser, ErrorCode.UserExists, ErrorCode.UnknownVhost, ErrorCode.VhostExists]) {
      assert.deepEqual(protocolErrorOf(new WeirError(code, 'why')), { name: code, message: 'why', unexpected: false });
    }
  });
});
