import type { HarnessReport, KindFigures } from './harness-driver.js';
import { describeFailures, passed } from './history.js';

/** The summary table of one or more harness runs: cycles and messages per fault kind, then what the checks found. */
export function formatSummary(reports: readonly HarnessReport[]): string {
  const kinds = new Map<string, KindFigures>();
  for (const report of reports) {
    for (const [kind, figures] of Object.entries(report.perKind)) {
      const total = kinds.get(kind) ?? { cycles: 0, applied: 0, acknowledged: 0, read: 0, lost: 0 };
      total.cycles += figures.cycles;
      total.applied += figures.applied;
      total.acknowledged += figures.acknowledged;
      total.read += figures.read;
      total.lost += figures.lost;
      kinds.set(kind, total);
    }
  }
  const sum = (pick: (report: HarnessReport) => number): number => reports.reduce((total, report) => total + pick(report), 0);
  const rows = [['fault kind', 'cycles', 'fault applied', 'acked', 'acked & read', 'lost']];
  for (const [kind, figures] of kinds) rows.push([kind, figures.cycles, figures.applied, figures.acknowledged, figures.read, figures.lost].map(String));
  rows.push(['total', ...[...kinds.values()].reduce((total, figures) => [total[0]! + figures.cycles, total[1]! + figures.applied, total[2]! + figures.acknowledged, total[3]! + figures.read, total[4]! + figures.lost], [0, 0, 0, 0, 0]).map(String)]);
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const table = rows.map((row) => `| ${row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join(' | ')} |`);
  table.splice(1, 0, `|${widths.map((width, column) => (column === 0 ? ':' : '-').padEnd(width + 1, '-') + (column === 0 ? '-' : ':')).join('|')}|`);
  const lines = [
    ...table,
    '',
    `runs ${reports.length} (${reports.filter((report) => report.passed).length} passed), ${sum((report) => report.cycles)} kill cycles in ${(sum((report) => report.durationMs) / 60_000).toFixed(1)} min`,
    `consumers: ${sum((report) => report.consumers.acknowledged)} acked, ${sum((report) => report.consumers.read)} distinct values read (${sum((report) => report.consumers.reads)} reads), ${sum((report) => report.consumers.unknownRead)} read without a known outcome`,
    `lost ${sum((report) => report.consumers.lost.length)}, unexpected ${sum((report) => report.consumers.unexpected.length)}, aborted reads ${sum((report) => report.consumers.abortedReads.length)}, duplicates ${sum((report) => report.consumers.duplicates)} (forbidden ${sum((report) => report.consumers.forbiddenDuplicates.length)}), position conflicts ${sum((report) => report.consumers.positionConflicts.length)}, holes ${sum((report) => report.consumers.holes.length)}, order violations ${sum((report) => report.consumers.orderViolations.length)}`,
    `audit (every partition from offset 0): lost ${sum((report) => report.audit.lost.length)}, unexpected ${sum((report) => report.audit.unexpected.length)}, position conflicts ${sum((report) => report.audit.positionConflicts.length)}, holes ${sum((report) => report.audit.holes.length)}`,
    `recovery cut a torn tail on ${sum((report) => report.tornTailsCut)} restarts`,
    `injected old-data damage: ${sum((report) => report.corruptions.filter((corruption) => corruption.kind === 'old-bitflip' && corruption.applied).length)} bit flips, ${sum((report) => report.damageReported)} offsets reported DATA_DAMAGED, ${sum((report) => report.consumers.lostToReportedDamage)} acked values lost to reported damage, ${sum((report) => report.consumers.unreportedDamage.length + report.audit.unreportedDamage.length)} lost silently`,
  ];
  for (const report of reports) {
    if (report.passed) continue;
    lines.push('', `seed ${report.seed} FAILED${report.keptIn ? ` (kept in ${report.keptIn})` : ''}:`);
    if (!passed(report.consumers)) lines.push(`consumers: ${describeFailures(report.consumers)}`);
    if (!passed(report.audit)) lines.push(`audit: ${describeFailures(report.audit)}`);
    lines.push(...report.problems);
  }
  return lines.join('\n');
}
