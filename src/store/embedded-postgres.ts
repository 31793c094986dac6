import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { usableCores } from './usable-cores.ts';

/**
 * The embedded default: PostgreSQL compiled to WASM (PGlite), persisted under
 * the data folder and served on a loopback port (src/store/pglite-server.mjs),
 * on a thread of its own when the process has more than one core.
 */
export interface EmbeddedPostgres {
  url: string;
  stop(): Promise<void>;
}

/** What a running hub leaves in the data folder for other commands (and for operators). */
interface RunningFile {
  pid: number;
  port: number;
  /** The operating system's ID of the database's thread in that process, when known. */
  databaseThread?: number;
}

const runningFile = (dataDir: string) => path.join(dataDir, 'embedded-postgres.json');

export interface EmbeddedPostgresOptions {
  /** The loopback port to serve on (0: any free one). */
  port?: number;
  /**
   * Whether the database runs on a thread of its own. By default it does
   * when the process may use more than one core (usableCores: its CPUs and
   * its container's CPU quota): on its own thread its WebAssembly runs
   * beside the API instead of between its requests (on two cores ~12 % more
   * saves, and a p99 at 1,000 saves/s of ~40 ms instead of ~70); on one core
   * every statement would become a switch between threads (half the saves).
   */
  ownThread?: boolean;
  /**
   * Called when the database's thread stops without being asked (PGlite
   * aborted): nothing the hub does can succeed after that. By default the
   * error is thrown, and the process ends as it does when PGlite aborts on
   * the hub's own thread.
   */
  onFailure?: (error: Error) => void;
}

/** The database being served, on this thread or its own. */
export interface Served {
  port: number;
  /** The operating system's ID of the database's own thread. */
  tid?: number;
  stop(): Promise<void>;
}

/** Opens (or first makes) the database under the data folder and serves it on a loopback port. */
export async function startEmbeddedPostgres(dataDir: string, options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgres> {
  mkdirSync(dataDir, { recursive: true });
  const pgdata = path.join(dataDir, 'pgdata');
  if (!existsSync(path.join(pgdata, 'PG_VERSION'))) await createCluster(pgdata);
  const port = options.port ?? 0;
  const served = (options.ownThread ?? usableCores() > 1) ? await serveOnOwnThread(pgdata, port, { onFailure: options.onFailure }) : await serveHere(pgdata, port);
  const info: RunningFile = { pid: process.pid, port: served.port, databaseThread: served.tid };
  writeFileSync(runningFile(dataDir), JSON.stringify(info));
  return {
    url: `postgresql://postgres@127.0.0.1:${info.port}/postgres`,
    async stop() {
      await served.stop();
      rmSync(runningFile(dataDir), { force: true });
    },
  };
}

async function serveHere(pgdata: string, port: number): Promise<Served> {
  // Loaded only here: on its own thread, PGlite's code is that thread's alone.
  const { servePGlite } = await import('./pglite-server.mjs');
  return servePGlite({ pgdata, port });
}

export interface OwnThreadOptions {
  /** See EmbeddedPostgresOptions.onFailure. */
  onFailure?: (error: Error) => void;
  /** How long a stop waits for the database to close before its thread is ended. */
  stopWaitMs?: number;
  /** The thread's script (tests give one that fails in a given way). */
  script?: URL;
}

/**
 * Serves the database on a thread of its own. The thread answers
 * `{ port, tid }` once it serves, and closes its port when told 'stop'.
 */
export async function serveOnOwnThread(pgdata: string, port: number, options: OwnThreadOptions = {}): Promise<Served> {
  const { onFailure, stopWaitMs = 10_000, script = new URL('./embedded-postgres-thread.mjs', import.meta.url) } = options;
  // No options of the hub's command line: they are the process's (V8's flags apply to every thread
  // anyway), and some are not a thread's (`--input-type` fails it).
  const thread = new Worker(script, { workerData: { pgdata, port }, execArgv: [] });
  const ready = await new Promise<{ port: number; tid?: number }>((resolve, reject) => {
    thread.once('message', resolve);
    thread.once('error', reject);
    thread.once('exit', (code) => reject(new Error(`its thread ended while starting (exit code ${code})`)));
  }).catch(async (error: Error) => {
    await thread.terminate();
    throw new Error(`could not open the embedded database in ${pgdata}: ${error.message}`);
  });
  thread.removeAllListeners();
  let stopping = false;
  let failure: Error | undefined;
  // Settled when the thread ends, asked or not: a stop after a failure has nothing to wait for.
  const ended = new Promise<void>((resolve) => thread.once('exit', () => resolve()));
  thread.on('error', (error) => (failure = error));
  thread.on('exit', (code) => {
    if (stopping) return;
    const error = new Error(`the embedded database in ${pgdata} stopped unexpectedly (exit code ${code}${failure ? `: ${failure.message}` : ''})`);
    if (onFailure) onFailure(error);
    else
      process.nextTick(() => {
        throw error;
      });
  });
  return {
    ...ready,
    async stop() {
      if (stopping) return;
      stopping = true;
      thread.postMessage('stop');
      // A database that cannot close (PGlite wedged) must not hold the hub's shutdown: the thread is ended.
      const timer = setTimeout(() => void thread.terminate(), stopWaitMs);
      await ended;
      clearTimeout(timer);
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
