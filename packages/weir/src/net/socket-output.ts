import type { Socket } from 'node:net';

/** How long a connection ended by the broker waits for its peer to take the last bytes before the socket is cut. */
const END_GRACE_MS = 1000;

/**
 * The output side of a protocol connection's socket, the same for every protocol:
 * - writes of one tick are corked into one syscall;
 * - unsent output over `maxOutputBytes` (a peer that does not read its socket) destroys the socket at once, after
 *   `onOverflow` has said why: no closing frame, since a peer that does not read would never see it;
 * - `end()` flushes and half-closes, then cuts a peer that keeps the socket open after a grace period; `closed()`
 *   (from the socket's 'close') drops that timer, which would otherwise keep the connection reachable for the period.
 */
export class SocketOutput {
  private corked = false;
  private destroyTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly socket: Socket,
    private readonly maxOutputBytes: number,
    private readonly onOverflow: (unsentBytes: number) => void,
  ) {}

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
      socket.destroy();
      return false;
    }
    return writable;
  }

  end(): void {
    if (this.destroyTimer !== null) return;
    this.socket.end();
    this.destroyTimer = setTimeout(() => this.socket.destroy(), END_GRACE_MS);
    this.destroyTimer.unref();
  }

  closed(): void {
    if (this.destroyTimer !== null) clearTimeout(this.destroyTimer);
  }
}
