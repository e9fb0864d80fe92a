import { pino } from 'pino';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import type { BrokerConfig } from './config.js';

/** Structured JSON logs on stdout (pino): one line per connection or admin event, never one per message. */
export function createLogger(level: BrokerConfig['logLevel']): Logger {
  if (level === 'silent') return silentLogger;
  return pino({ level, base: { service: 'weir' } });
}
