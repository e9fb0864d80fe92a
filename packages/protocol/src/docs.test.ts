import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { PROTOCOL_DOC_PATH, renderProtocolDoc } from '../../../scripts/gen-protocol-docs.js';
import { apis, errorCodes, structs } from './index.js';

const doc = readFileSync(PROTOCOL_DOC_PATH, 'utf8');

describe('protocol: docs/protocol.md', () => {
  it('protocol: docs/protocol.md is up to date with the schema', () => {
    assert.ok(
      doc === renderProtocolDoc(),
      'docs/protocol.md differs from the schema: run `node --import tsx scripts/gen-protocol-docs.ts` and commit the result',
    );
  });

  it('protocol: every error code is documented and every documented code exists', () => {
    const documented = new Map<number, string>();
    for (const match of doc.matchAll(/^\| (\d+) \| `([A-Z_]+)` \| (yes|no) \| /gm)) documented.set(Number(match[1]), match[2]!);
    assert.deepEqual(
      [...documented].sort(([x], [y]) => x - y),
      errorCodes.map((entry) => [entry.code, entry.name]),
    );
    for (const entry of errorCodes) assert.ok(doc.includes(`| ${entry.code} | \`${entry.name}\` | ${entry.retriable ? 'yes' : 'no'} | ${entry.doc} |`), entry.name);
  });

  it('protocol: every API and struct has a section', () => {
    for (const api of apis) assert.ok(doc.includes(`\n### ${api.name}\n\nKey ${api.key}, version ${api.version}.`), api.name);
    for (const name of Object.keys(structs)) assert.ok(doc.includes(`\n### ${name}\n`), name);
  });
});
