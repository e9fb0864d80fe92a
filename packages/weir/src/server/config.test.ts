import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, defaultConfig, kebab, MAX_AMQP_MESSAGE_BYTES, resolveConfig, settings } from './config.js';

describe('server: configuration', () => {
  it('server: config precedence is flag > environment > file > default', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'weir-config-')), 'weir.json');
    writeFileSync(file, JSON.stringify({ port: 1111, dataDir: '/from-file', logLevel: 'warn' }));
    const config = resolveConfig({ port: '3333' }, { WEIR_PORT: '2222', WEIR_DATA_DIR: '/from-env' }, file);
    assert.equal(config.port, 3333);
    assert.equal(config.dataDir, '/from-env');
    assert.equal(config.logLevel, 'warn');
    assert.equal(config.heartbeatMs, defaultConfig.heartbeatMs);
  });

  it('server: bad settings name the setting and where the value came from', () => {
    assert.throws(() => resolveConfig({ port: 'abc' }, {}), (error: unknown) => error instanceof ConfigError && /flag --port/.test(error.message));
    assert.throws(() => resolveConfig({}, { WEIR_LOG_LEVEL: 'loud' }), /WEIR_LOG_LEVEL.*logLevel must be one of/);
    const file = join(mkdtempSync(join(tmpdir(), 'weir-config-')), 'weir.json');
    writeFileSync(file, JSON.stringify({ prot: 1 }));
    assert.throws(() => resolveConfig({}, {}, file), /unknown setting "prot"/);
    assert.throws(() => resolveConfig({ port: 70000 }, {}), /at most 65535/);
    assert.throws(() => resolveConfig({ amqpMaxMessageBytes: MAX_AMQP_MESSAGE_BYTES + 1 }, {}), /amqpMaxMessageBytes must be 1 to \d+ \(what one stored batch holds\)/);
    assert.equal(resolveConfig({ amqpMaxMessageBytes: MAX_AMQP_MESSAGE_BYTES }, {}).amqpMaxMessageBytes, MAX_AMQP_MESSAGE_BYTES);
  });

  it('server: defaultPartitions is gone (nothing read it): a config file naming it is refused, not silently ignored', () => {
    assert.equal('defaultPartitions' in defaultConfig, false);
    const file = join(mkdtempSync(join(tmpdir(), 'weir-config-')), 'weir.json');
    writeFileSync(file, JSON.stringify({ defaultPartitions: 4 }));
    assert.throws(() => resolveConfig({}, {}, file), /unknown setting "defaultPartitions"/);
  });

  it('server: every setting is documented with its flag and variable', () => {
    const doc = readFileSync(new URL('../../../../docs/configuration.md', import.meta.url), 'utf8');
    for (const spec of settings) {
      assert.ok(doc.includes(`\`${spec.key}\``), `${spec.key} documented`);
      assert.ok(doc.includes(`\`${spec.env}\``), `${spec.env} documented`);
      assert.ok(doc.includes(`\`--${kebab(spec.key)}\``), `--${kebab(spec.key)} documented`);
    }
  });
});
