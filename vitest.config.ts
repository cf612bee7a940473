import { defineConfig } from 'vitest/config';

// XREF_TEST_REPORT=<file> adds a JSON report beside the console output (used by .ci/run).
const jsonReport = process.env.XREF_TEST_REPORT;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // one temporary directory per run, removed at its end (test/global-setup.ts)
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    // test runs print no logs unless asked (XREF_LOG_LEVEL=info npm test)
    env: { XREF_LOG_LEVEL: process.env.XREF_LOG_LEVEL ?? 'silent' },
    hookTimeout: 60_000,
    reporters: jsonReport ? ['default', ['json', { outputFile: jsonReport }]] : ['default'],
  },
});
