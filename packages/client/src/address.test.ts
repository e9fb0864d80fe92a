import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_PORT, formatAddress, parseAddress } from './address.js';

describe('client: broker addresses', () => {
  it('client: parseAddress reads host:port, [ipv6]:port and bare hosts', () => {
    assert.deepEqual(parseAddress('localhost:7654'), { host: 'localhost', port: 7654 });
    assert.deepEqual(parseAddress(' broker.internal:9000 '), { host: 'broker.internal', port: 9000 });
    assert.deepEqual(parseAddress('[::1]:8000'), { host: '::1', port: 8000 });
    assert.deepEqual(parseAddress('[::1]'), { host: '::1', port: DEFAULT_PORT });
    assert.deepEqual(parseAddress('::1'), { host: '::1', port: DEFAULT_PORT });
    assert.deepEqual(parseAddress('fe80::1:2'), { host: 'fe80::1:2', port: DEFAULT_PORT });
    assert.deepEqual(parseAddress('10.0.0.7'), { host: '10.0.0.7', port: DEFAULT_PORT });
    assert.deepEqual(parseAddress(':7000'), { host: 'localhost', port: 7000 });
  });

  it('client: parseAddress rejects bad input with the accepted forms', () => {
    for (const bad of ['', 'host:', 'host:abc', 'host:0', 'host:70000', '[::1', '[::1]x', '[]:80']) {
      assert.throws(() => parseAddress(bad), (error: Error) => error instanceof TypeError && /expected host:port/.test(error.message), bad);
    }
  });

  it('client: formatAddress brackets IPv6 hosts and round-trips', () => {
    assert.equal(formatAddress({ host: '::1', port: 1 }), '[::1]:1');
    assert.equal(formatAddress({ host: 'a', port: 2 }), 'a:2');
    for (const text of ['[::1]:8000', 'localhost:7654', '127.0.0.1:1']) assert.equal(formatAddress(parseAddress(text)), text);
  });
});
