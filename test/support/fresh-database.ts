import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { applyMigrations } from '../../src/store/migrations.ts';

export interface FreshDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * A database of its own on the PostgreSQL server that `serverUrl` names
 * (any database URL on it), named `<prefix>_<random>`, migrated unless
 * `migrate` is false. For the run, or for a test that must not share.
 */
export async function freshDatabase(serverUrl: string, prefix: string, options: { migrate?: boolean } = {}): Promise<FreshDatabase> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  await onServer(serverUrl, `CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  if (options.migrate ?? true) await applyMigrations(url.toString());
  return { url: url.toString(), drop: () => onServer(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

async function onServer(serverUrl: string, statement: string): Promise<void> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(statement);
  } finally {
    await admin.end();
  }
}
