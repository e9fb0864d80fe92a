/** Where a broker listens. */
export interface BrokerAddress {
  readonly host: string;
  readonly port: number;
}

/** The port `weir serve` listens on unless told otherwise. */
export const DEFAULT_PORT = 7654;

/**
 * Parses `host:port`, `[ipv6]:port`, a bare host (`localhost`, `::1`, `[::1]`) or `:port` (localhost). A missing
 * port means DEFAULT_PORT. Throws TypeError with the accepted forms for anything else.
 */
export function parseAddress(text: string): BrokerAddress {
  const input = text.trim();
  const fail = (why: string): never => {
    throw new TypeError(`broker address ${JSON.stringify(text)}: ${why}; expected host:port, [ipv6]:port or host (port ${DEFAULT_PORT})`);
  };
  if (input.length === 0) fail('it is empty');
  let host: string;
  let portText: string | null;
  if (input.startsWith('[')) {
    const close = input.indexOf(']');
    if (close < 0) fail('"[" without "]"');
    host = input.slice(1, close);
    const rest = input.slice(close + 1);
    if (rest === '') portText = null;
    else if (rest.startsWith(':')) portText = rest.slice(1);
    else portText = fail(`unexpected ${JSON.stringify(rest)} after "]"`);
  } else {
    const colons = input.split(':').length - 1;
    if (colons === 0) {
      host = input;
      portText = null;
    } else if (colons === 1) {
      const at = input.indexOf(':');
      host = input.slice(0, at) || 'localhost';
      portText = input.slice(at + 1);
    } else {
      // Several colons without brackets: a bare IPv6 address (a port cannot be told apart from its last group).
      host = input;
      portText = null;
    }
  }
  if (host.length === 0) fail('the host is empty');
  let port = DEFAULT_PORT;
  if (portText !== null) {
    if (!/^\d{1,5}$/.test(portText)) fail(`port ${JSON.stringify(portText)} is not a number`);
    port = Number(portText);
    if (port < 1 || port > 65535) fail(`port ${port} is outside 1-65535`);
  }
  return { host, port };
}

/** `host:port`, with brackets around an IPv6 host. */
export function formatAddress(address: BrokerAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
