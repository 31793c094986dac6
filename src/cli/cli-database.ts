import type { Config } from '../config.ts';
import { createPrisma, type PrismaClient } from '../store/database.ts';
import { findRunningEmbeddedPostgres, startEmbeddedPostgres } from '../store/embedded-postgres.ts';
import { applyMigrations } from '../store/migrations.ts';

/**
 * The database for a one-shot command: DATABASE_URL; or the embedded hub's
 * socket when a hub is running on the data folder (PGlite allows one
 * process per folder); or the folder itself when no hub runs.
 */
export async function openCliDatabase(config: Config): Promise<{ prisma: PrismaClient; url: string; close(): Promise<void> }> {
  if (config.databaseUrl) {
    await applyMigrations(config.databaseUrl);
    const prisma = createPrisma(config.databaseUrl, 2);
    return { prisma, url: config.databaseUrl, close: () => prisma.$disconnect() };
  }
  const running = await findRunningEmbeddedPostgres(config.dataDir);
  if (running) {
    const prisma = createPrisma(running, 2);
    return { prisma, url: running, close: () => prisma.$disconnect() };
  }
  const embedded = await startEmbeddedPostgres(config.dataDir);
  await applyMigrations(embedded.url);
  const prisma = createPrisma(embedded.url, 2);
  return {
    prisma,
    url: embedded.url,
    async close() {
      await prisma.$disconnect();
      await embedded.stop();
    },
  };
}
