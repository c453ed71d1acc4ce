import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { resolveConfig, type RawSettings } from '../../src/config.js';
import { buildLeakwatch, type Leakwatch } from '../../src/server.js';

export interface RunningLeakwatch {
  service: Leakwatch;
  /** http://127.0.0.1:<port> */
  base: string;
  /** Closes the service and removes its data folder. */
  close(): Promise<void>;
}

/**
 * The whole service in this process (shipped rules, SQLite in a fresh temp folder) on a free
 * loopback port; `settings` are given as flags would be (`{ maxRecords: '10' }`).
 */
export async function startLeakwatch(name: string, settings: RawSettings = {}): Promise<RunningLeakwatch> {
  const dataDir = mkdtempSync(join(tmpdir(), `leakwatch-${name}-`));
  const service = await buildLeakwatch(resolveConfig({ dataDir, rulesDir: 'rules', ...settings }, {}), pino({ level: 'silent' }));
  await service.ready;
  await service.app.listen({ port: 0, host: '127.0.0.1' });
  const address = service.app.server.address();
  return {
    service,
    base: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`,
    async close() {
      await service.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
