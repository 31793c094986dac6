import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { keepProtocolCyclesTogether } from './pglite-protocol-fix.ts';

/**
 * The embedded default: PostgreSQL compiled to WASM (PGlite), persisted under
 * the data folder and served on a loopback port, so Prisma's adapter-pg and
 * BullMQ's PostgreSQL backend use exactly the code path they use against a
 * real server.
 */
export interface EmbeddedPostgres {
  url: string;
  stop(): Promise<void>;
}

interface RunningFile {
  pid: number;
  port: number;
}

const runningFile = (dataDir: string) => path.join(dataDir, 'embedded-postgres.json');

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
 */
const START_PARAMS = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB', '-c', 'enable_seqscan=off'];

export async function startEmbeddedPostgres(dataDir: string, port = 0): Promise<EmbeddedPostgres> {
  mkdirSync(dataDir, { recursive: true });
  const pgdata = path.join(dataDir, 'pgdata');
  if (!existsSync(path.join(pgdata, 'PG_VERSION'))) await createCluster(pgdata);
  const db = await PGlite.create(pgdata, { startParams: START_PARAMS });
  // All socket connections share one PGlite session; BullMQ's startup option
  // `-c search_path=bullmq` is ignored by the socket, so the path is set here.
  // Our tables have no name in common with BullMQ's, and our migrations pin
  // `public` themselves.
  await db.exec('SET search_path TO bullmq, public');
  const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', maxConnections: 100 });
  keepProtocolCyclesTogether(server);
  await server.start();
  const [, boundPort] = server.getServerConn().split(':');
  const info: RunningFile = { pid: process.pid, port: Number(boundPort) };
  writeFileSync(runningFile(dataDir), JSON.stringify(info));
  return {
    url: `postgresql://postgres@127.0.0.1:${info.port}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
      rmSync(runningFile(dataDir), { force: true });
    },
  };
}

/**
 * A new database is made by a short-lived process of its own: initdb leaves
 * ~500 MB in the memory of the process that ran it, after its instance is
 * closed and even when it ran on a worker thread, and the hub would carry
 * that for its whole life. It is made beside the data folder and moved into
 * place, so an interrupted start leaves no half-made database behind.
 */
async function createCluster(pgdata: string): Promise<void> {
  const making = `${pgdata}.new`;
  rmSync(making, { recursive: true, force: true });
  // A CommonJS script: `import.meta.resolve` is missing where tests load this module, `require` is not.
  const script = `require('node:module').createRequire(${JSON.stringify(import.meta.url)})('@electric-sql/pglite').PGlite.create(${JSON.stringify(making)})
    .then((db) => db.close()).catch((error) => { console.error(error); process.exit(1); });`;
  try {
    await promisify(execFile)(process.execPath, ['-e', script]);
  } catch (error) {
    rmSync(making, { recursive: true, force: true });
    throw new Error(`could not create the embedded database in ${pgdata}: ${(error as { stderr?: string }).stderr || (error as Error).message}`);
  }
  renameSync(making, pgdata);
}

/**
 * A PGlite folder can only be opened by one process. When a hub is already
 * running on it, other commands (the CLI) connect to that hub's socket.
 */
export async function findRunningEmbeddedPostgres(dataDir: string): Promise<string | undefined> {
  const file = runningFile(dataDir);
  if (!existsSync(file)) return undefined;
  const info = JSON.parse(readFileSync(file, 'utf8')) as RunningFile;
  const answers = await new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: info.port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
  return answers ? `postgresql://postgres@127.0.0.1:${info.port}/postgres` : undefined;
}
