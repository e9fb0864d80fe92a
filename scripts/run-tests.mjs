#!/usr/bin/env node
// Runs every *.test.ts under packages/ with node's test runner (Node 20's --test takes no globs, so list them here).
// Usage: node scripts/run-tests.mjs [--chaos] [substring …]  — substrings filter the file list.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2).filter((a) => a !== '--chaos');
function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist') continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}
const files = walk('packages', []).filter((f) => args.length === 0 || args.some((a) => f.includes(a))).sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--conditions=development', '--import', 'tsx', '--test', '--test-concurrency=2', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
