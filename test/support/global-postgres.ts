import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { applyMigrations } from '../../src/store/migrations.ts';
import { generateKey } from '../../src/security/secret-box.ts';

/** A fresh database on the real PostgreSQL server for this run, dropped afterwards. */
export default async function setup(project: TestProject) {
  const server = process.env.DATABASE_TEST_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
  const name = `connector_test_${process.pid}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(server);
  url.pathname = `/${name}`;
  await applyMigrations(url.toString());
  // One encryption key per run: the run's database keeps one key check, as a real hub's does.
  project.provide('encryptionKey', generateKey());
  project.provide('databaseUrl', url.toString());
  project.provide('databaseKind', 'postgres');
  return async () => {
    const client = new pg.Client({ connectionString: server });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await client.end();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    databaseKind: 'postgres' | 'pglite';
    encryptionKey: string;
  }
}
