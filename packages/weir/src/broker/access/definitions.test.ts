import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode } from '../../core/errors.js';
import { type DefinitionsSection, DefinitionsRegistry, invalidAt, SectionOrder } from './definitions.js';

/** A section that records what it was given, and fails validation on entries with `bad: true`. */
function recordingSection(keys: string[], order: number, log: string[], exported: Record<string, unknown[]> = {}): DefinitionsSection & { received: Array<Record<string, unknown>> } {
  const received: Array<Record<string, unknown>> = [];
  return {
    keys,
    order,
    received,
    export: () => exported,
    validate: (definitions) => {
      log.push(`validate ${keys.join('+')}`);
      for (const key of keys) {
        ((definitions[key] as Array<Record<string, unknown>> | undefined) ?? []).forEach((entry, index) => {
          if (entry.bad === true) throw invalidAt(`${key}[${index}].bad`, 'must not be true');
        });
      }
    },
    import: async (definitions) => {
      log.push(`import ${keys.join('+')}`);
      received.push(definitions);
    },
  };
}

describe('access: DefinitionsRegistry', () => {
  it('access: export merges the sections in order; a key a section leaves out is exported empty', async () => {
    const registry = new DefinitionsRegistry();
    registry.register(recordingSection(['queues'], SectionOrder.queues, [], { queues: [{ name: 'q' }] }));
    registry.register(recordingSection(['users', 'vhosts', 'permissions'], SectionOrder.access, [], { users: [{ name: 'u' }], vhosts: [{ name: '/' }] }));
    const document = await registry.export();
    assert.deepEqual(Object.keys(document), ['users', 'vhosts', 'permissions', 'queues']);
    assert.deepEqual(document, { users: [{ name: 'u' }], vhosts: [{ name: '/' }], permissions: [], queues: [{ name: 'q' }] });
  });

  it('access: import validates every section first, then applies them in order, each with its keys and the document keys', async () => {
    const log: string[] = [];
    const registry = new DefinitionsRegistry();
    const bindings = recordingSection(['bindings'], SectionOrder.bindings, log);
    const access = recordingSection(['users', 'vhosts', 'permissions'], SectionOrder.access, log);
    const exchanges = recordingSection(['exchanges'], SectionOrder.exchanges, log);
    registry.register(bindings);
    registry.register(exchanges);
    registry.register(access);
    const report = await registry.import({ rabbit_version: '3.13.7', bindings: [{}], vhosts: [{}, {}], users: [], exchanges: [{}], policies: [], topic_permissions: [] });
    assert.deepEqual(log, ['validate users+vhosts+permissions', 'validate exchanges', 'validate bindings', 'import users+vhosts+permissions', 'import exchanges', 'import bindings']);
    assert.deepEqual(access.received, [{ users: [], vhosts: [{}, {}], rabbit_version: '3.13.7' }]);
    assert.deepEqual(report, { applied: { users: 0, vhosts: 2, exchanges: 1, bindings: 1 }, skipped: ['policies', 'topic_permissions'] });
  });

  it('access: a section whose keys are all absent is neither validated nor imported', async () => {
    const log: string[] = [];
    const registry = new DefinitionsRegistry();
    registry.register(recordingSection(['queues'], SectionOrder.queues, log));
    const report = await registry.import({ product_name: 'RabbitMQ', parameters: [] });
    assert.deepEqual(log, []);
    assert.deepEqual(report, { applied: {}, skipped: ['parameters'] });
  });

  it('access: a bad entry in any section fails the import before anything is applied, naming the entry', async () => {
    const log: string[] = [];
    const registry = new DefinitionsRegistry();
    registry.register(recordingSection(['users'], SectionOrder.access, log));
    registry.register(recordingSection(['queues'], SectionOrder.queues, log));
    await assert.rejects(registry.import({ users: [{}], queues: [{}, {}, { bad: true }] }), { code: ErrorCode.InvalidArgument, message: 'queues[2].bad: must not be true' });
    assert.deepEqual(log, ['validate users', 'validate queues'], 'nothing imported');
  });

  it('access: the document must be an object, and every owned key an array of objects', async () => {
    const registry = new DefinitionsRegistry();
    registry.register(recordingSection(['users', 'vhosts'], SectionOrder.access, []));
    for (const [document, message] of [
      [[], 'definitions: must be a JSON object'],
      [null, 'definitions: must be a JSON object'],
      ['{}', 'definitions: must be a JSON object'],
      [{ users: {} }, 'users: must be an array'],
      [{ users: null }, 'users: must be an array'],
      [{ users: [], vhosts: [{ name: '/' }, 'orders'] }, 'vhosts[1]: must be an object'],
      [{ vhosts: [[]] }, 'vhosts[0]: must be an object'],
    ] as const) {
      await assert.rejects(registry.import(document), { code: ErrorCode.InvalidArgument, message }, JSON.stringify(document));
    }
    assert.deepEqual(await registry.import({ whatever: { not: 'an array' } }), { applied: {}, skipped: ['whatever'] }, 'keys nobody owns are not checked');
  });

  it('access: each key belongs to one section, and the document keys to none', () => {
    const registry = new DefinitionsRegistry();
    registry.register(recordingSection(['users'], SectionOrder.access, []));
    assert.throws(() => registry.register(recordingSection(['queues', 'users'], SectionOrder.queues, [])), /"users" already has a section/);
    assert.throws(() => registry.register(recordingSection(['rabbit_version'], 1, [])), /"rabbit_version" already has a section/);
  });
});
