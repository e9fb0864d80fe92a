export { ErrorCode, WeirError, isWeirError } from './core/errors.js';
export { type Clock, ManualClock, systemClock } from './core/clock.js';
export { type Logger, silentLogger } from './core/logger.js';
export { DiskMessageStore, type DiskMessageStoreOptions } from './storage/disk-message-store.js';
export { MemoryMessageStore } from './storage/memory-message-store.js';
export * from './storage/message-store.js';
export { decodeHeaders, type Headers, type MessageInput, type StoredMessage } from './storage/record-batch.js';
