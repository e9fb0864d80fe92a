import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket, connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SocketOutput } from './socket-output.js';

describe('SocketOutput', () => {
  let server: Server;
  const accepted: Socket[] = [];

  before(async () => {
    server = createServer((socket) => accepted.push(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });
  after(() => server.close());

  /** A connected pair: the broker's side (accepted) and a peer that reads only when told to. */
  async function pair(): Promise<{ broker: Socket; peer: Socket }> {
    // Half-open allowed: the peer does not end its side when the broker ends its own.
    const peer = connect({ port: (server.address() as { port: number }).port, host: '127.0.0.1', allowHalfOpen: true });
    peer.pause();
    await once(peer, 'connect');
    while (accepted.length === 0) await new Promise((resolve) => setImmediate(resolve));
    return { broker: accepted.shift()!, peer };
  }

  it('destroys the socket, after saying why, once a peer that does not read leaves too much unsent', async () => {
    const { broker, peer } = await pair();
    const overflows: number[] = [];
    const output = new SocketOutput(broker, 256 << 10, (unsent) => overflows.push(unsent));
    const chunk = Buffer.alloc(64 << 10);
    let writes = 0;
    while (!broker.destroyed && writes < 10_000) {
      output.write(chunk);
      writes++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(broker.destroyed, true, `still open after ${writes} writes`);
    assert.equal(overflows.length, 1);
    assert.ok(overflows[0]! > 256 << 10);
    assert.equal(output.write(chunk), false, 'nothing is written after the overflow');
    peer.destroy();
  });

  it('whenWritable resumes at once on a free socket, after the drain on a congested one, and never once ended', async () => {
    const { broker, peer } = await pair();
    const output = new SocketOutput(broker, 64 << 20, () => assert.fail('no overflow'));
    let resumed = 0;
    output.whenWritable(() => resumed++);
    assert.equal(resumed, 1);
    const chunk = Buffer.alloc(64 << 10);
    while (output.write(chunk)) await new Promise((resolve) => setImmediate(resolve));
    output.whenWritable(() => resumed++);
    assert.equal(resumed, 1, 'waits while congested');
    const drained = once(broker, 'drain');
    peer.resume();
    await drained;
    assert.equal(resumed, 2);
    while (output.write(chunk)) await new Promise((resolve) => setImmediate(resolve));
    output.whenWritable(() => resumed++);
    output.end();
    output.whenWritable(() => resumed++);
    await once(broker, 'close');
    output.closed();
    assert.equal(resumed, 2, 'nothing more will be sent: nobody is resumed');
    peer.destroy();
  });

  it('writes of one tick reach the peer in order, and end() cuts a peer that keeps the socket open', async () => {
    const { broker, peer } = await pair();
    const output = new SocketOutput(broker, 1 << 20, () => assert.fail('no overflow'));
    const received: Buffer[] = [];
    peer.on('data', (data: Buffer) => received.push(data));
    peer.resume();
    for (let index = 0; index < 10; index++) output.write(Buffer.from([index]));
    const ended = performance.now();
    output.end();
    // The peer never ends its side: the broker's socket closes anyway, after the grace period.
    await once(broker, 'close');
    assert.ok(performance.now() - ended >= 900, `closed ${performance.now() - ended} ms after end()`);
    output.closed();
    assert.deepEqual([...Buffer.concat(received)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    peer.destroy();
  });
});
