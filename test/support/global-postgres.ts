import type { TestProject } from 'vitest/node';
import { generateKey } from '../../src/security/secret-box.ts';
import { freshDatabase } from './fresh-database.ts';

/** A fresh database on the real PostgreSQL server for this run, dropped afterwards. */
export default async function setup(project: TestProject) {
  const server = process.env.DATABASE_TEST_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const database = await freshDatabase(server, `connector_test_${process.pid}`);
  // One encryption key per run: the run's database keeps one key check, as a real hub's does.
  project.provide('encryptionKey', generateKey());
  project.provide('databaseUrl', database.url);
  project.provide('databaseKind', 'postgres');
  return () => database.drop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    databaseKind: 'postgres' | 'pglite';
    encryptionKey: string;
  }
}
