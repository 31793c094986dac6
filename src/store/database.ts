import { PrismaPg } from '@prisma/adapter-pg';
import type { Config } from '../config.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.ts';
import { PrismaClient } from './generated/client.ts';
import { applyMigrations } from './migrations.ts';
import { RecordStore } from './record-store.ts';
import { POOL_WAIT_MS, servesOneSession } from './sql-sessions.ts';

export { PrismaClient };
export type Db = PrismaClient;

export interface Database {
  prisma: PrismaClient;
  /** The save path's plain-SQL pool. */
  store: RecordStore;
  /** The URL every component connects with (the embedded socket or DATABASE_URL). */
  url: string;
  embedded: boolean;
  close(): Promise<void>;
}

/** @param waitMs how long a query waits for a connection of the pool (see POOL_WAIT_MS). */
export function createPrisma(url: string, poolSize = 10, waitMs = POOL_WAIT_MS): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: poolSize, connectionTimeoutMillis: waitMs }) });
}

/**
 * Opens the hub's database: DATABASE_URL when set, otherwise the embedded
 * PGlite under the data folder. Migrations are applied before anything else
 * touches it.
 */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir' | 'databasePoolSize'>,
  options: { migrate?: boolean } = {},
): Promise<Database> {
  let embedded: EmbeddedPostgres | undefined;
  const url = config.databaseUrl ?? (embedded = await startEmbeddedPostgres(config.dataDir)).url;
  try {
    if (options.migrate !== false) await applyMigrations(url);
    const prisma = createPrisma(url, config.databasePoolSize);
    await prisma.$connect();
    const store = RecordStore.open(url, config.databasePoolSize, { oneSession: await servesOneSession(prisma) });
    return {
      prisma,
      store,
      url,
      embedded: embedded !== undefined,
      async close() {
        await prisma.$disconnect();
        await store.close();
        await embedded?.stop();
      },
    };
  } catch (error) {
    await embedded?.stop();
    throw error;
  }
}
