/** The rule system's public interface (used by the CLI, the server and the benchmark). */
export type { RuleProblem } from './problems.js';
export { formatProblem } from './problems.js';
export type { RuleSet, RuleSummary, LoadOptions, LoadResult } from './load.js';
export { loadRuleSet } from './load.js';
export type { RuleTestResult, RuleTestReport } from './test-runner.js';
export { runRuleTests } from './test-runner.js';
export type { RuleSetStatus, ReloadOutcome, RulesFallback } from './holder.js';
export { RuleSetHolder } from './holder.js';
export { CountWindows, restoreCountWindows } from './count-windows.js';
export { rulesRoutes } from './routes.js';
