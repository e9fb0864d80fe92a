/** A status line rewritten in place on a terminal; nothing at all when the stream is not one (logs, pipes, CI). */
export class ProgressLine {
  private shown = false;

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {}

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  update(text: string): void {
    if (!this.enabled) return;
    const width = this.stream.columns ?? 120;
    this.stream.write(`\r\x1b[K${text.length >= width ? text.slice(0, width - 1) : text}`);
    this.shown = true;
  }

  clear(): void {
    if (!this.shown) return;
    this.stream.write('\r\x1b[K');
    this.shown = false;
  }
}
