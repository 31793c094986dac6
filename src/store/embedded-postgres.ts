import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
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

export async function startEmbeddedPostgres(dataDir: string, port = 0): Promise<EmbeddedPostgres> {
  mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(path.join(dataDir, 'pgdata'));
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
