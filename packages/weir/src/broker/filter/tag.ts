import { FilterSyntaxError } from './errors.js';
import type { FilterInput } from './types.js';

/**
 * Tag expressions as in RocketMQ: `*` (or nothing) takes every message, tagged or not; `a || b` takes messages whose
 * tag is exactly one of the names. Names are trimmed; everything else in them, `*` included, is taken literally.
 */
export function compileTagExpression(expression: string): (message: FilterInput) => boolean {
  const whole = expression.trim();
  if (whole === '' || whole === '*') return () => true;
  const names: string[] = [];
  let start = 0;
  for (;;) {
    const bar = expression.indexOf('|', start);
    const raw = expression.slice(start, bar < 0 ? expression.length : bar);
    const name = raw.trim();
    // Point at where the name should have started: the next '|' or the end of the expression.
    if (name === '') throw new FilterSyntaxError(expression, start + raw.length - raw.trimStart().length, 'expected a tag name');
    names.push(name);
    if (bar < 0) break;
    if (expression[bar + 1] !== '|') throw new FilterSyntaxError(expression, bar, "expected '||'");
    start = bar + 2;
  }
  if (names.length === 1) {
    const only = names[0]!;
    return (message) => message.tag === only;
  }
  const set = new Set(names);
  return (message) => message.tag !== null && set.has(message.tag);
}
