import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { analyzeFiles } from './analyze/analyze.js';
import { EventWriter, OUTPUT_FORMATS, unclassifiedSummary, type OutputFormat } from './analyze/format.js';
import { isLeakEvent } from './engine/grouped-record.js';
import { ConfigError, DEFAULTS, flagHelp, flagUsage, resolveConfig, SETTINGS, type RawSettings } from './config.js';
import { loadRuleSet, runRuleTests, type RuleProblem } from './rules/index.js';
import { runServer } from './server.js';
import { PACKAGE_VERSION } from './version.js';

const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * `./rules` when run from a checkout or a folder with its own rules; otherwise the rules shipped
 * in the package, so `npx leakwatch analyze x.log` works from anywhere.
 */
export function defaultRulesDir(): string {
  const fromEnv = process.env.LEAKWATCH_RULES;
  if (fromEnv) return fromEnv;
  return existsSync(DEFAULTS.rulesDir) ? DEFAULTS.rulesDir : `${PACKAGE_ROOT}rules`;
}

function formatProblem(problem: RuleProblem): string {
  return `${problem.file}:${problem.line}:${problem.col}: ${problem.severity}: ${problem.message}`;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function buildProgram(setExit: (code: number) => void): Command {
  const program = new Command('leakwatch')
    .description('Log-stream analyzer for JVM/Netty proxies: groups traces, classifies failures, tracks direct memory, keeps incidents.')
    .version(PACKAGE_VERSION)
    .showHelpAfterError();

  const serve = program
    .command('serve', { isDefault: true })
    .description('run the HTTP sink (POST /ingest) with incidents, memory and rules endpoints');
  // Every flag comes from the settings table, which also names its variable and default.
  const options = SETTINGS.map((setting) => {
    const option = new Option(flagUsage(setting), flagHelp(setting));
    if (setting.type === 'urls' || setting.type === 'limits') option.argParser(collect);
    serve.addOption(option);
    return { setting, option };
  });
  serve.action(async (flags: Record<string, string | string[] | undefined>) => {
    const raw: RawSettings = {};
    for (const { setting, option } of options) raw[setting.key] = flags[option.attributeName()];
    if (raw.rulesDir === undefined && !process.env.LEAKWATCH_RULES) raw.rulesDir = defaultRulesDir();
    const config = resolveConfig(raw);
    for (const secret of [raw.token, raw.readToken]) {
      if (secret !== undefined) process.stderr.write('leakwatch: a token given as a flag is visible to every user in ps; prefer LEAKWATCH_TOKEN or --token-file\n');
    }
    setExit(await runServer(config));
  });

  program
    .command('analyze')
    .description('run the engine over log files offline: journald short text, raw linkerd files, journalctl -o json; "-" is stdin')
    .argument('[files...]', 'files to read (default: stdin)')
    .addOption(new Option('--format <format>', 'output format').choices([...OUTPUT_FORMATS]).default('table'))
    .option('--all', 'also list every grouped record no rule classified (category "-" in the table, null in ndjson)')
    .option('--rules <dir>', 'rule folder (default ./rules, else the shipped rules)')
    .action(async (files: string[], options: { format: OutputFormat; all?: boolean; rules?: string }) => {
      const rulesDir = options.rules ?? defaultRulesDir();
      // The ReDoS check belongs to `rules check` and to the long-running server; an offline run
      // starts at once (the lines are still cut to 16 KiB before any regex sees them).
      const { ruleSet, errors } = await loadRuleSet(rulesDir, { checkRegexSafety: false });
      if (!ruleSet) {
        for (const problem of errors) process.stderr.write(formatProblem(problem) + '\n');
        process.stderr.write(`leakwatch: the rules in ${rulesDir} do not load; fix them (leakwatch rules check ${rulesDir})\n`);
        setExit(1);
        return;
      }
      for (const file of files) {
        if (file !== '-' && !existsSync(file)) {
          process.stderr.write(`leakwatch: no such file: ${file}\n`);
          setExit(2);
          return;
        }
      }
      const writer = new EventWriter(options.format, (text) => void process.stdout.write(text));
      const started = performance.now();
      let events = 0;
      const result = await analyzeFiles(
        files,
        ruleSet,
        async (batch) => {
          for (const record of batch) if (isLeakEvent(record)) events++;
          writer.events(batch);
          // Respect the pipe's back-pressure instead of buffering the whole output.
          if (process.stdout.writableNeedDrain) await new Promise((resolve) => process.stdout.once('drain', resolve));
        },
        { all: options.all === true },
      );
      const summary = unclassifiedSummary(result.unclassifiedTraces);
      // The table is for people and ends with it; ndjson stays pure records, so it goes to stderr there.
      if (summary !== '') (options.format === 'table' ? process.stdout : process.stderr).write(summary);
      const seconds = (performance.now() - started) / 1000;
      process.stderr.write(
        `leakwatch: ${result.lines} lines, ${result.stats.groupsClosed} records, ${events} events in ${seconds.toFixed(2)} s` +
          ` (${Math.round(result.lines / Math.max(seconds, 1e-6)).toLocaleString('en-US')} lines/s)` +
          (result.stats.evictions > 0 ? `, ${result.stats.evictions} groups closed early by the open-group cap` : '') +
          (result.malformedJsonLines > 0 ? `, ${result.malformedJsonLines} lines looked like JSON but were not (kept as text)` : '') +
          '\n',
      );
      setExit(0);
    });

  const rules = program.command('rules').description('validate and test rule files');
  rules
    .command('check')
    .description('validate rule files: YAML, schema, regexes (ReDoS), references; prints file:line:col')
    .argument('[dir]', 'rule folder (default ./rules, else the shipped rules)')
    .option('--lint-fatal', 'exit 3 when there are warnings but no errors')
    .action(async (dir: string | undefined, options: { lintFatal?: boolean }) => {
      const rulesDir = dir ?? defaultRulesDir();
      const { ruleSet, errors, warnings } = await loadRuleSet(rulesDir, { checkRegexSafety: true });
      for (const problem of [...errors, ...warnings]) process.stdout.write(formatProblem(problem) + '\n');
      if (errors.length > 0 || !ruleSet) {
        process.stdout.write(`FAILED: ${errors.length} error(s), ${warnings.length} warning(s) in ${rulesDir}\n`);
        setExit(1);
        return;
      }
      process.stdout.write(`SUCCESS: ${ruleSet.rules.length} rules, ${ruleSet.groupers.length} groupers, ${warnings.length} warning(s) in ${rulesDir}\n`);
      setExit(warnings.length > 0 && options.lintFatal ? 3 : 0);
    });
  rules
    .command('test')
    .description('run the tests embedded in the rule files')
    .argument('[dir]', 'rule folder (default ./rules, else the shipped rules)')
    .action(async (dir: string | undefined) => {
      const rulesDir = dir ?? defaultRulesDir();
      const { ruleSet, errors } = await loadRuleSet(rulesDir, { checkRegexSafety: false });
      if (!ruleSet) {
        for (const problem of errors) process.stdout.write(formatProblem(problem) + '\n');
        setExit(1);
        return;
      }
      const report = await runRuleTests(rulesDir);
      for (const result of report.results) {
        process.stdout.write(`${result.ok ? 'ok  ' : 'FAIL'} ${result.rule}: ${result.test} (${result.file})\n`);
        if (!result.ok && result.diff) process.stdout.write(result.diff.replace(/^/gm, '      ') + '\n');
      }
      process.stdout.write(`${report.passed} passed, ${report.failed} failed\n`);
      setExit(report.failed > 0 ? 1 : 0);
    });
  return program;
}

/** Runs the CLI and returns the process exit code (the bin sets it; tests call this directly). */
export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  program.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (error instanceof ConfigError) {
      process.stderr.write(`leakwatch: ${error.message}\n`);
      return 2;
    }
    throw error;
  }
  return exitCode;
}
