/**
 * Readers for the two shipper configuration formats that are not YAML, enough to check the
 * examples in examples/ the way the shippers read them:
 * - Fluent Bit's classic mode (https://docs.fluentbit.io/manual/administration/configuring-fluent-bit/classic-mode/configuration-file):
 *   `[SECTION]` headers, `Key Value` entries (keys case-insensitive), `#` comment lines;
 * - Fluentd's (https://docs.fluentd.org/configuration/config-file): `<directive argument>` …
 *   `</directive>` nested sections and `key value` parameters, `#` comment lines.
 */

export interface FluentBitSection {
  name: string;
  /** Keys lower-cased, as Fluent Bit compares them. */
  entries: Map<string, string>;
}

export function parseFluentBitClassic(text: string): FluentBitSection[] {
  const sections: FluentBitSection[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const header = /^\[([A-Z_]+)\]$/i.exec(line);
    if (header) {
      sections.push({ name: header[1]!.toUpperCase(), entries: new Map() });
      return;
    }
    const entry = /^(\S+)\s+(.+)$/.exec(line);
    const current = sections[sections.length - 1];
    if (!entry || !current) throw new Error(`line ${index + 1}: not a section header or a "Key Value" entry: ${raw}`);
    current.entries.set(entry[1]!.toLowerCase(), entry[2]!.trim());
  });
  return sections;
}

export interface FluentdDirective {
  name: string;
  argument: string;
  params: Map<string, string>;
  children: FluentdDirective[];
}

/** The top-level directives (source, match, …) with their parameters and nested sections. */
export function parseFluentdConf(text: string): FluentdDirective[] {
  const root: FluentdDirective = { name: '', argument: '', params: new Map(), children: [] };
  const stack = [root];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const current = stack[stack.length - 1]!;
    const close = /^<\/([a-z_]+)>$/.exec(line);
    if (close) {
      if (close[1] !== current.name) throw new Error(`line ${index + 1}: </${close[1]}> closes <${current.name}>`);
      stack.pop();
      return;
    }
    const open = /^<([a-z_]+)(?:\s+([^>]*))?>$/.exec(line);
    if (open) {
      const directive: FluentdDirective = { name: open[1]!, argument: (open[2] ?? '').trim(), params: new Map(), children: [] };
      current.children.push(directive);
      stack.push(directive);
      return;
    }
    const param = /^(@?[a-z_][a-z0-9_.]*)(?:\s+(.*))?$/.exec(line);
    if (!param || current === root) throw new Error(`line ${index + 1}: not a directive or a parameter inside one: ${raw}`);
    current.params.set(param[1]!, (param[2] ?? '').trim());
  });
  if (stack.length !== 1) throw new Error(`<${stack[stack.length - 1]!.name}> is never closed`);
  return root.children;
}

/** The first nested section of this name. */
export function childOf(directive: FluentdDirective, name: string): FluentdDirective | undefined {
  return directive.children.find((child) => child.name === name);
}
