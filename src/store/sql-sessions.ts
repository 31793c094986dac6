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
