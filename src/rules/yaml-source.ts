/** A parsed YAML rule file that can point back at any path in it as file:line:col. */
import { LineCounter, parseDocument, isAlias, isMap, isPair, isScalar, Scalar, visit, type Document, type Node } from 'yaml';

export type YamlPath = ReadonlyArray<string | number>;

export interface Position {
  line: number;
  col: number;
}

export interface YamlParseProblem extends Position {
  message: string;
  severity: 'error' | 'warning';
}

export interface YamlSource {
  data: unknown;
  problems: YamlParseProblem[];
  /** Position of the value at `path`; `key: true` points at the key instead; falls back to the nearest existing parent. */
  locate(path: YamlPath, options?: { key?: boolean; offset?: number }): Position;
}

function firstLineOf(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/ at line \d+, column \d+:?$/, '');
}

/** Rule files need few aliases; this bounds what a billion-laughs document can expand to. */
const MAX_ALIAS_EXPANSIONS = 100;

function firstAliasOffset(doc: Document): number {
  let offset = 0;
  visit(doc, {
    Alias(_key, node) {
      if (isAlias(node) && node.range) offset = node.range[0];
      return visit.BREAK;
    },
  });
  return offset;
}

export function parseYamlSource(text: string): YamlSource {
  const lineCounter = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true, strict: true });
  const problems: YamlParseProblem[] = [];
  for (const [list, severity] of [
    [doc.errors, 'error'],
    [doc.warnings, 'warning'],
  ] as const) {
    for (const problem of list) {
      const position = problem.linePos?.[0] ?? lineCounter.linePos(problem.pos[0]);
      const message = problem.code === 'DUPLICATE_KEY' ? 'duplicate key (each key may appear once in a mapping)' : firstLineOf(problem.message);
      problems.push({ line: position.line, col: position.col, message, severity });
    }
  }
  const toPosition = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, col };
  };
  let data: unknown;
  if (!problems.some((p) => p.severity === 'error')) {
    try {
      data = doc.toJS({ maxAliasCount: MAX_ALIAS_EXPANSIONS });
    } catch (error) {
      // An alias bomb (aliases of aliases, expanding exponentially): point at the first alias.
      problems.push({ ...toPosition(firstAliasOffset(doc)), message: `cannot expand the document: ${(error as Error).message} (at most ${MAX_ALIAS_EXPANSIONS} alias expansions)`, severity: 'error' });
    }
  }
  return {
    data,
    problems,
    locate(path, options = {}) {
      for (let length = path.length; length >= 0; length--) {
        const prefix = path.slice(0, length);
        if (options.key && length === path.length && length > 0) {
          const parent = prefix.length > 1 ? doc.getIn(prefix.slice(0, -1), true) : doc.contents;
          if (isMap(parent)) {
            const pair = parent.items.find((item) => isPair(item) && isScalar(item.key) && item.key.value === prefix[prefix.length - 1]);
            const keyNode = pair?.key as Node | undefined;
            if (keyNode?.range) return toPosition(keyNode.range[0]);
          }
        }
        const node = (length === 0 ? doc.contents : doc.getIn(prefix, true)) as Node | null | undefined;
        if (node && node.range) {
          let offset = node.range[0];
          if (length === path.length && options.offset !== undefined && isScalar(node)) {
            const quoted = node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE;
            if (node.type === Scalar.PLAIN || quoted) offset += options.offset + (quoted ? 1 : 0);
          }
          return toPosition(offset);
        }
      }
      return { line: 1, col: 1 };
    },
  };
}
