import { FilterSyntaxError } from './errors.js';

export type Keyword = 'AND' | 'OR' | 'NOT' | 'IN' | 'LIKE' | 'ESCAPE' | 'IS' | 'NULL' | 'BETWEEN' | 'TRUE' | 'FALSE';
export type CompareOp = '=' | '<>' | '<' | '<=' | '>' | '>=';

const KEYWORDS: ReadonlySet<string> = new Set<Keyword>(['AND', 'OR', 'NOT', 'IN', 'LIKE', 'ESCAPE', 'IS', 'NULL', 'BETWEEN', 'TRUE', 'FALSE']);

export type Token =
  | { type: 'name'; position: number; name: string }
  | { type: 'keyword'; position: number; keyword: Keyword }
  /** `offsets[i]` is where the value's code unit i came from; `offsets[value.length]` is the closing quote. */
  | { type: 'string'; position: number; value: string; offsets: number[] }
  | { type: 'number'; position: number; value: number }
  | { type: 'operator'; position: number; operator: CompareOp }
  | { type: '(' | ')' | ',' | 'end'; position: number };

const isDigit = (ch: string | undefined): boolean => ch !== undefined && ch >= '0' && ch <= '9';
const isNameStart = (ch: string | undefined): boolean => ch !== undefined && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch === '_');
const isNamePart = (ch: string | undefined): boolean => isNameStart(ch) || isDigit(ch) || ch === '.' || ch === '-';
const isSpace = (ch: string): boolean => /\s/.test(ch);

/**
 * Splits an SQL filter into tokens on demand, one token of lookahead, so errors come out in the order of the text.
 * Header names are ASCII letters, digits, `_`, `.` and `-` (not first), or anything in double quotes with `""` for `"`.
 */
export class Lexer {
  private index = 0;
  private current: Token | null = null;

  constructor(private readonly expression: string) {}

  peek(): Token {
    return (this.current ??= this.scan());
  }

  next(): Token {
    const token = this.peek();
    this.current = null;
    return token;
  }

  fail(position: number, detail: string): never {
    throw new FilterSyntaxError(this.expression, position, detail);
  }

  private scan(): Token {
    const text = this.expression;
    while (this.index < text.length && isSpace(text[this.index]!)) this.index++;
    const start = this.index;
    const ch = text[start];
    if (ch === undefined) return { type: 'end', position: start };
    if (ch === '(' || ch === ')' || ch === ',') {
      this.index++;
      return { type: ch, position: start };
    }
    if (ch === '=' || ch === '<' || ch === '>') return this.operator(start);
    if (ch === "'") return this.string(start);
    if (ch === '"') return this.quotedName(start);
    if (isDigit(ch) || ch === '-') return this.number(start);
    if (isNameStart(ch)) {
      while (isNamePart(text[this.index])) this.index++;
      const word = text.slice(start, this.index);
      const upper = word.toUpperCase();
      return KEYWORDS.has(upper) ? { type: 'keyword', position: start, keyword: upper as Keyword } : { type: 'name', position: start, name: word };
    }
    if (ch === '!' && text[start + 1] === '=') this.fail(start, "expected '<>' for not-equal (not '!=')");
    this.fail(start, `unexpected character ${JSON.stringify(String.fromCodePoint(text.codePointAt(start)!))}: expected a header name, literal, operator or parenthesis`);
  }

  private operator(start: number): Token {
    const text = this.expression;
    const two = text.slice(start, start + 2);
    const operator: CompareOp = two === '<>' || two === '<=' || two === '>=' ? two : (text[start] as CompareOp);
    this.index += operator.length;
    return { type: 'operator', position: start, operator };
  }

  private string(start: number): Token {
    const text = this.expression;
    let value = '';
    const offsets: number[] = [];
    let index = start + 1;
    for (;;) {
      const quote = text.indexOf("'", index);
      if (quote < 0) this.fail(text.length, `expected "'" to close the string opened at position ${start}`);
      for (let at = index; at < quote; at++) offsets.push(at);
      value += text.slice(index, quote);
      if (text[quote + 1] !== "'") {
        offsets.push(quote);
        this.index = quote + 1;
        return { type: 'string', position: start, value, offsets };
      }
      offsets.push(quote);
      value += "'";
      index = quote + 2;
    }
  }

  private quotedName(start: number): Token {
    const text = this.expression;
    let name = '';
    let index = start + 1;
    for (;;) {
      const quote = text.indexOf('"', index);
      if (quote < 0) this.fail(text.length, `expected '"' to close the name opened at position ${start}`);
      name += text.slice(index, quote);
      if (text[quote + 1] !== '"') {
        if (name === '') this.fail(start + 1, 'expected a header name between the double quotes');
        this.index = quote + 1;
        return { type: 'name', position: start, name };
      }
      name += '"';
      index = quote + 2;
    }
  }

  /** Integers and decimals with an optional leading `-`; no exponent, and nothing name-like glued to the end. */
  private number(start: number): Token {
    const text = this.expression;
    let index = start;
    if (text[index] === '-') index++;
    if (!isDigit(text[index])) this.fail(index, "expected a digit after '-'");
    while (isDigit(text[index])) index++;
    if (text[index] === '.') {
      index++;
      if (!isDigit(text[index])) this.fail(index, "expected a digit after '.'");
      while (isDigit(text[index])) index++;
    }
    if (isNamePart(text[index])) this.fail(index, 'expected a space, operator or parenthesis after the number');
    this.index = index;
    return { type: 'number', position: start, value: Number(text.slice(start, index)) };
  }
}
