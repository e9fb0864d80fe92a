import type { Socket } from 'node:net';

/** How long a connection ended by the broker waits for its peer to take the last bytes before the socket is cut. */
const END_GRACE_MS = 1000;

/**
 * The output side of a protocol connection's socket, the same for every protocol:
 * - writes of one tick are corked into one syscall;
 * - unsent output over `maxOutputBytes` (a peer that does not read its socket) destroys the socket at once, after
 *   `onOverflow` has said why: no closing frame, since a peer that does not read would never see it;
 * - `whenWritable` lets producers of output (consumers' deliveries) wait for the socket to drain;
 * - `end()` flushes and half-closes, then cuts a peer that keeps the socket open after a grace period; `closed()`
 *   (from the socket's 'close') drops that timer, which would otherwise keep the connection reachable for the period.
 * Once the output is ended, overflowed or closed, nothing waiting for a drain is resumed: nothing more will be sent.
 */
export class SocketOutput {
  private corked = false;
  private destroyTimer: NodeJS.Timeout | null = null;
  private drainWaiters: Array<() => void> = [];

  constructor(
    private readonly socket: Socket,
    private readonly maxOutputBytes: number,
    private readonly onOverflow: (unsentBytes: number) => void,
  ) {
    socket.on('drain', () => {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const resume of waiters) resume();
    });
  }

  /** Runs `resume` at once when the socket is not congested, else once it has drained. */
  whenWritable(resume: () => void): void {
    if (this.socket.destroyed || this.destroyTimer !== null) return;
    if (!this.socket.writableNeedDrain) resume();
    else this.drainWaiters.push(resume);
  }

  /** Queues `bytes`; false when the socket wants a drain first, or is gone. */
  write(bytes: Buffer): boolean {
    const socket = this.socket;
    if (socket.destroyed || !socket.writable) return false;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      process.nextTick(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    const writable = socket.write(bytes);
    if (socket.writableLength > this.maxOutputBytes) {
      this.onOverflow(socket.writableLength);
      this.drainWaiters = [];
      socket.destroy();
      return false;
    }
    return writable;
  }

  end(): void {
    if (this.destroyTimer !== null) return;
    this.drainWaiters = [];
    this.socket.end();
    this.destroyTimer = setTimeout(() => this.socket.destroy(), END_GRACE_MS);
    this.destroyTimer.unref();
  }

  closed(): void {
    this.drainWaiters = [];
    if (this.destroyTimer !== null) clearTimeout(this.destroyTimer);
  }
}
