/**
 * Runs the reliability harness from the command line, e.g. to replay a failing seed:
 *
 *   npm run build && node --conditions=development --import tsx packages/weir/test/reliability/harness-run.ts \
 *     --seed 1234 --cycles 25 [--kinds torn-zeros,old-bitflip] [--runs 4]
 *
 * With --runs N it runs seeds seed, seed+1, … and prints the summary table. Exits 1 when a run fails.
 */
import { parseArgs } from 'node:util';
import { FAULT_KINDS, type FaultKind, runHarness } from './harness-driver.js';
import { formatSummary } from './harness-summary.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: process.env.WEIR_HARNESS_SEED ?? '1' },
    cycles: { type: 'string', default: process.env.WEIR_HARNESS_CYCLES ?? '14' },
    runs: { type: 'string', default: '1' },
    kinds: { type: 'string', default: process.env.WEIR_HARNESS_KINDS ?? FAULT_KINDS.join(',') },
  },
});
const kinds = values.kinds!.split(',') as FaultKind[];
const unknown = kinds.filter((kind) => !FAULT_KINDS.includes(kind));
if (unknown.length > 0) {
  console.error(`unknown fault kinds: ${unknown.join(', ')} (known: ${FAULT_KINDS.join(', ')})`);
  process.exit(2);
}
const reports = [];
for (let run = 0; run < Number(values.runs); run++) {
  const seed = Number(values.seed) + run;
  const report = await runHarness({ seed, cycles: Number(values.cycles), kinds, log: (line) => console.log(`seed ${seed}: ${line}`) });
  reports.push(report);
  console.log(`seed ${seed}: ${report.passed ? 'passed' : 'FAILED'} in ${(report.durationMs / 1000).toFixed(1)} s${report.keptIn ? `, kept in ${report.keptIn}` : ''}`);
  for (const problem of report.problems) console.log(`  ${problem}`);
}
console.log(formatSummary(reports));
process.exit(reports.every((report) => report.passed) ? 0 : 1);
