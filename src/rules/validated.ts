/**
 * Rule files as plain data, compiled again in another thread (analyze's workers) without the YAML
 * parser or the schema validator: the thread that loaded them has already checked them.
 */
import type { Classifier } from '../engine/classifier.js';
import type { GrouperConfig } from '../engine/grouper-config.js';
import { RuleClassifier } from './classifier.js';
import { compileRuleFiles } from './compile.js';
import { CountWindows } from './count-windows.js';
import type { RawRuleFile } from './model.js';
import type { YamlSource } from './yaml-source.js';

/** A validated rule file as plain data (structured-cloneable). */
export interface ValidatedRuleFile {
  file: string;
  data: RawRuleFile;
}

/** Where a finding in already validated data would point: nowhere better than the file's start. */
export const NO_POSITIONS: YamlSource = { data: undefined, problems: [], locate: () => ({ line: 1, col: 1 }) };

/** The same groupers and classifier as the loading thread's, with count windows of their own. */
export function compileValidatedRules(files: readonly ValidatedRuleFile[]): { groupers: GrouperConfig[]; classifier: Classifier } {
  const compiled = compileRuleFiles(files.map(({ file, data }) => ({ file, data, source: NO_POSITIONS })));
  const first = compiled.errors[0];
  if (first !== undefined) throw new Error(`rules that loaded before no longer compile: ${first.file}: ${first.message}`);
  return { groupers: compiled.groupers, classifier: new RuleClassifier(compiled.rules, new CountWindows()) };
}
