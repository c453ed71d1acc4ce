/**
 * `--direct-memory-max 'linkerd=1GiB,namerd=512MiB,edge-7/linkerd=2GiB,*=768MiB'`: the direct-memory
 * limit of processes that never reported one (-XX:MaxDirectMemorySize, -Dio.netty.maxDirectMemory).
 * A setting rather than a rule-file section: it is a fact of the deployment (the flags in a unit
 * file or a pod spec), set where those flags are set and different per environment, while the rule
 * files describe how failures read and are shared between deployments.
 */
import { formatBytes, parseBytes } from '../units.js';

export interface DirectMemoryMax {
  /** Only on this host; undefined for every host. */
  host?: string;
  /** A service name, or `*` for every service. */
  service: string;
  bytes: number;
}

/** Parses the setting's text; throws an Error saying what is wrong with which entry. */
export function parseDirectMemoryMax(text: string): DirectMemoryMax[] {
  const entries: DirectMemoryMax[] = [];
  for (const item of text.split(/[\s,]+/).filter(Boolean)) {
    const equals = item.lastIndexOf('=');
    if (equals <= 0) throw new Error(`"${item}" is not SERVICE=SIZE or HOST/SERVICE=SIZE`);
    const name = item.slice(0, equals);
    const bytes = parseBytes(item.slice(equals + 1));
    if (bytes === null || bytes <= 0) throw new Error(`"${item}": "${item.slice(equals + 1)}" is not a size such as 1GiB or 536870912`);
    const slash = name.indexOf('/');
    const entry: DirectMemoryMax = slash < 0 ? { service: name, bytes } : { host: name.slice(0, slash), service: name.slice(slash + 1), bytes };
    if (entry.service === '' || entry.host === '') throw new Error(`"${item}": empty host or service`);
    entries.push(entry);
  }
  return entries;
}

export function formatDirectMemoryMax(entries: readonly DirectMemoryMax[]): string {
  return entries.map((e) => `${e.host === undefined ? '' : `${e.host}/`}${e.service}=${formatBytes(e.bytes).replace(' ', '')}`).join(',');
}

/** The most specific entry for host+service: HOST/SERVICE, then SERVICE, then `*`. */
export function configuredMax(entries: readonly DirectMemoryMax[], host: string, service: string): number | null {
  return (
    entries.find((e) => e.host === host && e.service === service)?.bytes ??
    entries.find((e) => e.host === undefined && e.service === service)?.bytes ??
    entries.find((e) => e.host === undefined && e.service === '*')?.bytes ??
    null
  );
}
