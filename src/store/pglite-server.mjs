// @ts-check
// Plain JavaScript: the embedded database's thread runs this, and a worker
// thread has no TypeScript loader unless it starts one of its own, which
// costs the hub ~20 MiB of memory for a thread of loader hooks.
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { keepProtocolCyclesTogether, refuseMalformedMessages } from './pglite-protocol-fix.mjs';

/**
 * Settings given at each start (PGlite's `postgresqlconf` option would
 * replace the data folder's postgresql.conf whole):
 * - Of PGlite's default 128 MB of shared buffers every page read stays
 *   resident; with 16 MB the hub under load is ~150 MB smaller, and pages
 *   beyond them come back from the operating system's file cache.
 * - No sequential scans, for the session every connection shares: the
 *   stores' statements are prepared once and their plans kept (see
 *   KEYED_PLANS and OwnStatementNames in sql-sessions.ts), and a plan made
 *   while a table was small must not scan it whole once it has grown. A
 *   query that has no index to use still scans.
 * - New WAL segments are not filled with zeros first (wal_init_zero): the
 *   16 MB of writes held the one session every save shares for ~100 ms at
 *   each new segment (every ~9 s at 1,000 saves/s). PGlite already runs
 *   without fsync (-F), so the zeros bought nothing here.
 */
const START_PARAMS = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB', '-c', 'enable_seqscan=off', '-c', 'wal_init_zero=off'];

/**
 * Opens the database in `pgdata` (made already) and serves it on a loopback
 * port, so Prisma's adapter-pg, the stores' pools and BullMQ's PostgreSQL
 * backend use exactly the code path they use against a real server.
 *
 * @param {{ pgdata: string; port: number }} options
 * @returns {Promise<{ port: number; stop(): Promise<void> }>}
 */
export async function servePGlite({ pgdata, port }) {
  const db = await PGlite.create(pgdata, { startParams: START_PARAMS });
  const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', maxConnections: 100 });
  try {
    // All socket connections share one PGlite session; BullMQ's startup option
    // `-c search_path=bullmq` is ignored by the socket, so the path is set here.
    // Our tables have no name in common with BullMQ's, and our migrations pin
    // `public` themselves.
    await db.exec('SET search_path TO bullmq, public');
    keepProtocolCyclesTogether(server);
    refuseMalformedMessages(server);
    await server.start();
  } catch (error) {
    // The port is taken, say: the database opened for it is closed, not left holding its memory.
    await db.close().catch(() => undefined);
    throw error;
  }
  return {
    port: Number(server.getServerConn().split(':')[1]),
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
