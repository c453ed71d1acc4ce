/**
 * The command line. Each command imports what it runs when it runs: `analyze` never loads the
 * server (fastify, SQLite), and `serve` never loads the offline reader.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { RuleProblem } from './rules/problems.js';
import { OUTPUT_FORMATS, type OutputFormat } from './analyze/format.js';
import { defaultThreads } from './analyze/threads.js';
import { ConfigError, DEFAULTS, flagHelp, flagUsage, resolveConfig, SETTINGS, type RawSettings } from './config.js';
import { closestName } from './text/suggest.js';
import { parseBytes } from './units.js';
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
    const { runServer } = await import('./server.js');
    setExit(await runServer(config));
  });

  const analyze = program
    .command('analyze')
    .description(
      'run the engine over log files offline: journalctl output (short*, json, json-seq, json-sse, json-pretty, export), raw linkerd files; gzip or zstd; "-" is stdin',
    )
    .argument('[files...]', 'files to read; "-" is stdin (default: stdin, when it is not a terminal)')
    .addOption(new Option('--format <format>', 'output format: a table sorted by time with a summary, or one JSON object per line as records close').choices([...OUTPUT_FORMATS]).default('table'))
    .addOption(new Option('--all', 'also list every grouped record no rule classified (category "-" in the table, null in ndjson)').default(false, 'off'))
    .option('--rules <dir>', 'rule folder (default: ./rules, else the rules shipped in the package)')
    .addOption(new Option('--threads <n>', 'worker threads that group and classify, each a share of the streams (the main thread reads, routes lines and writes)').argParser(positiveInteger).default(defaultThreads(), 'one less than the cores, at least 1, at most 4'))
    .addOption(new Option('--recursive', 'read every file below a folder given as input (without it a folder is refused)').default(false, 'off'))
    .addOption(new Option('--max-zstd-window <size>', 'largest window a zstd file may ask for').argParser(byteSize).default(32 * 1024 * 1024, '32MiB'))
    .action(async (files: string[], options: { format: OutputFormat; all: boolean; rules?: string; threads: number; recursive: boolean; maxZstdWindow: number }) => {
      if (files.length === 0 && process.stdin.isTTY) {
        // Waiting silently for someone to type log lines helps nobody.
        process.stderr.write(analyze.helpInformation());
        process.stderr.write('\nleakwatch: give files to analyze, or pipe them in (journalctl -u linkerd -o json | leakwatch analyze)\n');
        setExit(2);
        return;
      }
      const { runAnalyzeCommand } = await import('./analyze/command.js');
      setExit(
        await runAnalyzeCommand(files, {
          format: options.format,
          all: options.all,
          rulesDir: options.rules ?? defaultRulesDir(),
          threads: options.threads,
          recursive: options.recursive,
          maxZstdWindowBytes: options.maxZstdWindow,
        }),
      );
    });

  const rules = program.command('rules').description('validate and test rule files');
  rules
    .command('check')
    .description('validate rule files: YAML, schema, regexes (ReDoS), references; prints file:line:col')
    .argument('[dir]', 'rule folder (default ./rules, else the shipped rules)')
    .addOption(new Option('--lint-fatal', 'exit 3 when there are warnings but no errors').default(false, 'off'))
    .action(async (dir: string | undefined, options: { lintFatal: boolean }) => {
      const rulesDir = dir ?? defaultRulesDir();
      const { loadRuleSet } = await import('./rules/index.js');
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
      const { loadRuleSet, runRuleTests } = await import('./rules/index.js');
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

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

function byteSize(value: string): number {
  const bytes = parseBytes(value);
  if (bytes === null || bytes < 1) throw new InvalidArgumentError('expected a size such as 32MiB, 512k or 1048576');
  return bytes;
}

/**
 * `serve` is the default command, so a mistyped command would be taken as serve's arguments
 * ("too many arguments for 'serve'"): a first word that names no command is answered here.
 */
function unknownCommand(program: Command, argv: readonly string[]): string | undefined {
  const first = argv[0];
  if (first === undefined || first.startsWith('-')) return undefined;
  const names = program.commands.flatMap((command) => [command.name(), ...command.aliases()]);
  if (names.includes(first) || first === 'help') return undefined;
  const guess = closestName(first, [...names, 'help']);
  return `leakwatch: unknown command '${first}'${guess === undefined ? '' : ` (did you mean '${guess}'?)`}; the commands are ${names.join(', ')} (leakwatch --help)\n`;
}

/** Runs the CLI and returns the process exit code (the bin sets it; tests call this directly). */
export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  program.exitOverride();
  const unknown = unknownCommand(program, argv);
  if (unknown !== undefined) {
    process.stderr.write(unknown);
    return 2;
  }
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
