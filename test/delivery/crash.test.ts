import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FakeReferencePartner } from '../../adapters/reference/fake.ts';
import { appServer, createApp } from '../../src/api/app.ts';
import { createLogger } from '../../src/log.ts';
import { SecretBox, generateKey } from '../../src/security/secret-box.ts';
import { createHubServices } from '../../src/services/hub-services.ts';
import { createPrisma, type PrismaClient } from '../../src/store/database.ts';
import { RecordStore } from '../../src/store/record-store.ts';
import { applyTurnup } from '../../src/turnup/apply-turnup.ts';
import { API, userXml } from '../support/test-hub.ts';
import { eventually } from '../support/delivery-rig.ts';
import { freshDatabase, type FreshDatabase } from '../support/fresh-database.ts';
import { startHubProcess, type HubProcess } from '../support/hub-process.ts';
import { xml } from '../support/xml.ts';

/**
 * Real crashes, on real PostgreSQL and a real (private) Redis: the worker
 * process is SIGKILLed in the middle of 1,000 deliveries, and Redis is
 * restarted empty. The hub's own tables are the truth; the queue is
 * rebuilt from them.
 */
const RECORDS = 500; // two versions each: 1,000 changes to deliver
const run = inject('databaseKind') === 'postgres';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], {
    stdio: 'ignore',
  });
  await eventually(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.end();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    10_000,
  );
  return child;
}

describe.runIf(run)('deliveries survive crashes', () => {
  let database: FreshDatabase;
  let dbUrl: string;
  let prisma: PrismaClient;
  let store: RecordStore;
  let redis: ChildProcess;
  let redisPort: number;
  let fake: FakeReferencePartner;
  let worker: HubProcess | undefined;
  const key = generateKey();
  const token = randomBytes(24).toString('hex');
  let server: ReturnType<typeof appServer>;
  let env: Record<string, string>;

  beforeAll(async () => {
    database = await freshDatabase(inject('databaseUrl'), 'connector_crash');
    dbUrl = database.url;
    prisma = createPrisma(dbUrl, 8);
    redisPort = await freePort();
    redis = await startRedis(redisPort);
    fake = await new FakeReferencePartner().start();
    fake.behaviour = { kind: 'slow', ms: 15 };
    const secretBox = new SecretBox(key);
    await applyTurnup({ prisma, secretBox }, {
      providers: [
        { code: 'CRASH_A', name: 'A', unknownReferences: 'reject', credentials: [{ type: 'token', token }] },
        { code: 'CRASH_B', name: 'B', unknownReferences: 'reject', credentials: [] },
      ],
      clients: [
        {
          code: 'crash',
          name: 'Crash test',
          clubs: [{ code: 'main', name: 'Main' }],
          providers: [
            { provider: 'CRASH_A', clientId: 'A1', clubs: { main: 'A-club' }, agreement: { direction: 'send', userTypes: ['PROSPECT', 'MEMBER', 'EX_MEMBER'], prospects: { staffOwner: false, leadSource: false, trial: false } } },
            {
              provider: 'CRASH_B',
              clientId: 'B1',
              clubs: { main: 'B-club' },
              agreement: { direction: 'receive', userTypes: ['PROSPECT', 'MEMBER', 'EX_MEMBER'], prospects: { staffOwner: false, leadSource: false, trial: false } },
              connection: { adapter: 'reference', url: fake.url, auth: { type: 'none' }, allowPrivateNetwork: true, delivery: { concurrency: 20 }, options: {} },
            },
          ],
        },
      ],
    });
    // The API runs in this process without a worker role; the worker is a child process.
    server = appServer(createApp({ services: createHubServices({ prisma, store: (store = RecordStore.open(dbUrl, 8)), cacheTtlMs: 5000 }), logger: createLogger('silent'), bodyLimitBytes: 65536, adminToken: undefined, isReady: async () => true }));
    env = {
      DATABASE_URL: dbUrl,
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      CONNECTOR_ENCRYPTION_KEY: key,
      CONNECTOR_DELIVERY_TIMEOUT_MS: '1000',
      CONNECTOR_DELIVERY_BACKOFF_MS: '100',
      CONNECTOR_RECONCILE_INTERVAL_MS: '1000',
      LOG_LEVEL: 'info',
    };
  }, 120_000);

  afterAll(async () => {
    worker?.child.kill('SIGKILL');
    redis?.kill('SIGKILL');
    await fake?.stop();
    await prisma?.$disconnect();
    await store?.close();
    await database?.drop();
  });

  it('after a SIGKILL of the worker and a Redis restart, the partner holds every record latest version, applied exactly once and in order', async () => {
    worker = await startHubProcess(env, 'worker');
    const t = { provider: 'CRASH_A', client: 'A1', clubs: ['A-club'] };
    const post = (i: number, version: number) =>
      request(server)
        .post(`${API}/user`)
        .set('Authorization', `Bearer ${token}`)
        .type('application/xml')
        .send(userXml(t, `r-${i}`, { firstname: `P${i}`, lastname: 'Crash', userStatus: 'ACTIVE', userType: 'PROSPECT', city: `v${version}` }))
        .expect(200);
    // Two versions of each record, posted while deliveries run.
    const posting = (async () => {
      for (let version = 1; version <= 2; version++) {
        for (let i = 0; i < RECORDS; i += 25) await Promise.all(Array.from({ length: 25 }, (_, k) => post(i + k, version)));
      }
    })();

    await eventually(() => fake.applied.length >= 150, 60_000);
    worker.child.kill('SIGKILL');
    expect(await worker.exited).toBeNull();
    const appliedAtKill = fake.applied.length;
    worker = await startHubProcess(env, 'worker');

    await eventually(() => fake.applied.length >= appliedAtKill + 200, 90_000);
    redis.kill('SIGKILL');
    await once(redis, 'exit');
    redis = await startRedis(redisPort); // empty: every queued job is gone

    await posting;
    const users = await prisma.user.findMany({ where: { lastname: 'Crash' }, select: { id: true, version: true, city: true } });
    expect(users).toHaveLength(RECORDS);
    await eventually(
      async () => (await prisma.delivery.count({ where: { status: 'DELIVERED', deliveredVersion: 2 } })) === RECORDS,
      180_000,
      500,
    );

    for (const user of users) {
      const copies = [...fake.users.values()].filter((u) => u.externalRef === user.id);
      expect(copies, `one partner record for ${user.id}`).toHaveLength(1);
      expect(copies[0].city).toBe('v2');
      const writes = fake.applied.filter((a) => a.id === copies[0].id).map((a) => a.body.city as string);
      // The latest version is applied exactly once, and never before an older one.
      expect(writes.filter((c) => c === 'v2')).toHaveLength(1);
      expect(writes).toEqual([...writes].sort());
    }
    const duplicates = fake.requests.filter((r) => r.duplicate).length;
    console.log(`crash test: ${fake.applied.length} writes applied, ${duplicates} duplicate requests answered from the idempotency store`);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
  }, 420_000);
});
