import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.ts';
import { applyMigrations } from '../../src/store/migrations.ts';

/** The embedded default, exactly as the hub starts it, in a temporary data folder. */
export default async function setup(project: TestProject) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'connector-pglite-'));
  const embedded = await startEmbeddedPostgres(dir);
  await applyMigrations(embedded.url);
  project.provide('databaseUrl', embedded.url);
  project.provide('databaseKind', 'pglite');
  return async () => {
    await embedded.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
