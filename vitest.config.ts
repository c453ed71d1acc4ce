import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: 'forks',
    globalSetup: ['test/helpers/global-build.ts'],
    // In CI a JSON report lets .ci/run print one "N passed, N failed" line.
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: process.env.CI ? { json: '.vitest-results.json' } : undefined,
    projects: [
      { extends: true, test: { name: 'tests', sequence: { groupOrder: 0 }, include: ['test/**/*.test.ts'], exclude: ['test/fuzz/**'] } },
      // The fuzz run bounds every answer at 1 s: it runs alone, after the rest, not beside it.
      { extends: true, test: { name: 'fuzz', include: ['test/fuzz/**/*.test.ts'], sequence: { groupOrder: 1 } } },
    ],
  },
});
