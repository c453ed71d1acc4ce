/**
 * Annotation templates: `{{name}}`, `{{name|filter}}`, filters chained with `|`.
 * Logic-less on purpose (like Prometheus annotations without the Go template power): a template
 * can only show values, so a rule file cannot hide behaviour in its annotations.
 */
import type { FieldValue } from '../engine/event.js';
import { formatBytes, formatPercent } from './units.js';

export type TemplateValues = Readonly<Record<string, FieldValue | null | undefined>>;

export interface CompiledTemplate {
  names: string[];
  /** What every render gives when the template has no placeholder (a rule's fixed hint or runbook link). */
  fixedText: string | undefined;
  render(values: TemplateValues): string;
}

export class TemplateError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

export const TEMPLATE_FILTERS = ['bytes', 'percent', 'default'] as const;

type Filter = (value: FieldValue | null | undefined) => FieldValue | null | undefined;

const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;

function compileFilter(text: string, offset: number): Filter {
  const colon = text.indexOf(':');
  const name = (colon < 0 ? text : text.slice(0, colon)).trim();
  const argument = colon < 0 ? null : text.slice(colon + 1).trim();
  switch (name) {
    case 'bytes':
      return (value) => (typeof value === 'number' ? formatBytes(value) : value);
    case 'percent':
      return (value) => (typeof value === 'number' ? formatPercent(value) : value);
    case 'default': {
      if (argument === null) throw new TemplateError('filter "default" needs a value, e.g. {{name|default:unknown}}', offset);
      const fallback = argument.replace(/^(['"])(.*)\1$/, '$2');
      return (value) => (value === null || value === undefined || value === '' ? fallback : value);
    }
    default:
      throw new TemplateError(`unknown filter "${name}" (known: ${TEMPLATE_FILTERS.join(', ')})`, offset);
  }
}

/** Compiles a template; `knownNames` (when given) makes a reference to any other name an error. */
export function compileTemplate(source: string, knownNames?: ReadonlySet<string>): CompiledTemplate {
  const parts: Array<string | { name: string; filters: Filter[] }> = [];
  const names: string[] = [];
  let last = 0;
  for (const match of source.matchAll(PLACEHOLDER)) {
    const offset = match.index;
    parts.push(source.slice(last, offset));
    last = offset + match[0].length;
    const pieces = (match[1] as string).split('|');
    const name = (pieces[0] as string).trim();
    if (!/^[a-z_][a-z0-9_.]*$/.test(name)) throw new TemplateError(`"{{${match[1]}}}" does not start with a name`, offset);
    if (knownNames && !knownNames.has(name)) {
      throw new TemplateError(`unknown name "${name}" (known: ${[...knownNames].sort().join(', ')})`, offset);
    }
    names.push(name);
    parts.push({ name, filters: pieces.slice(1).map((piece) => compileFilter(piece, offset)) });
  }
  parts.push(source.slice(last));
  const unclosed = source.slice(last).indexOf('{{');
  if (unclosed >= 0) throw new TemplateError('"{{" without a matching "}}"', last + unclosed);
  return {
    names,
    fixedText: names.length === 0 ? parts.join('') : undefined,
    render(values) {
      let out = '';
      for (const part of parts) {
        if (typeof part === 'string') {
          out += part;
          continue;
        }
        let value = values[part.name];
        for (const filter of part.filters) value = filter(value);
        out += value === null || value === undefined ? '' : String(value);
      }
      return out;
    },
  };
}
