import type { WeirError } from '../../core/errors.js';
import { invalidArgument } from '../errors.js';

/**
 * One part of a definitions document (RabbitMQ's format: `users`, `vhosts`, `permissions`, `exchanges`, `queues`,
 * `bindings`, each an array of objects): the top-level keys it owns and how it exports and imports them.
 */
export interface DefinitionsSection {
  /** The top-level keys it owns, in export order, e.g. ['users', 'vhosts', 'permissions']. */
  keys: string[];
  /** Import applies sections in ascending order, what others refer to first: see SectionOrder. */
  order: number;
  export(): Record<string, unknown[]>;
  /**
   * Throws INVALID_ARGUMENT naming the first bad entry, as invalidAt words it ("users[2].name: must be a string").
   * Every section validates before any section imports, so a bad entry anywhere changes nothing. Optional, but a
   * section without it can only fail halfway through an import.
   */
  validate?(definitions: Record<string, unknown>): void;
  /** Applies what validate accepted. */
  import(definitions: Record<string, unknown>): Promise<void>;
}

/** Import order: vhosts, users and permissions, then exchanges, then queues, then the bindings between them. */
export const SectionOrder = { access: 100, exchanges: 200, queues: 300, bindings: 400 } as const;

export interface ImportReport {
  /** Entries imported, per key. */
  applied: Record<string, number>;
  /** Top-level keys no section owns (RabbitMQ's parameters, policies, topic_permissions, …): ignored. */
  skipped: string[];
}

/**
 * Keys RabbitMQ writes about the export itself. Understood, not imported: each section gets them with its own keys
 * (a missing hashing_algorithm means MD5 in exports of RabbitMQ before 3.6).
 */
const DOCUMENT_KEYS: readonly string[] = ['rabbit_version', 'rabbitmq_version', 'product_name', 'product_version'];

/** The definitions sections of a broker: AccessControl's, and the AMQP layer's exchanges, queues and bindings. */
export class DefinitionsRegistry {
  private readonly sections: DefinitionsSection[] = [];

  /** Each key belongs to one section. */
  register(section: DefinitionsSection): void {
    for (const key of section.keys) {
      if (DOCUMENT_KEYS.includes(key) || this.sections.some((other) => other.keys.includes(key))) throw new Error(`the definitions key "${key}" already has a section`);
    }
    this.sections.push(section);
    this.sections.sort((a, b) => a.order - b.order);
  }

  /** Every section's keys, in section order; a key its section leaves out is exported empty. */
  async export(): Promise<Record<string, unknown[]>> {
    const document: Record<string, unknown[]> = {};
    for (const section of this.sections) {
      const exported = section.export();
      for (const key of section.keys) document[key] = exported[key] ?? [];
    }
    return document;
  }

  /**
   * Checks the whole document (each owned key an array of objects, then every section's validate), then applies the
   * sections that have keys in it, in order. Creates or updates; deletes nothing. INVALID_ARGUMENT naming the entry.
   */
  async import(json: unknown): Promise<ImportReport> {
    if (!isPlainObject(json)) throw invalidAt('definitions', 'must be a JSON object');
    const parts = this.sections.map((section) => ({ section, part: partOf(section, json) })).filter(({ section, part }) => section.keys.some((key) => key in part));
    for (const { section, part } of parts) section.validate?.(part);
    const applied: Record<string, number> = {};
    for (const { section, part } of parts) {
      await section.import(part);
      for (const key of section.keys) if (key in part) applied[key] = (part[key] as unknown[]).length;
    }
    const owned = new Set(this.sections.flatMap((section) => section.keys));
    return { applied, skipped: Object.keys(json).filter((key) => !owned.has(key) && !DOCUMENT_KEYS.includes(key)) };
  }
}

/** The section's keys present in the document, checked to be arrays of objects, plus the document keys. */
function partOf(section: DefinitionsSection, document: Record<string, unknown>): Record<string, unknown> {
  const part: Record<string, unknown> = {};
  for (const key of section.keys) {
    if (!Object.hasOwn(document, key)) continue;
    const entries = document[key];
    if (!Array.isArray(entries)) throw invalidAt(key, 'must be an array');
    entries.forEach((entry, index) => {
      if (!isPlainObject(entry)) throw invalidAt(`${key}[${index}]`, 'must be an object');
    });
    part[key] = entries;
  }
  for (const key of DOCUMENT_KEYS) if (Object.hasOwn(document, key)) part[key] = document[key];
  return part;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** INVALID_ARGUMENT "<path>: <problem>", the form of every definitions error. */
export function invalidAt(path: string, problem: string): WeirError {
  return invalidArgument(`${path}: ${problem}`);
}

/** `entry[name]` as a string, else INVALID_ARGUMENT "<path>.<name>: must be a string". */
export function stringAt(entry: Record<string, unknown>, path: string, name: string): string {
  const value = entry[name];
  if (typeof value !== 'string') throw invalidAt(`${path}.${name}`, 'must be a string');
  return value;
}

/** The entries of an array key as [entry, path] pairs ("users[2]"); none when the key is absent. */
export function entriesOf(definitions: Record<string, unknown>, key: string): Array<[Record<string, unknown>, string]> {
  const entries = (definitions[key] as Array<Record<string, unknown>> | undefined) ?? [];
  return entries.map((entry, index) => [entry, `${key}[${index}]`]);
}
