import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { assertNoEviction, coalesceWrites, createQueueBackend, postgresQueueConnection, QUEUE_SESSION_NAME, RedisPolicyError } from '../../src/delivery/queue-backend.ts';
import { eventually, REDIS_TEST_URL } from '../support/delivery-rig.ts';
import { freshDatabase } from '../support/fresh-database.ts';

const children: ReturnType<typeof spawn>[] = [];
afterAll(() => children.forEach((c) => c.kill('SIGKILL')));

async function redisWithPolicy(policy: string): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  children.push(spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', policy], { stdio: 'ignore' }));
  await eventually(
    () => new Promise<boolean>((resolve) => net.connect(port, '127.0.0.1', function (this: net.Socket) { this.end(); resolve(true); }).on('error', () => resolve(false))),
    10_000,
  );
  return `redis://127.0.0.1:${port}`;
}

describe.runIf(inject('databaseKind') === 'postgres')('the Redis queue backend', () => {
  it('refuses a Redis that may evict keys (an evicted key is a lost delivery), naming the policy', async () => {
    const url = await redisWithPolicy('allkeys-lru');
    await expect(assertNoEviction(url)).rejects.toThrow(RedisPolicyError);
    await expect(assertNoEviction(url)).rejects.toThrow('maxmemory-policy is allkeys-lru');
  });

  it('accepts the machine Redis with noeviction', async () => {
    await expect(assertNoEviction(REDIS_TEST_URL)).resolves.toBeUndefined();
  });

  it('sends the commands of one event-loop turn in one write, in order and each answered, after a reconnect too', async () => {
    const key = `connector-test-coalesce-${randomUUID()}`;
    /** Socket writes made while 20 commands are given in one turn, and their replies. */
    async function twentyInOneTurn(redis: Redis) {
      const one = vi.spyOn(redis.stream, '_write');
      const many = vi.spyOn(redis.stream, '_writev');
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => redis.rpush(key, String(i))));
      const writes = one.mock.calls.length + many.mock.calls.length;
      one.mockRestore();
      many.mockRestore();
      return { writes, replies };
    }
    const plain = new Redis(REDIS_TEST_URL, { maxRetriesPerRequest: null });
    const coalesced = coalesceWrites(new Redis(REDIS_TEST_URL, { maxRetriesPerRequest: null }));
    try {
      await Promise.all([plain.ping(), coalesced.ping()]);
      // Without: a write per command (as many as the socket takes at once, on a loaded machine fewer).
      expect((await twentyInOneTurn(plain)).writes).toBeGreaterThan(1);
      await plain.del(key);
      const first = await twentyInOneTurn(coalesced);
      expect(first).toEqual({ writes: 1, replies: Array.from({ length: 20 }, (_, i) => i + 1) });
      expect(await coalesced.lrange(key, 0, -1)).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
      coalesced.disconnect(true);
      await new Promise((resolve) => coalesced.once('ready', resolve));
      const again = await twentyInOneTurn(coalesced);
      expect(again.writes).toBe(1);
      expect(again.replies.at(-1)).toBe(40);
    } finally {
      await plain.del(key);
      plain.disconnect();
      coalesced.disconnect();
    }
  });
});

describe.runIf(inject('databaseKind') === 'postgres')('the PostgreSQL queue backend', () => {
  it("commits queue work without waiting for the WAL flush, while the hub's own sessions still wait for it", async () => {
    const { options, connectionString } = postgresQueueConnection(inject('databaseUrl'));
    const queueSession = new pg.Client({ connectionString, options });
    const hubSession = new pg.Client({ connectionString: inject('databaseUrl') });
    await Promise.all([queueSession.connect(), hubSession.connect()]);
    try {
      expect((await queueSession.query('SHOW synchronous_commit')).rows[0].synchronous_commit).toBe('off');
      expect((await hubSession.query('SHOW synchronous_commit')).rows[0].synchronous_commit).toBe('on');
    } finally {
      await Promise.all([queueSession.end(), hubSession.end()]);
    }
  });

  it('runs jobs with those sessions (BullMQ adds its own search_path to the same startup options), and only those', async () => {
    const database = await freshDatabase(inject('databaseUrl'), 'connector_queue', { migrate: false });
    const backend = await createQueueBackend({ databaseUrl: database.url });
    const queue = backend.createQueue('deliver-test');
    const done: string[] = [];
    const worker = backend.createWorker('deliver-test', async (job) => void done.push((job.data as { deliveryId: string }).deliveryId), { concurrency: 2 });
    const observer = new pg.Client({ connectionString: inject('databaseUrl') });
    await observer.connect();
    try {
      await queue.addBulk(['d-1', 'd-2', 'd-3'].map((deliveryId) => ({ name: 'USER', data: { deliveryId }, opts: { jobId: deliveryId, removeOnComplete: true } })));
      await eventually(() => done.length === 3, 20_000);
      expect(done.sort()).toEqual(['d-1', 'd-2', 'd-3']);
      // The backend's pooled sessions carry the queue sessions' name, which only
      // postgresQueueConnection gives (with synchronous_commit off, tested above); BullMQ
      // names its one LISTEN session after the queue. Without that connection they would be unnamed.
      const { rows } = await observer.query<{ name: string }>('SELECT application_name AS name FROM pg_stat_activity WHERE datname = $1', [
        new URL(database.url).pathname.slice(1),
      ]);
      const names = rows.map((r) => r.name);
      expect(names).toContain(QUEUE_SESSION_NAME);
      expect(names.filter((name) => name !== QUEUE_SESSION_NAME)).toEqual(['deliver-test']);
    } finally {
      await observer.end();
      await worker.close();
      await queue.close();
      await backend.close();
      await database.drop();
    }
  });

  it("fails a queue call that cannot get one of the pool's connections within the wait, and serves again once one is free", async () => {
    const database = await freshDatabase(inject('databaseUrl'), 'connector_queue', { migrate: false });
    const backend = await createQueueBackend({ databaseUrl: database.url, poolWaitMs: 1_000 });
    const queue = backend.createQueue('deliver-test');
    const holder = new pg.Client({ connectionString: database.url });
    await holder.connect();
    const add = (deliveryId: string) => queue.add('USER', { deliveryId }, { jobId: deliveryId });
    try {
      await add('before'); // the backend's schema is in place
      // Three at once open the pool's three connections, so the held adds below do not wait on connecting.
      await Promise.all(['warm-1', 'warm-2', 'warm-3'].map(add));
      // Three adds take every connection of the queue's pool (3) and wait, in the database,
      // behind the job table's lock; a fourth waits for a connection.
      await holder.query('BEGIN; LOCK TABLE bullmq.job IN ACCESS EXCLUSIVE MODE');
      const held = ['held-1', 'held-2', 'held-3'].map(add);
      await eventually(async () => {
        const { rows } = await holder.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
          [QUEUE_SESSION_NAME],
        );
        return rows[0].n >= 1;
      }, 5_000);
      const started = performance.now();
      const fourth = await Promise.race([
        add('fourth').then(() => 'added', (error: Error) => error.message),
        new Promise((resolve) => setTimeout(resolve, 4_000, 'still waiting after 4 s')),
      ]);
      const waited = performance.now() - started;
      expect(fourth).toMatch(/timeout/i);
      expect(waited).toBeGreaterThanOrEqual(950);
      expect(waited).toBeLessThan(3_500);
      await holder.query('COMMIT');
      await Promise.all(held);
      await add('after');
      const { rows } = await holder.query<{ id: string }>('SELECT id FROM bullmq.job ORDER BY id');
      expect(rows.map((r) => r.id)).toEqual(expect.arrayContaining(['before', 'held-1', 'held-2', 'held-3', 'after']));
      expect(rows.map((r) => r.id)).not.toContain('fourth');
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      await holder.end();
      await queue.close();
      await backend.close();
      await database.drop();
    }
  });
});
