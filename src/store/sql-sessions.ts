import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { PrismaClient } from './generated/client.ts';

/**
 * Facts about the database sessions that the plain-SQL stores (saves,
 * deliveries) share.
 */

/**
 * PGlite (embedded, or another hub's reached through DATABASE_URL) serves
 * all its socket connections from one session: statements prepared under
 * one name by two connections would collide there (see OwnStatementNames).
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
 * Session settings of the plain-SQL stores' connections on PostgreSQL (the
 * embedded database's one shared session starts without sequential scans:
 * see embedded-postgres.ts). Each of their
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

/**
 * How long a caller waits for a connection from one of the hub's pools
 * (Prisma's, the save path's, the delivery engine's) before it fails:
 * exhausted by statements stuck behind a lock, say, or a database that does
 * not answer the connection. A partner then gets UNAVAILABLE (503, retry)
 * with an errorUUID instead of a request that hangs; a relay run fails and
 * is logged, and the next tick tries again; a delivery attempt fails and is
 * retried with backoff.
 */
export const POOL_WAIT_MS = 10_000;

/**
 * A plain-SQL store's pool (saves, deliveries). Its settings: KEYED_PLANS
 * for each session on PostgreSQL; on a database that serves every
 * connection from one session, whose settings are its own (the embedded
 * database starts without sequential scans), connections that keep their
 * statement names apart (OwnStatementNames).
 *
 * Its close() returns once every connection has ended, or after
 * `endWaitMs`. pg-pool's end() resolves as soon as it has told its
 * connections to end, before they have: on PGlite a closed store's
 * statements were then still prepared in the session that outlives it,
 * their DEALLOCATE in flight.
 */
export class StorePool extends pg.Pool {
  private readonly open = new Set<pg.PoolClient>();
  private allEnded?: () => void;

  /**
   * @param endWaitMs how long close() waits for its connections' ends (a server that does not
   *   answer them must not hold up a shutdown).
   */
  constructor(
    config: pg.PoolConfig,
    oneSession: boolean,
    private readonly endWaitMs = POOL_WAIT_MS,
  ) {
    super({ ...config, ...(oneSession ? { Client: OwnStatementNames } : { options: KEYED_PLANS }) });
    this.on('connect', (client) => this.open.add(client));
    this.on('remove', (client) => {
      this.open.delete(client);
      if (this.open.size === 0) this.allEnded?.();
    });
    // An idle connection dropped by the server (restart, failover) must not take the process down;
    // the next statement opens a new one.
    this.on('error', () => undefined);
  }

  async close(): Promise<void> {
    const allEnded = new Promise<void>((resolve) => (this.allEnded = resolve));
    await this.end();
    if (this.open.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([allEnded, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.endWaitMs)))]);
    clearTimeout(timer);
  }
}

/**
 * A connection to a database whose connections share one session (PGlite).
 * Its named statements are prepared under a prefix of its own, so two
 * connections never prepare the same name; preparing each statement once
 * instead of parsing and planning it on every execution halves PGlite's
 * work per save. A connection that ends cleanly (pool idle timeout, close)
 * deallocates them first: the session outlives it.
 */
export class OwnStatementNames extends pg.Client {
  private readonly prefix = randomBytes(4).toString('hex');
  private readonly prepared = new Set<string>();

  // Every one of pg's overloads passes through unchanged but for a QueryConfig's name; `any` is
  // what the overloads return between them.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override query(config: unknown, ...rest: unknown[]): any {
    if (typeof config === 'object' && config !== null && typeof (config as pg.QueryConfig).name === 'string') {
      const name = `${this.prefix}:${(config as pg.QueryConfig).name}`;
      this.prepared.add(name);
      config = { ...config, name };
    }
    return (super.query as (...args: unknown[]) => unknown)(config, ...rest);
  }

  override end(): Promise<void>;
  override end(callback: (error: Error) => void): void;
  override end(callback?: (error: Error) => void): Promise<void> | void {
    const names = [...this.prepared];
    this.prepared.clear();
    const deallocated = names.length
      ? super.query(names.map((name) => `DEALLOCATE ${pg.escapeIdentifier(name)}`).join('; ')).then(
          () => undefined,
          () => undefined,
        )
      : Promise.resolve();
    const ended = deallocated.then(() => super.end());
    if (!callback) return ended;
    ended.then(() => callback(undefined as unknown as Error), callback);
  }
}
