import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.ts';
import { applyMigrations } from '../../src/store/migrations.ts';
import { generateKey } from '../../src/security/secret-box.ts';

/** The embedded default, exactly as the hub starts it, in a temporary data folder. */
export default async function setup(project: TestProject) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'connector-pglite-'));
  const embedded = await startEmbeddedPostgres(dir);
  await applyMigrations(embedded.url);
  // One encryption key per run: the run's database keeps one key check, as a real hub's does.
  project.provide('encryptionKey', generateKey());
  project.provide('databaseUrl', embedded.url);
  project.provide('databaseKind', 'pglite');
  return async () => {
    await embedded.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
