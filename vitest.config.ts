import { defineConfig } from 'vitest/config';

// The whole suite runs twice: on the embedded PGlite and on the real
// PostgreSQL (DATABASE_TEST_URL, default 127.0.0.1:5432). Pure domain and
// wire tests run once, in `unit`.
const pure = ['test/domain/**/*.test.ts', 'test/wire/**/*.test.ts', 'test/**/*.unit.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'unit', include: pure } },
      {
        extends: true,
        test: { name: 'postgres', include: ['test/**/*.test.ts'], exclude: pure, globalSetup: ['test/support/global-postgres.ts'] },
      },
      {
        extends: true,
        test: { name: 'pglite', include: ['test/**/*.test.ts'], exclude: pure, globalSetup: ['test/support/global-pglite.ts'] },
      },
    ],
  },
});
