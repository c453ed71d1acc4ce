/**
 * Picks the grouper of a stream: the first GrouperConfig whose `services` globs match the stream's
 * service (`*` any run of characters, `?` one character), else the built-in default.
 */
import { DEFAULT_GROUPER, type GrouperConfig } from './grouper-config.js';

const compiledGlobs = new WeakMap<GrouperConfig, RegExp[]>();

function globToRegExp(glob: string): RegExp {
  let source = '';
  for (const char of glob) {
    if (char === '*') source += '.*';
    else if (char === '?') source += '.';
    else source += char.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 's');
}

function globsOf(config: GrouperConfig): RegExp[] {
  let globs = compiledGlobs.get(config);
  if (!globs) {
    globs = config.services.map(globToRegExp);
    compiledGlobs.set(config, globs);
  }
  return globs;
}

export function selectGrouper(groupers: readonly GrouperConfig[], service: string): GrouperConfig {
  for (const config of groupers) {
    if (globsOf(config).some((glob) => glob.test(service))) return config;
  }
  return DEFAULT_GROUPER;
}
