/**
 * The `derive:` expression language: numbers, field names, + - * / and parentheses.
 * A hand-written recursive-descent parser that compiles to closures: rule files are edited by
 * people, so nothing in them may reach eval/Function.
 */
import type { FieldValue } from '../engine/event.js';

export interface DeriveExpression {
  /** Field names the expression reads. */
  references: string[];
  /** The value, or null when a referenced field is missing/not a number or a division by zero occurs. */
  evaluate(fields: Readonly<Record<string, FieldValue>>): number | null;
}

export class DeriveSyntaxError extends Error {
  constructor(
    message: string,
    /** 0-based offset in the expression text. */
    readonly offset: number,
  ) {
    super(message);
  }
}

type Evaluator = (fields: Readonly<Record<string, FieldValue>>) => number | null;

type Token =
  | { kind: 'number'; value: number; offset: number }
  | { kind: 'name'; value: string; offset: number }
  | { kind: 'op'; value: '+' | '-' | '*' | '/' | '(' | ')'; offset: number }
  | { kind: 'end'; offset: number };

const MAX_EXPRESSION_LENGTH = 1000;

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  const pattern = /\s*(?:(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|([-+*/()]))/y;
  let offset = 0;
  while (offset < source.length) {
    if (/^\s*$/.test(source.slice(offset))) break;
    pattern.lastIndex = offset;
    const match = pattern.exec(source);
    if (!match) {
      const at = offset + (/^\s*/.exec(source.slice(offset))?.[0].length ?? 0);
      throw new DeriveSyntaxError(`unexpected character "${source[at]}"`, at);
    }
    const at = pattern.lastIndex - match[0].trimStart().length;
    if (match[1] !== undefined) tokens.push({ kind: 'number', value: Number(match[1]), offset: at });
    else if (match[2] !== undefined) tokens.push({ kind: 'name', value: match[2], offset: at });
    else tokens.push({ kind: 'op', value: match[3] as '+' | '-' | '*' | '/' | '(' | ')', offset: at });
    offset = pattern.lastIndex;
  }
  tokens.push({ kind: 'end', offset: source.length });
  return tokens;
}

export function parseDerive(source: string): DeriveExpression {
  if (source.length > MAX_EXPRESSION_LENGTH) throw new DeriveSyntaxError(`expression longer than ${MAX_EXPRESSION_LENGTH} characters`, 0);
  const tokens = tokenize(source);
  const references = new Set<string>();
  let position = 0;
  let depth = 0;
  const peek = (): Token => tokens[position] as Token;
  const isOp = (token: Token, value: string): boolean => token.kind === 'op' && token.value === value;

  function parseSum(): Evaluator {
    let left = parseProduct();
    for (;;) {
      const token = peek();
      if (!isOp(token, '+') && !isOp(token, '-')) return left;
      position += 1;
      const right = parseProduct();
      const lhs = left;
      left = isOp(token, '+') ? binary(lhs, right, (a, b) => a + b) : binary(lhs, right, (a, b) => a - b);
    }
  }

  function parseProduct(): Evaluator {
    let left = parseUnary();
    for (;;) {
      const token = peek();
      if (!isOp(token, '*') && !isOp(token, '/')) return left;
      position += 1;
      const right = parseUnary();
      const lhs = left;
      left = isOp(token, '*') ? binary(lhs, right, (a, b) => a * b) : binary(lhs, right, (a, b) => (b === 0 ? null : a / b));
    }
  }

  function parseUnary(): Evaluator {
    const token = peek();
    if (isOp(token, '-')) {
      position += 1;
      const operand = parseUnary();
      return (fields) => {
        const value = operand(fields);
        return value === null ? null : -value;
      };
    }
    if (isOp(token, '+')) {
      position += 1;
      return parseUnary();
    }
    return parseAtom();
  }

  function parseAtom(): Evaluator {
    const token = peek();
    position += 1;
    if (token.kind === 'number') {
      const value = token.value;
      return () => value;
    }
    if (token.kind === 'name') {
      const name = token.value;
      references.add(name);
      return (fields) => {
        const value = fields[name];
        return typeof value === 'number' && Number.isFinite(value) ? value : null;
      };
    }
    if (isOp(token, '(')) {
      depth += 1;
      if (depth > 50) throw new DeriveSyntaxError('parentheses nested too deeply', token.offset);
      const inner = parseSum();
      const close = peek();
      if (!isOp(close, ')')) throw new DeriveSyntaxError('missing ")"', close.offset);
      position += 1;
      depth -= 1;
      return inner;
    }
    if (token.kind === 'end') throw new DeriveSyntaxError('expression ends too early', token.offset);
    throw new DeriveSyntaxError(`unexpected "${token.value}"`, token.offset);
  }

  const evaluator = parseSum();
  const rest = peek();
  if (rest.kind !== 'end') throw new DeriveSyntaxError(`unexpected "${rest.value}" after the expression`, rest.offset);
  return {
    references: [...references],
    evaluate(fields) {
      const value = evaluator(fields);
      return value !== null && Number.isFinite(value) ? value : null;
    },
  };
}

function binary(left: Evaluator, right: Evaluator, apply: (a: number, b: number) => number | null): Evaluator {
  return (fields) => {
    const a = left(fields);
    if (a === null) return null;
    const b = right(fields);
    if (b === null) return null;
    return apply(a, b);
  };
}
