import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.ts';

describe('the embedded database', () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'connector-embedded-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  async function query(url: string, text: string): Promise<Record<string, unknown>[]> {
    const client = new pg.Client(url);
    await client.connect();
    try {
      return (await client.query(text)).rows;
    } finally {
      await client.end();
    }
  }

  it('is made in a process of its own on a new data folder, so initdb memory is not the hub’s, and keeps its data across a restart', async () => {
    const embedded = await startEmbeddedPostgres(dataDir);
    try {
      expect(existsSync(path.join(dataDir, 'pgdata', 'PG_VERSION'))).toBe(true);
      expect(readdirSync(dataDir)).not.toContain('pgdata.new');
      // Made in this process, the new instance's WebAssembly memory stays at ~630 MB after initdb;
      // opened on a made folder, PGlite holds ~140 MB (both `external` in process.memoryUsage).
      expect(process.memoryUsage().external / 2 ** 20).toBeLessThan(400);
      await query(embedded.url, 'CREATE TABLE kept (note text); INSERT INTO kept VALUES ($$across a restart$$)');
    } finally {
      await embedded.stop();
    }
    const reopened = await startEmbeddedPostgres(dataDir);
    try {
      expect(await query(reopened.url, 'SELECT note FROM kept')).toEqual([{ note: 'across a restart' }]);
    } finally {
      await reopened.stop();
    }
  });

  it('runs with 16 MB of shared buffers (not PGlite’s 128 MB) and without sequential scans, set at each start', async () => {
    const embedded = await startEmbeddedPostgres(dataDir);
    try {
      expect(await query(embedded.url, 'SHOW shared_buffers')).toEqual([{ shared_buffers: '16MB' }]);
      expect(await query(embedded.url, 'SHOW enable_seqscan')).toEqual([{ enable_seqscan: 'off' }]);
      // The data folder's own settings (timezone, datestyle, ...) are still there.
      expect(await query(embedded.url, "SELECT count(*)::int AS n FROM pg_settings WHERE source = 'configuration file'")).not.toEqual([{ n: 0 }]);
    } finally {
      await embedded.stop();
    }
  });
});
