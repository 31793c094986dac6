import type { PrismaClient } from './generated/client.ts';

/**
 * Facts about the database sessions that the plain-SQL stores (saves,
 * deliveries) share.
 */

/**
 * PGlite (embedded, or another hub's reached through DATABASE_URL) serves
 * all its socket connections from one session: statements prepared under a
 * name would collide there, so the stores prepare by name only elsewhere.
 */
export async function servesOneSession(prisma: PrismaClient): Promise<boolean> {
  const [{ version }] = await prisma.$queryRaw<{ version: string }[]>`SELECT version() AS version`;
  return version.includes('PGlite');
}

/**
 * A batch statement refused because of its rows (bad data, a constraint, a
 * lock wait, a deadlock or serialization failure with another transaction):
 * worth running its calls one by one (Batcher's `oneByOneAfter`). Anything
 * else (connection, pool) is every call's answer.
 */
export function isRowFault(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^(22|23|40)...$|^55P03$/.test(code);
}

/**
 * Session settings of the plain-SQL stores' connections (PostgreSQL only:
 * PGlite serves every connection from one session). Each of their
 * statements reaches its rows by key, a batch at a time, and is prepared
 * once per connection. A plan is made once, often while the tables are
 * still small or not yet analyzed (a new database, a burst of changes, a
 * server whose autovacuum is off), and then kept for the connection's life:
 * with those estimates PostgreSQL picks sequential scans (of link for every
 * save, of delivery for every claim), whose cost then grows with every row
 * written. Without sequential scans, and with one plan for every batch size
 * instead of planning each execution afresh, the plan is the keyed one,
 * whatever the statistics say.
 */
export const KEYED_PLANS = '-c enable_seqscan=off -c plan_cache_mode=force_generic_plan';
