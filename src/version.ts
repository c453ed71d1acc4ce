import { readFileSync } from 'node:fs';

/** The version in package.json: `--version`, the User-Agent of forwarded requests, the OTLP scope. */
export const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
