import { randomUUID } from 'node:crypto';
import net from 'node:net';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { DeliveryStore } from '../../src/delivery/delivery-store.ts';
import { RecordStore } from '../../src/store/record-store.ts';
import { StorePool } from '../../src/store/sql-sessions.ts';

// PostgreSQL only: PGlite serves every connection from one session, which takes no session options.
describe.runIf(inject('databaseKind') === 'postgres')('the plain-SQL stores on PostgreSQL', () => {
  it('plan by key whatever the statistics say: no sequential scans, one plan for every batch size', async () => {
    const saves = RecordStore.open(inject('databaseUrl'), 1);
    const deliveries = new DeliveryStore(inject('databaseUrl'), 1);
    try {
      // A never-analyzed table looks empty to the planner; a scan of it per save grows with every row.
      for (const pool of [saves.pool, deliveries.pool]) {
        const { rows } = await pool.query(`SELECT current_setting('enable_seqscan') AS seqscan, current_setting('plan_cache_mode') AS plans`);
        expect(rows).toEqual([{ seqscan: 'off', plans: 'force_generic_plan' }]);
      }
    } finally {
      await saves.close();
      await deliveries.close();
    }
  });
});

// PGlite: every connection is the same session, so statement names must be each connection's own.
describe.runIf(inject('databaseKind') === 'pglite')('the plain-SQL stores on the embedded database', () => {
  const prepared = async (pool: pg.Pool) =>
    (await pool.query<{ name: string }>('SELECT name FROM pg_prepared_statements ORDER BY name')).rows.map((row) => row.name);

  it('prepare each statement once per connection, under names no other connection uses, and deallocate them when the connection ends', async () => {
    const saves = RecordStore.open(inject('databaseUrl'), 4, { oneSession: true });
    const deliveries = new DeliveryStore(inject('databaseUrl'), 4, true);
    const observer = new pg.Pool({ connectionString: inject('databaseUrl'), max: 1 });
    try {
      const before = await prepared(observer);
      // Four connections at once run the same statements: the first two by name, the third by batch.
      const missing = { providerId: randomUUID(), entityType: 'USER' as const, clubId: randomUUID(), externalId: 'none' };
      const clients = await Promise.all([1, 2, 3, 4].map(() => saves.pool.connect()));
      try {
        await Promise.all(
          clients.map((client) => client.query({ name: 'same-name', text: 'SELECT $1::int + 1 AS n', values: [1] }).then(({ rows }) => expect(rows).toEqual([{ n: 2 }]))),
        );
      } finally {
        for (const client of clients) client.release();
      }
      await Promise.all([1, 2, 3].map(() => saves.readByLink('user_record', missing)));
      await deliveries.claim(randomUUID(), 'a-job');
      const during = (await prepared(observer)).filter((name) => !before.includes(name));
      // Four prefixes for the shared name; the read and the claim, each prepared once per connection used.
      expect(during.filter((name) => name.endsWith(':same-name'))).toHaveLength(4);
      expect(new Set(during.filter((name) => name.endsWith(':same-name')).map((name) => name.split(':')[0])).size).toBe(4);
      expect(during.some((name) => /:read-user_record-/.test(name))).toBe(true);
      expect(during.some((name) => name.endsWith(':delivery-claim'))).toBe(true);
    } finally {
      await saves.close();
      await deliveries.close();
    }
    try {
      // Closed stores leave nothing behind in the session that outlives them.
      expect((await prepared(observer)).filter((name) => /:(same-name|read-user_record-|delivery-claim)/.test(name))).toEqual([]);
    } finally {
      await observer.end();
    }
  });
});

describe('a plain-SQL store pool', () => {
  it('closes once every one of its connections has ended, not when it has only asked them to', async () => {
    const pool = new StorePool({ connectionString: inject('databaseUrl'), max: 3 }, inject('databaseKind') === 'pglite');
    const ended: pg.PoolClient[] = [];
    pool.on('connect', (client) => client.on('end', () => ended.push(client)));
    const clients = await Promise.all([1, 2, 3].map(() => pool.connect()));
    for (const client of clients) await client.query({ name: 'one', text: 'SELECT 1' });
    for (const client of clients) client.release();
    // pg-pool's own end() resolves once it has asked its idle connections to end; on PGlite each still has its
    // DEALLOCATE to send then.
    await pool.close();
    expect(clients.map((client) => ended.includes(client))).toEqual([true, true, true]);
  });

  it('gives up waiting for a connection whose server never answers its end, so a shutdown is not held up', async () => {
    // A server that finishes the startup (authentication OK, ready for queries), then reads nothing and never closes.
    const sockets: net.Socket[] = [];
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      sockets.push(socket);
      socket.once('data', () => socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0, 0x5a, 0, 0, 0, 5, 0x49])));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const pool = new StorePool({ connectionString: `postgresql://hub@127.0.0.1:${port}/hub`, max: 1 }, false, 300);
    try {
      (await pool.connect()).release();
      const started = performance.now();
      await pool.close();
      expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });
});
