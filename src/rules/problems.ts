/** A finding about a rule file, pointing at the place an SRE has to edit. */
export interface RuleProblem {
  file: string;
  line: number;
  col: number;
  message: string;
  severity: 'error' | 'warning';
}

/** `rules/netty.yaml:12:17: message` (errors) or `rules/netty.yaml:12:17: warning: message`, like compilers print. */
export function formatProblem(problem: RuleProblem): string {
  const prefix = `${problem.file}:${problem.line}:${problem.col}: `;
  return problem.severity === 'warning' ? `${prefix}warning: ${problem.message}` : prefix + problem.message;
}

/** rules[0].classify.severity — the path as an SRE reads it in the file. */
export function describePath(path: ReadonlyArray<string | number>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else if (/^[A-Za-z_][\w]*$/.test(part)) out += out === '' ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out === '' ? '(top level)' : out;
}
