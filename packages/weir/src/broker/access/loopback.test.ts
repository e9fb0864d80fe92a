import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackAddress } from './loopback.js';

describe('access: loopback addresses', () => {
  it('access: 127.0.0.0/8, ::1 and their IPv4-mapped forms are loopback', () => {
    for (const address of ['127.0.0.1', '127.1.2.3', '127.255.255.255', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::ffff:7f00:1']) assert.ok(isLoopbackAddress(address), address);
  });

  it('access: other addresses, host names and garbage are not', () => {
    for (const address of ['128.0.0.1', '10.0.0.1', '::2', '::ffff:10.0.0.1', 'fe80::1', 'localhost', '', '127.0.0.1:5672', '?']) assert.ok(!isLoopbackAddress(address), address);
  });
});
