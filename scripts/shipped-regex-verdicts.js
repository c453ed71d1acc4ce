// `npm run shipped-verdicts`: asks recheck about every pattern of the shipped rules (rules/) and
// writes its verdicts to schema/shipped-regex-verdicts.json, which a server reads instead of
// starting recheck for them. Run it after changing a pattern in rules/ or upgrading recheck; the
// tests say when the file no longer matches.
import { rmSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRuleSet } from '../dist/rules/index.js';
import { SafetyVerdictCache, SHIPPED_VERDICTS_FILE } from '../dist/rules/regex-safety.js';

const rulesDir = fileURLToPath(new URL('../rules', import.meta.url));
const scratch = join(tmpdir(), `leakwatch-shipped-verdicts-${process.pid}.json`);
rmSync(scratch, { force: true });
const cache = new SafetyVerdictCache(scratch);
const { errors, warnings, regexChecks } = await loadRuleSet(rulesDir, { checkRegexSafety: true, safetyCache: cache, shippedVerdicts: false });
const problems = [...errors, ...warnings];
if (problems.length > 0) {
  // A pattern without a final verdict (unknown, vulnerable) must be fixed in the rules, not shipped.
  for (const problem of problems) console.error(`${problem.file}:${problem.line}:${problem.col}: ${problem.message}`);
  rmSync(scratch, { force: true });
  process.exit(1);
}
await rename(scratch, fileURLToPath(SHIPPED_VERDICTS_FILE));
console.log(`${regexChecks?.total ?? 0} patterns checked; verdicts written to schema/shipped-regex-verdicts.json`);
