import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { serveOnOwnThread, startEmbeddedPostgres } from '../../src/store/embedded-postgres.ts';
import { usableCores } from '../../src/store/usable-cores.ts';

describe('the embedded database', () => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'connector-embedded-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  async function query(url: string, text: string): Promise<Record<string, unknown>[]> {
    const client = new pg.Client(url);
    await client.connect();
    try {
      return (await client.query(text)).rows;
    } finally {
      await client.end();
    }
  }

  it('is made in a process of its own on a new data folder, so initdb memory is not the hub’s, and keeps its data across a restart', async () => {
    const before = process.memoryUsage().rss;
    const embedded = await startEmbeddedPostgres(dataDir);
    try {
      expect(existsSync(path.join(dataDir, 'pgdata', 'PG_VERSION'))).toBe(true);
      expect(readdirSync(dataDir)).not.toContain('pgdata.new');
      // Made in this process, the new instance's WebAssembly memory stays at ~630 MB after initdb;
      // opened on a made folder, PGlite holds ~140 MB (on its own thread or this one: both count in the process's RSS).
      expect((process.memoryUsage().rss - before) / 2 ** 20).toBeLessThan(400);
      await query(embedded.url, 'CREATE TABLE kept (note text); INSERT INTO kept VALUES ($$across a restart$$)');
    } finally {
      await embedded.stop();
    }
    const reopened = await startEmbeddedPostgres(dataDir);
    try {
      expect(await query(reopened.url, 'SELECT note FROM kept')).toEqual([{ note: 'across a restart' }]);
    } finally {
      await reopened.stop();
    }
  });

  it('runs on a thread of its own when asked (the default with more than one core), and says which in the data folder', async () => {
    const embedded = await startEmbeddedPostgres(dataDir, { ownThread: true });
    try {
      const running = JSON.parse(readFileSync(path.join(dataDir, 'embedded-postgres.json'), 'utf8'));
      expect(running.pid).toBe(process.pid);
      // A thread of this process that is not its main thread (whose ID is the process's).
      expect(running.databaseThread).not.toBe(process.pid);
      expect(existsSync(`/proc/${process.pid}/task/${running.databaseThread}`)).toBe(true);
      expect(await query(embedded.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    } finally {
      await embedded.stop();
    }
    // Stopped: the thread is gone and the folder no longer names a running database.
    expect(existsSync(path.join(dataDir, 'embedded-postgres.json'))).toBe(false);
  });

  it('runs on the hub’s thread when asked (the default on one core), on the same data', async () => {
    const embedded = await startEmbeddedPostgres(dataDir, { ownThread: false });
    try {
      const running = JSON.parse(readFileSync(path.join(dataDir, 'embedded-postgres.json'), 'utf8'));
      expect(running).toEqual({ pid: process.pid, port: Number(new URL(embedded.url).port) });
      expect(await query(embedded.url, 'SELECT note FROM kept')).toEqual([{ note: 'across a restart' }]);
    } finally {
      await embedded.stop();
    }
  });

  it('by default takes a thread of its own only when the process may use more than one core', () => {
    // A process pinned to one core (as `taskset -c 0` or a one-CPU container pins it) and one that is not.
    const script = `const { startEmbeddedPostgres } = await import(${JSON.stringify(pathToFileURL(path.resolve('src/store/embedded-postgres.ts')).href)});
      const embedded = await startEmbeddedPostgres(process.argv[1]);
      console.log(JSON.stringify(JSON.parse((await import('node:fs')).readFileSync(process.argv[1] + '/embedded-postgres.json', 'utf8'))));
      await embedded.stop();`;
    const run = (pinned: boolean) => {
      const args = ['--import', 'tsx', '--input-type=module', '-e', script, dataDir];
      const out = pinned ? execFileSync('taskset', ['-c', '0', process.execPath, ...args], { encoding: 'utf8' }) : execFileSync(process.execPath, args, { encoding: 'utf8' });
      return JSON.parse(out.trim().split('\n').at(-1)!) as { databaseThread?: number };
    };
    expect(run(true).databaseThread).toBeUndefined();
    if (usableCores() > 1) expect(run(false).databaseThread).toEqual(expect.any(Number));
  });

  it('a start on the hub’s thread that cannot take its port fails with the reason, and closes the database it opened', async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const close = vi.spyOn(PGlite.prototype, 'close');
    try {
      const port = (taken.address() as net.AddressInfo).port;
      await expect(startEmbeddedPostgres(dataDir, { port, ownThread: false })).rejects.toThrow(/EADDRINUSE/);
      expect(close).toHaveBeenCalledTimes(1);
    } finally {
      close.mockRestore();
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('a folder that holds no usable database fails the start with its path, and leaves no thread running', async () => {
    const broken = mkdtempSync(path.join(os.tmpdir(), 'connector-embedded-broken-'));
    try {
      mkdirSync(path.join(broken, 'pgdata'));
      writeFileSync(path.join(broken, 'pgdata', 'PG_VERSION'), 'not a version\n');
      const threads = readdirSync(`/proc/${process.pid}/task`).length;
      await expect(startEmbeddedPostgres(broken, { ownThread: true })).rejects.toThrow(`could not open the embedded database in ${path.join(broken, 'pgdata')}`);
      await new Promise((r) => setTimeout(r, 200));
      expect(readdirSync(`/proc/${process.pid}/task`).length).toBeLessThanOrEqual(threads);
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });

  it('closes a connection that breaks the protocol, before PGlite sees it, and goes on serving the others', async () => {
    const embedded = await startEmbeddedPostgres(dataDir);
    try {
      const port = Number(new URL(embedded.url).port);
      /** Sends the messages one after another and resolves when the server closes the connection (or after 5 s: false). */
      const closedAfter = (messages: Buffer[]) =>
        new Promise<boolean>((resolve) => {
          const socket = net.connect(port, '127.0.0.1', async () => {
            for (const m of messages) {
              socket.write(m);
              await new Promise((r) => setTimeout(r, 100));
            }
          });
          const timer = setTimeout(() => (socket.destroy(), resolve(false)), 5_000);
          socket.on('close', () => (clearTimeout(timer), resolve(true)));
          socket.on('error', () => undefined);
          // Read what the server answers: an unread answer holds back the end that follows it.
          socket.resume();
        });
      const startup = (params: string) => {
        const body = Buffer.from(params, 'latin1');
        const head = Buffer.alloc(8);
        head.writeInt32BE(8 + body.length, 0);
        head.writeInt32BE(196608, 4);
        return Buffer.concat([head, body]);
      };
      // A startup without a user name: it ended PGlite's one session for every later connection.
      expect(await closedAfter([startup('\0')])).toBe(true);
      expect(await query(embedded.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
      // A message type no client sends, after a proper startup: PGlite answered FATAL without end.
      expect(await closedAfter([startup('user\0postgres\0database\0postgres\0\0'), Buffer.from([0x5a, 0, 0, 0, 4])])).toBe(true);
      expect(await query(embedded.url, 'SELECT 2 AS two')).toEqual([{ two: 2 }]);
      // A password nobody asked for (PGlite trusts every connection), and a query whose length field is negative.
      const proper = startup('user\0postgres\0database\0postgres\0\0');
      expect(await closedAfter([proper, Buffer.from('p\0\0\0\x0bsecret\0', 'latin1')])).toBe(true);
      expect(await closedAfter([proper, Buffer.from([0x51, 0xff, 0xff, 0xff, 0xf0, 0x41, 0x41, 0x41])])).toBe(true);
      expect(await query(embedded.url, 'SELECT 3 AS three')).toEqual([{ three: 3 }]);
    } finally {
      await embedded.stop();
    }
  });

  it('runs with 16 MB of shared buffers (not PGlite’s 128 MB) and without sequential scans, set at each start', async () => {
    const embedded = await startEmbeddedPostgres(dataDir);
    try {
      expect(await query(embedded.url, 'SHOW shared_buffers')).toEqual([{ shared_buffers: '16MB' }]);
      expect(await query(embedded.url, 'SHOW enable_seqscan')).toEqual([{ enable_seqscan: 'off' }]);
      expect(await query(embedded.url, 'SHOW wal_init_zero')).toEqual([{ wal_init_zero: 'off' }]);
      // The data folder's own settings (timezone, datestyle, ...) are still there.
      expect(await query(embedded.url, "SELECT count(*)::int AS n FROM pg_settings WHERE source = 'configuration file'")).not.toEqual([{ n: 0 }]);
    } finally {
      await embedded.stop();
    }
  });
});

describe('the embedded database’s own thread, when it fails', () => {
  const fake = new URL('../support/fake-database-thread.mjs', import.meta.url);

  it('a thread that ends while the hub runs is reported with its exit code, once, and a stop after it returns at once', async () => {
    const failures: Error[] = [];
    const served = await serveOnOwnThread('dies', 5999, { script: fake, stopWaitMs: 60_000, onFailure: (error) => failures.push(error) });
    expect(served.port).toBe(5999);
    await vi.waitFor(() => expect(failures).toHaveLength(1));
    expect(failures[0].message).toBe('the embedded database in dies stopped unexpectedly (exit code 3)');
    // The hub shutting down after the failure: nothing to wait for (it used to wait for an end already past).
    const started = performance.now();
    await served.stop();
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(failures).toHaveLength(1);
  });

  it('a thread that throws is reported with its error', async () => {
    const failures: Error[] = [];
    await serveOnOwnThread('throws', 5999, { script: fake, onFailure: (error) => failures.push(error) });
    await vi.waitFor(() => expect(failures).toHaveLength(1));
    expect(failures[0].message).toMatch(/^the embedded database in throws stopped unexpectedly \(exit code 1: RuntimeError: unreachable \(PGlite aborted\)\)$/);
  });

  it('without a handler, a thread that ends takes the process down with the reason (a supervisor restarts the hub)', () => {
    const script = `const { serveOnOwnThread } = await import(${JSON.stringify(pathToFileURL(path.resolve('src/store/embedded-postgres.ts')).href)});
      await serveOnOwnThread('dies', 5999, { script: new URL(${JSON.stringify(fake.href)}) });
      setTimeout(() => console.log('still running'), 5000);`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(run.status).not.toBe(0);
    expect(run.stdout).not.toContain('still running');
    expect(run.stderr).toContain('the embedded database in dies stopped unexpectedly (exit code 3)');
  });

  it('a stop the thread does not answer ends the thread after the wait, and is not reported as a failure', async () => {
    const failures: Error[] = [];
    const served = await serveOnOwnThread('wedged', 5999, { script: fake, stopWaitMs: 300, onFailure: (error) => failures.push(error) });
    const started = performance.now();
    // stop() returns once the thread has ended ('exit'): the wedged one only when it is terminated.
    await served.stop();
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(290);
    expect(waited).toBeLessThan(10_000);
    expect(failures).toEqual([]);
  });

  it('a stop the thread answers does not wait', async () => {
    const served = await serveOnOwnThread('stops', 5999, { script: fake, stopWaitMs: 60_000 });
    const started = performance.now();
    await served.stop();
    expect(performance.now() - started).toBeLessThan(10_000);
  });
});
