import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { FakeReferencePartner } from '../adapters/reference/fake.ts';
import { SecretBox, generateKey } from '../src/security/secret-box.ts';
import { createPrisma, type PrismaClient } from '../src/store/database.ts';
import { startEmbeddedPostgres } from '../src/store/embedded-postgres.ts';
import { applyMigrations } from '../src/store/migrations.ts';
import { applyTurnup } from '../src/turnup/apply-turnup.ts';

/**
 * What a benchmark runs against: a database of its own (a fresh database
 * on the local PostgreSQL, or a fresh embedded PGlite), one client with a
 * sending provider A and a receiving provider B backed by a fake partner.
 */
export interface BenchEnv {
  kind: 'postgres' | 'pglite';
  databaseUrl: string;
  prisma: PrismaClient;
  secretBox: SecretBox;
  key: string;
  token: string;
  clientId: string;
  clubId: string;
  providerA: string;
  fake: FakeReferencePartner;
  close(): Promise<void>;
}

export const PG_SERVER = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** `receiverUrl`: B's connection goes there (a partner in another process) instead of to the in-process fake. */
export async function benchEnv(
  kind: 'postgres' | 'pglite',
  fakeOptions: ConstructorParameters<typeof FakeReferencePartner>[0] = {},
  receiverUrl?: string,
): Promise<BenchEnv> {
  let databaseUrl: string;
  let dropDatabase = async () => {};
  if (kind === 'postgres') {
    const name = `connector_bench_${randomBytes(4).toString('hex')}`;
    const admin = new pg.Client({ connectionString: PG_SERVER });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(PG_SERVER);
    url.pathname = `/${name}`;
    databaseUrl = url.toString();
    dropDatabase = async () => {
      const c = new pg.Client({ connectionString: PG_SERVER });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    };
  } else {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'connector-bench-'));
    const embedded = await startEmbeddedPostgres(dir);
    databaseUrl = embedded.url;
    dropDatabase = async () => {
      await embedded.stop();
      rmSync(dir, { recursive: true, force: true });
    };
  }
  await applyMigrations(databaseUrl);
  const prisma = createPrisma(databaseUrl, 10);
  const key = generateKey();
  const secretBox = new SecretBox(key);
  const fake = await new FakeReferencePartner({ keepHistory: false, ...fakeOptions }).start();
  const token = randomBytes(24).toString('hex');
  const agreement = { userTypes: ['PROSPECT', 'MEMBER', 'EX_MEMBER'] as ('PROSPECT' | 'MEMBER' | 'EX_MEMBER')[], prospects: { staffOwner: false, leadSource: false, trial: false } };
  await applyTurnup({ prisma, secretBox }, {
    providers: [
      { code: 'BENCH_A', name: 'A', unknownReferences: 'reject', credentials: [{ type: 'token', token }] },
      { code: 'BENCH_B', name: 'B', unknownReferences: 'reject', credentials: [] },
    ],
    clients: [
      {
        code: 'bench',
        name: 'Bench',
        clubs: [{ code: 'main', name: 'Main' }],
        providers: [
          { provider: 'BENCH_A', clientId: 'A1', clubs: { main: 'A-club' }, agreement: { direction: 'send', ...agreement } },
          {
            provider: 'BENCH_B',
            clientId: 'B1',
            clubs: { main: 'B-club' },
            agreement: { direction: 'receive', ...agreement },
            connection: { adapter: 'reference', url: receiverUrl ?? fake.url, auth: { type: 'none' }, allowPrivateNetwork: true, delivery: { concurrency: 50, timeoutMs: 10_000 }, options: {} },
          },
        ],
      },
    ],
  });
  const client = await prisma.client.findUniqueOrThrow({ where: { code: 'bench' }, include: { clubs: true } });
  const providerA = (await prisma.provider.findUniqueOrThrow({ where: { code: 'BENCH_A' } })).id;
  return {
    kind, databaseUrl, prisma, secretBox, key, token, clientId: client.id, clubId: client.clubs[0].id, providerA, fake,
    async close() {
      await fake.stop();
      await prisma.$disconnect();
      await dropDatabase();
    },
  };
}

/**
 * Writes every dirty buffer out now (CHECKPOINT), so a measurement that
 * follows a bulk load (a seeded table, an earlier benchmark's writes) does
 * not share the server with the checkpoint that load set off, which
 * PostgreSQL spreads over minutes (checkpoint_completion_target) and which
 * lands in one run's window and not another's. The delivery backlog takes
 * it before its rows are written, not between their insert and the run:
 * its outbox rows are updated right after they were written, and a
 * checkpoint between the two would add a full-page image per page that a
 * running hub seldom pays. Needs a superuser or pg_checkpoint; without it
 * the measurement goes on, and says so on stderr.
 */
export async function checkpoint(run: (sql: string) => Promise<unknown>): Promise<void> {
  try {
    await run('CHECKPOINT');
  } catch (error) {
    console.error(`CHECKPOINT refused (${(error as Error).message}): this run may share the server with a checkpoint`);
  }
}

/** The median; of an even count, the mean of the two middle values. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export function machine(): string {
  return `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}
