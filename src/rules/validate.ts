/**
 * JSON Schema validation of one rule file, with ajv's errors rewritten as file:line:col findings
 * in words an SRE understands.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { closestName } from '../text/suggest.js';
import { describePath, type RuleProblem } from './problems.js';
import type { YamlPath, YamlSource } from './yaml-source.js';

/** Same relative place from src/rules/ (tests) and dist/rules/ (installed package). */
export const SCHEMA_URL = new URL('../../schema/leakwatch-rules.schema.json', import.meta.url);

let validator: ValidateFunction | undefined;

function getValidator(): ValidateFunction {
  if (!validator) {
    const ajv = new Ajv({ allErrors: true, verbose: true, allowUnionTypes: true });
    validator = ajv.compile(JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as object);
  }
  return validator;
}

function pathOf(instancePath: string): Array<string | number> {
  if (instancePath === '') return [];
  return instancePath
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^(?:0|[1-9]\d*)$/.test(part) ? Number(part) : part));
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}..."` : text;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  null: 'null',
};

function suggestion(unknown: string, allowed: string[]): string {
  const best = closestName(unknown, allowed);
  if (best !== undefined) return `; did you mean "${best}"?`;
  return allowed.length > 0 ? ` (allowed: ${allowed.join(', ')})` : '';
}

interface Finding {
  path: YamlPath;
  key: boolean;
  message: string;
}

function explain(error: ErrorObject): Finding | null {
  const path = pathOf(error.instancePath);
  const parentSchema = (error.parentSchema ?? {}) as { description?: string; properties?: Record<string, unknown> };
  const params = error.params as Record<string, unknown>;
  const propertyName = (error as ErrorObject & { propertyName?: string }).propertyName;
  if (error.keyword === 'propertyNames') return null; // reported by the inner error, which knows what was expected
  if (propertyName !== undefined) {
    const expected = parentSchema.description ? `must be ${parentSchema.description}` : (error.message ?? 'is not allowed');
    return { path: [...path, propertyName], key: true, message: `key "${propertyName}" is not allowed here: ${expected}` };
  }
  switch (error.keyword) {
    case 'additionalProperties': {
      const name = String(params.additionalProperty);
      return { path: [...path, name], key: true, message: `unknown key "${name}"${suggestion(name, Object.keys(parentSchema.properties ?? {}))}` };
    }
    case 'required':
      return { path, key: false, message: `missing required key "${String(params.missingProperty)}"` };
    case 'enum':
      return { path, key: false, message: `must be one of ${(params.allowedValues as unknown[]).join(', ')} (got ${describeValue(error.data)})` };
    case 'type': {
      const types = String(params.type).split(',');
      return { path, key: false, message: `must be ${types.map((t) => TYPE_WORDS[t] ?? t).join(' or ')} (got ${describeValue(error.data)})` };
    }
    case 'pattern':
      return {
        path,
        key: false,
        message: `${parentSchema.description ? `must be ${parentSchema.description}` : `must match ${String(params.pattern)}`} (got ${describeValue(error.data)})`,
      };
    case 'minItems':
      return { path, key: false, message: `must have at least ${String(params.limit)} item${params.limit === 1 ? '' : 's'}` };
    case 'minLength':
      return { path, key: false, message: params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters` };
    case 'minProperties':
    case 'maxProperties':
      if (path.includes('match')) return { path, key: false, message: 'a predicate is a mapping with exactly one "field|op: value" key' };
      return { path, key: false, message: `must have ${error.keyword === 'minProperties' ? 'at least' : 'at most'} ${String(params.limit)} key(s)` };
    case 'minimum':
    case 'maximum':
      return { path, key: false, message: `must be ${error.keyword === 'minimum' ? '≥' : '≤'} ${String(params.limit)} (got ${describeValue(error.data)})` };
    default:
      return { path, key: false, message: error.message ?? `fails ${error.keyword}` };
  }
}

/** The schema's findings for one file (empty when valid). */
export function validateRuleFile(file: string, data: unknown, source: YamlSource): RuleProblem[] {
  const validate = getValidator();
  if (validate(data ?? {})) return [];
  const problems: RuleProblem[] = [];
  const seen = new Set<string>();
  for (const error of validate.errors ?? []) {
    const finding = explain(error);
    if (!finding) continue;
    const message = `${describePath(finding.path)}: ${finding.message}`;
    if (seen.has(message)) continue;
    seen.add(message);
    const { line, col } = source.locate(finding.path, { key: finding.key });
    problems.push({ file, line, col, message, severity: 'error' });
  }
  return problems;
}
