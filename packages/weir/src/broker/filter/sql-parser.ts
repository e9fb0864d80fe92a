import { compileLike } from './like.js';
import type { CompareMode, Condition, Literal, Value } from './sql-ast.js';
import { type CompareOp, type Keyword, Lexer, type Token } from './sql-lexer.js';
import { MAX_NESTING_DEPTH } from './types.js';

/**
 * Parses and type-checks an SQL filter (recursive descent, one token of lookahead):
 *
 *   filter    := or END
 *   or        := and { OR and }
 *   and       := not { AND not }
 *   not       := NOT not | primary
 *   primary   := '(' or ')' | TRUE | FALSE | value tail
 *   tail      := compare value
 *              | [NOT] IN '(' literal { ',' literal } ')'
 *              | [NOT] LIKE string [ESCAPE string]
 *              | [NOT] BETWEEN value AND value
 *              | IS [NOT] NULL
 *   value     := name | "quoted name" | literal
 *   literal   := 'string' | number | TRUE | FALSE | NULL
 *
 * Type errors (a string literal compared with a number literal, `<` on booleans, LIKE on a number) are reported here,
 * in the order of the text, so the compiler never fails.
 */
export function parseSql(expression: string): Condition {
  return new Parser(expression).parse();
}

class Parser {
  private readonly lexer: Lexer;
  private depth = 0;

  constructor(expression: string) {
    this.lexer = new Lexer(expression);
  }

  parse(): Condition {
    const condition = this.or();
    const token = this.lexer.peek();
    if (token.type !== 'end') this.lexer.fail(token.position, 'expected AND, OR or the end of the expression');
    return condition;
  }

  private or(): Condition {
    const operands = [this.and()];
    while (this.isKeyword(this.lexer.peek(), 'OR')) {
      this.lexer.next();
      operands.push(this.and());
    }
    return operands.length === 1 ? operands[0]! : { kind: 'or', operands };
  }

  private and(): Condition {
    const operands = [this.not()];
    while (this.isKeyword(this.lexer.peek(), 'AND')) {
      this.lexer.next();
      operands.push(this.not());
    }
    return operands.length === 1 ? operands[0]! : { kind: 'and', operands };
  }

  private not(): Condition {
    const token = this.lexer.peek();
    if (!this.isKeyword(token, 'NOT')) return this.primary();
    this.enter(token);
    this.lexer.next();
    const operand = this.not();
    this.depth--;
    return { kind: 'not', operand };
  }

  private primary(): Condition {
    const token = this.lexer.peek();
    if (token.type === '(') {
      this.enter(token);
      this.lexer.next();
      const inner = this.or();
      this.expect(')', "')'");
      this.depth--;
      return inner;
    }
    const value = this.value("a header name, a literal, NOT or '('");
    return this.tail(value);
  }

  private tail(value: Value): Condition {
    let token = this.lexer.peek();
    if (token.type === 'operator') {
      this.lexer.next();
      const right = this.value('a value');
      return this.compare(token.operator, value, right);
    }
    if (this.isKeyword(token, 'IS')) {
      this.lexer.next();
      const negated = this.isKeyword(this.lexer.peek(), 'NOT');
      if (negated) this.lexer.next();
      const nullToken = this.lexer.next();
      if (!this.isKeyword(nullToken, 'NULL')) this.lexer.fail(nullToken.position, negated ? 'expected NULL' : 'expected NULL or NOT NULL');
      return this.negate(negated, { kind: 'isNull', value });
    }
    let negated = false;
    if (this.isKeyword(token, 'NOT')) {
      this.lexer.next();
      negated = true;
      token = this.lexer.peek();
      if (!this.isKeyword(token, 'IN') && !this.isKeyword(token, 'LIKE') && !this.isKeyword(token, 'BETWEEN')) this.lexer.fail(token.position, 'expected IN, LIKE or BETWEEN');
    }
    if (this.isKeyword(token, 'IN')) return this.negate(negated, this.in(value));
    if (this.isKeyword(token, 'LIKE')) return this.negate(negated, this.like(value));
    if (this.isKeyword(token, 'BETWEEN')) return this.negate(negated, this.between(value));
    // TRUE and FALSE stand alone as conditions; every other value needs an operator.
    if (value.kind === 'boolean') return { kind: 'constant', value: value.value };
    this.lexer.fail(token.position, 'expected a comparison operator, IN, LIKE, BETWEEN or IS');
  }

  private in(value: Value): Condition {
    this.lexer.next();
    this.expect('(', "'(' after IN");
    const list: Literal[] = [];
    for (;;) {
      const element = this.value('a literal');
      if (element.kind === 'header') this.lexer.fail(element.position, 'expected a literal (IN lists take no header names)');
      this.mode(value, element, '=', true);
      list.push(element);
      const token = this.lexer.next();
      if (token.type === ')') return { kind: 'in', value, list };
      if (token.type !== ',') this.lexer.fail(token.position, "expected ',' or ')'");
    }
  }

  private like(value: Value): Condition {
    this.lexer.next();
    if (value.kind === 'number' || value.kind === 'boolean') this.lexer.fail(value.position, 'expected a header name or a string before LIKE');
    const pattern = this.lexer.next();
    if (pattern.type !== 'string') this.lexer.fail(pattern.position, 'expected a string pattern after LIKE');
    let escape: string | null = null;
    if (this.isKeyword(this.lexer.peek(), 'ESCAPE')) {
      this.lexer.next();
      const token = this.lexer.next();
      if (token.type !== 'string' || [...token.value].length !== 1) this.lexer.fail(token.position, 'expected a one-character string after ESCAPE');
      escape = token.value;
    }
    // A bad escape is reported where it is in the source text, through the offsets of the string literal.
    const matcher = compileLike(pattern.value, escape, (index, detail) => this.lexer.fail(pattern.offsets[index]!, detail));
    return { kind: 'like', value, matcher };
  }

  private between(value: Value): Condition {
    this.lexer.next();
    const low = this.value('a value');
    const and = this.lexer.next();
    if (!this.isKeyword(and, 'AND')) this.lexer.fail(and.position, 'expected AND');
    const high = this.value('a value');
    return { kind: 'and', operands: [this.compare('>=', value, low), this.compare('<=', value, high)] };
  }

  private compare(op: CompareOp, left: Value, right: Value): Condition {
    return { kind: 'compare', op, mode: this.mode(left, right, op, false), left, right };
  }

  /** The comparison's mode; fails at `right` when two literals cannot be compared, and at TRUE/FALSE for `<`. */
  private mode(left: Value, right: Value, op: CompareOp, inList: boolean): CompareMode {
    if (left.kind === 'null' || right.kind === 'null') return 'null';
    if (left.kind !== 'header' && right.kind !== 'header' && left.kind !== right.kind) {
      const wanted = left.kind === 'string' ? 'a string' : left.kind === 'number' ? 'a number' : 'TRUE, FALSE';
      this.lexer.fail(right.position, `expected ${wanted}${inList ? ' or NULL' : ' or a header name'} to compare with ${describeLiteral(left)}`);
    }
    const literal = left.kind === 'header' ? right.kind : left.kind;
    if (literal === 'number') return 'number';
    if (literal === 'boolean') {
      const flag = left.kind === 'boolean' ? left : right;
      if (op !== '=' && op !== '<>') this.lexer.fail(flag.position, 'expected a number, a string or a header name (TRUE and FALSE are not ordered)');
      return 'boolean';
    }
    return 'string';
  }

  private value(expected: string): Value {
    const token = this.lexer.peek();
    let value: Value;
    if (token.type === 'name') value = { kind: 'header', name: token.name, position: token.position };
    else if (token.type === 'string') value = { kind: 'string', value: token.value, position: token.position };
    else if (token.type === 'number') value = { kind: 'number', value: token.value, position: token.position };
    else if (this.isKeyword(token, 'TRUE') || this.isKeyword(token, 'FALSE')) value = { kind: 'boolean', value: token.keyword === 'TRUE', position: token.position };
    else if (this.isKeyword(token, 'NULL')) value = { kind: 'null', position: token.position };
    else this.lexer.fail(token.position, `expected ${expected}`);
    this.lexer.next();
    return value;
  }

  private negate(negated: boolean, condition: Condition): Condition {
    return negated ? { kind: 'not', operand: condition } : condition;
  }

  private expect(type: '(' | ')', what: string): void {
    const token = this.lexer.next();
    if (token.type !== type) this.lexer.fail(token.position, `expected ${what}`);
  }

  private enter(token: Token): void {
    if (++this.depth > MAX_NESTING_DEPTH) this.lexer.fail(token.position, `expected at most ${MAX_NESTING_DEPTH} levels of parentheses and NOT`);
  }

  private isKeyword<K extends Keyword>(token: Token, keyword: K): token is Extract<Token, { type: 'keyword' }> & { keyword: K } {
    return token.type === 'keyword' && token.keyword === keyword;
  }
}

function describeLiteral(value: Literal): string {
  switch (value.kind) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return value.value ? 'TRUE' : 'FALSE';
    case 'null':
      return 'NULL';
  }
}
