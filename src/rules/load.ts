/**
 * Loads a rules folder: every *.yaml/*.yml below it (sorted, so the result does not depend on the
 * file system's order), YAML → JSON Schema → compilation → regex safety. Never throws on bad
 * input: every problem comes back as a file:line:col finding.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Classifier } from '../engine/classifier.js';
import type { GrouperConfig } from '../engine/grouper-config.js';
import { RuleClassifier } from './classifier.js';
import { compileRuleFiles, type CompiledRule, type ParsedRuleFile, type RegexToCheck } from './compile.js';
import { CountWindows, type CountingRule, type CountWindowState } from './count-windows.js';
import type { RuleSource } from './last-good.js';
import type { RawRuleFile } from './model.js';
import { describePath, type RuleProblem } from './problems.js';
import { checkRegexSafety, storedVerdict, type SafetyVerdict, type SafetyVerdictCache } from './regex-safety.js';
import { checkedCacheKey, readChecked, writeChecked } from './checked-cache.js';
import { NO_POSITIONS, type ValidatedRuleFile } from './validated.js';

export interface RuleSummary {
  id: string;
  version: number;
  title: string;
  category: string;
  enabled: boolean;
  /** A catch-all: tried only when no other rule matched. */
  fallback: boolean;
  file: string;
}

export interface RuleSet {
  /** sha256 (hex, 16 chars) of the loaded files' names and contents. */
  hash: string;
  rules: ReadonlyArray<RuleSummary>;
  groupers: GrouperConfig[];
  classifier: Classifier;
  /** The validated files as plain data: what another thread compiles again (compileValidatedRules). */
  validatedFiles: readonly ValidatedRuleFile[];
  /**
   * The enabled rules with count thresholds. Their windows count events across every stream whose
   * events share a key, so analyze only splits streams among threads along their incident keys;
   * the server fills the windows from the store at a restart (restoreCountWindows).
   */
  countingRules: ReadonlyArray<CountingRule>;
  /** The enabled rules' annotation texts without placeholders: the same in every event, stored once (SqliteStore). */
  fixedTexts: ReadonlySet<string>;
}


export interface LoadOptions {
  /** Run recheck over every regex (default true). Results are cached per pattern. */
  checkRegexSafety?: boolean;
  /** Count-threshold state to keep across reloads (RuleSetHolder passes its own). */
  windows?: CountWindowState;
  /** Verdicts kept across restarts; saved after the check. */
  safetyCache?: SafetyVerdictCache;
  /** Take the verdicts shipped for the shipped rules' patterns (default true); false asks recheck for every pattern. */
  shippedVerdicts?: boolean;
  /** Told after each regex has been checked for safety. */
  onSafetyProgress?: (checked: number, total: number) => void;
  /**
   * A folder where checked files are kept as plain data, keyed by their content (checked-cache.ts):
   * a later load of the same files skips the YAML parser and the schema validator.
   */
  cacheDir?: string;
}

export interface LoadResult {
  ruleSet: RuleSet | null;
  errors: RuleProblem[];
  warnings: RuleProblem[];
  /** Regexes checked for safety, and how many of those verdicts came from the cache file. */
  regexChecks?: RegexCheckCount;
  /** The files as they were read (paths relative to the folder), when the set loaded: what the data folder keeps as the last good set. */
  sources?: RuleSource[];
}

export interface RegexCheckCount {
  total: number;
  fromCacheFile: number;
  /** Verdicts shipped with leakwatch for the patterns of its own rules (not in the cache file). */
  fromShipped: number;
}

const MAX_RULE_FILE_BYTES = 4 * 1024 * 1024;
const MAX_RULE_FILES = 2000;

/** How a file is named in findings: relative to the working directory when below it (as compilers print). */
export function displayName(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}

/** Names the loader passes over: hidden files and folders (editors' swap files, `..data` of a mounted ConfigMap) and node_modules. */
export function isSkippedRuleEntry(name: string): boolean {
  return name.startsWith('.') || name === 'node_modules';
}

/** The rule files of a folder (`*.yaml`, `*.yml`, below it too), in name order: the load order. */
export async function listRuleFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (current: string): Promise<void> => {
    const entries = await readdir(current, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (isSkippedRuleEntry(entry.name)) continue;
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if ((entry.isFile() || entry.isSymbolicLink()) && /\.ya?ml$/i.test(entry.name)) found.push(full);
      if (found.length > MAX_RULE_FILES) throw new Error(`more than ${MAX_RULE_FILES} rule files under ${dir}`);
    }
  };
  await walk(dir);
  return found;
}

function problemAt(file: string, message: string, severity: 'error' | 'warning' = 'error'): RuleProblem {
  return { file, line: 1, col: 1, message, severity };
}

async function regexSafetyProblems(regexes: readonly RegexToCheck[], options: LoadOptions, count: RegexCheckCount): Promise<RuleProblem[]> {
  const verdicts: SafetyVerdict[] = [];
  const useShipped = options.shippedVerdicts ?? true;
  for (const regex of regexes) {
    const stored = storedVerdict(regex.pattern, options.safetyCache, useShipped);
    if (stored?.from === 'cache-file') count.fromCacheFile++;
    else if (stored?.from === 'shipped') count.fromShipped++;
    count.total++;
    verdicts.push(stored?.verdict ?? (await checkRegexSafety(regex.pattern, undefined, options.safetyCache, useShipped)));
    options.onSafetyProgress?.(verdicts.length, regexes.length);
  }
  // A cache that cannot be written (a read-only data folder) only costs the next start its time.
  await options.safetyCache?.save().catch(() => undefined);
  const problems: RuleProblem[] = [];
  verdicts.forEach((verdict, index) => {
    const regex = regexes[index] as RegexToCheck;
    if (verdict.status === 'safe') return;
    const { line, col } = regex.source.locate(regex.path);
    const where = describePath(regex.path);
    problems.push(
      verdict.status === 'vulnerable'
        ? { file: regex.file, line, col, severity: 'error', message: `${where}: regex can backtrack catastrophically (${verdict.detail}); make the repetitions unambiguous` }
        : { file: regex.file, line, col, severity: 'warning', message: `${where}: could not prove the regex safe from catastrophic backtracking (${verdict.detail})` },
    );
  });
  return problems;
}

/**
 * Fixed annotation texts worth storing once: a hint is ~400 bytes in every event of its rule, about
 * a fifth of a stored event. A short one (a bare word) saves less than its lookup costs.
 */
const FIXED_TEXT_MIN_LENGTH = 32;

function fixedAnnotationTexts(rules: readonly CompiledRule[]): ReadonlySet<string> {
  const texts = new Set<string>();
  for (const rule of rules) {
    if (!rule.enabled) continue;
    for (const [, template] of rule.annotations) {
      if (template.fixedText !== undefined && template.fixedText.length >= FIXED_TEXT_MIN_LENGTH) texts.add(template.fixedText);
    }
  }
  return texts;
}

function byPosition(a: RuleProblem, b: RuleProblem): number {
  return a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.col - b.col;
}

export async function loadRuleSet(dir: string, options: LoadOptions = {}): Promise<LoadResult> {
  const errors: RuleProblem[] = [];
  const warnings: RuleProblem[] = [];
  const dirName = displayName(dir);
  let files: string[];
  try {
    if (!(await stat(dir)).isDirectory()) return { ruleSet: null, errors: [problemAt(dirName, 'is not a directory')], warnings };
    files = await listRuleFiles(dir);
  } catch (error) {
    return { ruleSet: null, errors: [problemAt(dirName, `cannot read the rules folder: ${(error as Error).message}`)], warnings };
  }
  if (files.length === 0) warnings.push(problemAt(dirName, 'no *.yaml rule files found', 'warning'));

  // Every file is read first: the set's hash, and the key of the checked-files cache, cover them all.
  const hash = createHash('sha256');
  const sources: RuleSource[] = [];
  for (const file of files) {
    const name = displayName(file);
    let text: string;
    try {
      const info = await stat(file);
      if (info.size > MAX_RULE_FILE_BYTES) {
        errors.push(problemAt(name, `file is larger than ${MAX_RULE_FILE_BYTES} bytes`));
        continue;
      }
      text = await readFile(file, 'utf8');
    } catch (error) {
      errors.push(problemAt(name, `cannot read: ${(error as Error).message}`));
      continue;
    }
    sources.push({ path: path.relative(dir, file), text });
    hash.update(path.relative(dir, file)).update('\0').update(text).update('\0');
  }

  const warningsBefore = warnings.length;
  let parsedFiles: ParsedRuleFile[] | undefined;
  let cacheKey: string | undefined;
  if (options.cacheDir !== undefined && errors.length === 0) {
    cacheKey = await checkedCacheKey(sources);
    const checked = await readChecked(options.cacheDir, cacheKey);
    if (checked !== undefined) {
      parsedFiles = checked.files.map(({ path: relative, data }) => ({ file: displayName(path.join(dir, relative)), data, source: NO_POSITIONS }));
      for (const { path: relative, ...problem } of checked.warnings) warnings.push({ file: displayName(path.join(dir, relative)), ...problem });
    }
  }
  const fromCache = parsedFiles !== undefined;
  parsedFiles ??= await checkFiles(dir, sources, errors, warnings);
  let compiled = compileRuleFiles(parsedFiles);
  if (fromCache && (compiled.errors.length > 0 || compiled.warnings.length > 0)) {
    // Findings need the positions only the YAML has: the files are checked again.
    warnings.length = warningsBefore;
    parsedFiles = await checkFiles(dir, sources, errors, warnings);
    compiled = compileRuleFiles(parsedFiles);
  }
  if (options.cacheDir !== undefined && cacheKey !== undefined && !fromCache && errors.length === 0 && compiled.errors.length === 0) {
    const relativeOf = new Map(sources.map((source) => [displayName(path.join(dir, source.path)), source.path]));
    await writeChecked(options.cacheDir, cacheKey, {
      files: parsedFiles.map(({ file, data }) => ({ path: relativeOf.get(file) ?? file, data })),
      warnings: warnings.slice(warningsBefore).map(({ file, ...problem }) => ({ path: relativeOf.get(file) ?? file, ...problem })),
    });
  }
  errors.push(...compiled.errors);
  warnings.push(...compiled.warnings);
  const regexChecks: RegexCheckCount = { total: 0, fromCacheFile: 0, fromShipped: 0 };
  if (options.checkRegexSafety ?? true) {
    for (const problem of await regexSafetyProblems(compiled.regexes, options, regexChecks)) (problem.severity === 'error' ? errors : warnings).push(problem);
  }
  errors.sort(byPosition);
  warnings.sort(byPosition);
  if (errors.length > 0) return { ruleSet: null, errors, warnings, regexChecks };

  const countingRules = compiled.rules.filter((rule) => rule.enabled && rule.thresholds.some((threshold) => threshold.kind === 'count'));
  const ruleSet: RuleSet = {
    hash: hash.digest('hex').slice(0, 16),
    rules: compiled.rules.map(({ id, version, title, category, enabled, fallback, file }) => ({ id, version, title, category, enabled, fallback, file })),
    groupers: compiled.groupers,
    classifier: new RuleClassifier(compiled.rules, options.windows ?? new CountWindows()),
    validatedFiles: parsedFiles.map(({ file, data }) => ({ file, data })),
    countingRules,
    fixedTexts: fixedAnnotationTexts(compiled.rules),
  };
  return { ruleSet, errors, warnings, regexChecks, sources };
}

/** YAML, then the JSON Schema, file by file; the files that pass, in order. */
async function checkFiles(dir: string, sources: readonly RuleSource[], errors: RuleProblem[], warnings: RuleProblem[]): Promise<ParsedRuleFile[]> {
  // Imported when needed: a set read from the checked-files cache never loads the parser or the validator.
  const [{ parseYamlSource }, { validateRuleFile }] = await Promise.all([import('./yaml-source.js'), import('./validate.js')]);
  const parsedFiles: ParsedRuleFile[] = [];
  for (const { path: relative, text } of sources) {
    const name = displayName(path.join(dir, relative));
    const source = parseYamlSource(text);
    for (const problem of source.problems) (problem.severity === 'error' ? errors : warnings).push({ file: name, ...problem });
    if (source.problems.some((problem) => problem.severity === 'error')) continue;
    const schemaProblems = validateRuleFile(name, source.data, source);
    if (schemaProblems.length > 0) {
      errors.push(...schemaProblems);
      continue;
    }
    parsedFiles.push({ file: name, data: (source.data ?? {}) as RawRuleFile, source });
  }
  return parsedFiles;
}
