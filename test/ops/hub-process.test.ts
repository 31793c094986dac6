import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { generateKey } from '../../src/security/secret-box.ts';
import { freshDatabase } from '../support/fresh-database.ts';
import { runCli, startHubProcess } from '../support/hub-process.ts';

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'connector-ops-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const token = randomBytes(24).toString('hex');
const turnupFile = (dir: string, provider: string) => {
  const file = path.join(dir, 'turnup.yaml');
  writeFileSync(
    file,
    `providers:
  - code: ${provider}
    name: Ops test
    credentials:
      - type: token
        token: \${OPS_TOKEN}
clients:
  - code: ops-${provider.toLowerCase()}
    name: Ops client
    clubs: [{ code: main, name: Main }]
    providers:
      - provider: ${provider}
        clientId: "456"
        clubs: { main: "123" }
`,
  );
  return file;
};
const userBody = (provider: string) =>
  `<user><providerInfo><identifier>${provider}</identifier><clientID>456</clientID><clubID>123</clubID><recordID>r1</recordID></providerInfo><userInfo><firstname>Pete</firstname><userStatus>ACTIVE</userStatus><userType>PROSPECT</userType></userInfo></user>`;

async function saveAndFetch(url: string, provider: string) {
  const saved = await fetch(`${url}/connector/api/2011-11/user`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/xml' },
    body: userBody(provider),
  });
  expect(saved.status).toBe(200);
}

async function fetchUser(url: string, provider: string) {
  return fetch(`${url}/connector/api/2011-11/user?provider=${provider}&client_id=456&club_id=123&recordID=r1`, {
    headers: { Authorization: `Bearer ${token}` },
  });
}

/** The API cluster's workers: child processes of the primary running the connector command, from /proc. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const isChild = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      if (isChild && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('connector.js')) children.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return children;
}

/** Waits for a condition; one that throws (a refused connection while a process starts) is not met yet. */
async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await Promise.resolve().then(condition).catch(() => false))) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the hub as a process', () => {
  it.runIf(inject('databaseKind') === 'pglite')(
    'starts on the embedded default with no configuration, takes turn-up from the CLI while running, keeps data across a SIGTERM restart',
    async () => {
      const dataDir = tempDir();
      const provider = `OPS_${randomBytes(3).toString('hex').toUpperCase()}`;
      const env = { CONNECTOR_DATA_DIR: dataDir, OPS_TOKEN: token };
      const hub = await startHubProcess(env);
      expect((await fetch(`${hub.url}/health`)).status).toBe(200);
      expect((await fetch(`${hub.url}/ready`)).status).toBe(200);
      // The CLI reaches the running hub's embedded database through its socket.
      const applied = await runCli(['turnup', 'apply', turnupFile(dataDir, provider)], env);
      expect(applied.stderr).toBe('');
      expect(applied.stdout).toContain(`created   provider   ${provider}`);
      await saveAndFetch(hub.url, provider);
      hub.child.kill('SIGTERM');
      expect(await hub.exited).toBe(0);
      expect(hub.logs.some((l) => l.includes('"stopped"') || l.includes('stopped'))).toBe(true);
      expect(existsSync(path.join(dataDir, 'embedded-postgres.json'))).toBe(false);

      const again = await startHubProcess(env);
      const res = await fetchUser(again.url, provider);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('<firstname>Pete</firstname>');
      again.child.kill('SIGTERM');
      expect(await again.exited).toBe(0);
    },
    120_000,
  );

  it('runs on DATABASE_URL, migrating it at start, and refuses a key that cannot read the stored credentials', async () => {
    const dataDir = tempDir();
    const provider = `OPS_${randomBytes(3).toString('hex').toUpperCase()}`;
    const env = { DATABASE_URL: inject('databaseUrl'), CONNECTOR_DATA_DIR: dataDir, OPS_TOKEN: token, CONNECTOR_ADMIN_TOKEN: 'a'.repeat(32) };
    const key = inject('encryptionKey');
    const applied = await runCli(['turnup', 'apply', turnupFile(dataDir, provider)], { ...env, CONNECTOR_ENCRYPTION_KEY: key });
    expect(applied.code).toBe(0);
    const hub = await startHubProcess({ ...env, CONNECTOR_ENCRYPTION_KEY: key });
    await saveAndFetch(hub.url, provider);
    expect((await fetchUser(hub.url, provider)).status).toBe(200);
    hub.child.kill('SIGTERM');
    expect(await hub.exited).toBe(0);

    const wrongKey = await runCli(['start'], { ...env, PORT: '0', CONNECTOR_ENCRYPTION_KEY: generateKey() });
    expect(wrongKey.code).toBe(2);
    expect(wrongKey.stderr).toContain('CONNECTOR_ENCRYPTION_KEY cannot decrypt the credentials stored in this database');
  }, 120_000);

  it('on SIGTERM answers every request in flight (saved, or 503 to retry), never a 500, and exits 0', async () => {
    const dataDir = tempDir();
    const provider = `OPS_${randomBytes(3).toString('hex').toUpperCase()}`;
    // A token of its own: a token belongs to one provider, and the other tests' provider holds `token`.
    const drainToken = randomBytes(24).toString('hex');
    const env = { DATABASE_URL: inject('databaseUrl'), CONNECTOR_DATA_DIR: dataDir, OPS_TOKEN: drainToken, CONNECTOR_ADMIN_TOKEN: 'a'.repeat(32), CONNECTOR_ENCRYPTION_KEY: inject('encryptionKey') };
    expect((await runCli(['turnup', 'apply', turnupFile(dataDir, provider)], env)).code).toBe(0);
    const hub = await startHubProcess(env, 'api');
    const body = (i: number) => userBody(provider).replace('<recordID>r1</recordID>', `<recordID>drain-${i}</recordID>`);
    // 20 clients posting one record after another; SIGTERM lands while they are mid-request.
    const statuses: (number | 'not accepted')[] = [];
    let next = 0;
    const client = async () => {
      for (;;) {
        const i = next++;
        try {
          const res = await fetch(`${hub.url}/connector/api/2011-11/user`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${drainToken}`, 'Content-Type': 'application/xml' },
            body: body(i),
            signal: AbortSignal.timeout(10_000),
          });
          statuses.push(res.status);
          if (res.status === 503) return;
        } catch {
          // The listener is gone: the request was never taken (a client retries it elsewhere).
          statuses.push('not accepted');
          return;
        }
      }
    };
    const clients = Array.from({ length: 20 }, client);
    await new Promise((r) => setTimeout(r, 400));
    hub.child.kill('SIGTERM');
    await Promise.all(clients);
    expect(statuses.filter((s) => s !== 200 && s !== 503 && s !== 'not accepted')).toEqual([]);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThan(0);
    expect(await hub.exited, hub.logs.slice(-20).join('\n')).toBe(0);
  }, 120_000);

  // PostgreSQL only: the embedded PGlite has no autovacuum to ask about.
  it.runIf(inject('databaseKind') === 'postgres')('warns at start when PostgreSQL does not analyze its tables (autovacuum off), and only then', async () => {
    const env = { DATABASE_URL: inject('databaseUrl'), CONNECTOR_DATA_DIR: tempDir(), CONNECTOR_ADMIN_TOKEN: 'a'.repeat(32), CONNECTOR_ENCRYPTION_KEY: inject('encryptionKey') };
    const db = new pg.Client({ connectionString: inject('databaseUrl') });
    await db.connect();
    const { rows } = await db.query(`SELECT current_setting('autovacuum') AS autovacuum`).finally(() => db.end());
    const hub = await startHubProcess(env, 'api');
    hub.child.kill('SIGTERM');
    expect(await hub.exited).toBe(0);
    const warned = hub.logs.some((l) => l.includes('"level":40') && l.includes('PostgreSQL autovacuum is off'));
    expect(warned).toBe(rows[0].autovacuum === 'off');
  }, 60_000);

  // PostgreSQL only: the test holds a lock from a session of its own, and PGlite serves one session.
  it.runIf(inject('databaseKind') === 'postgres')(
    'on SIGTERM finishes a save whose client gave up mid-request before it closes the database',
    async () => {
      // A database of its own: the test locks a whole table, which must not stall the other tests.
      const database = await freshDatabase(inject('databaseUrl'), 'connector_abandon');
      const dataDir = tempDir();
      const provider = `OPS_${randomBytes(3).toString('hex').toUpperCase()}`;
      const abandonToken = randomBytes(24).toString('hex');
      const env = { DATABASE_URL: database.url, CONNECTOR_DATA_DIR: dataDir, OPS_TOKEN: abandonToken, CONNECTOR_ADMIN_TOKEN: 'a'.repeat(32), CONNECTOR_ENCRYPTION_KEY: inject('encryptionKey') };
      const db = new pg.Client({ connectionString: database.url });
      let hub: Awaited<ReturnType<typeof startHubProcess>> | undefined;
      try {
        expect((await runCli(['turnup', 'apply', turnupFile(dataDir, provider)], env)).code).toBe(0);
        hub = await startHubProcess(env, 'api');
        const post = (firstname: string, signal?: AbortSignal) =>
          fetch(`${hub!.url}/connector/api/2011-11/user`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${abandonToken}`, 'Content-Type': 'application/xml' },
            body: userBody(provider).replace('Pete', firstname),
            signal,
          });
        expect((await post('Pete')).status).toBe(200);
        await db.connect();
        // The save's first write waits behind the test's lock; its second is issued only once the lock is gone.
        await db.query('BEGIN');
        await db.query('LOCK TABLE user_record IN EXCLUSIVE MODE');
        const client = new AbortController();
        const abandoned = post('Peter', client.signal).catch(() => 'gave up');
        await until(async () => (await db.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))')).rows[0].n > 0);
        client.abort();
        expect(await abandoned).toBe('gave up');
        await new Promise((r) => setTimeout(r, 200));
        hub.child.kill('SIGTERM');
        await new Promise((r) => setTimeout(r, 300));
        await db.query('COMMIT');
        expect(await hub.exited).toBe(0);
        const stored = await db.query('SELECT firstname FROM user_record');
        expect(stored.rows).toEqual([{ firstname: 'Peter' }]);
        expect(hub.logs.filter((l) => /"level":(50|60)/.test(l))).toEqual([]);
      } finally {
        await db.end().catch(() => {});
        if (hub && hub.child.exitCode === null) hub.child.kill('SIGKILL');
        await database.drop();
      }
    },
    120_000,
  );

  it.runIf(inject('databaseKind') === 'postgres')(
    'runs the API in CONNECTOR_API_PROCESSES processes on one port, replaces one that dies, and stops them all on SIGTERM',
    async () => {
      const dataDir = tempDir();
      const provider = `OPS_${randomBytes(3).toString('hex').toUpperCase()}`;
      const clusterToken = randomBytes(24).toString('hex');
      const env = { DATABASE_URL: inject('databaseUrl'), CONNECTOR_DATA_DIR: dataDir, OPS_TOKEN: clusterToken, CONNECTOR_ADMIN_TOKEN: 'a'.repeat(32), CONNECTOR_ENCRYPTION_KEY: inject('encryptionKey') };
      expect((await runCli(['turnup', 'apply', turnupFile(dataDir, provider)], env)).code).toBe(0);
      const hub = await startHubProcess({ ...env, CONNECTOR_API_PROCESSES: '2' }, 'api');
      try {
        // Both listening before one is killed: with PORT=0 the port lives as long as one process listens on it.
        const listening = () => hub.logs.filter((l) => l.includes('Connector API listening')).length;
        await until(() => listening() === 2);
        const first = childrenOf(hub.child.pid!);
        const post = (i: number) =>
          fetch(`${hub.url}/connector/api/2011-11/user`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${clusterToken}`, 'Content-Type': 'application/xml', Connection: 'close' },
            body: userBody(provider).replace('<recordID>r1</recordID>', `<recordID>cluster-${i}</recordID>`),
          }).then((r) => r.status);
        expect(await Promise.all(Array.from({ length: 20 }, (_, i) => post(i)))).toEqual(Array(20).fill(200));

        process.kill(first[0], 'SIGKILL');
        await until(() => {
          const now = childrenOf(hub.child.pid!);
          return now.length === 2 && !now.includes(first[0]) && listening() === 3;
        });
        await until(async () => (await fetch(`${hub.url}/ready`, { headers: { Connection: 'close' } })).status === 200);
        expect(await Promise.all(Array.from({ length: 20 }, (_, i) => post(100 + i)))).toEqual(Array(20).fill(200));
        expect(hub.logs.some((l) => l.includes('an API process died; starting another'))).toBe(true);

        const last = childrenOf(hub.child.pid!);
        hub.child.kill('SIGTERM');
        expect(await hub.exited).toBe(0);
        expect(last.filter((pid) => existsSync(`/proc/${pid}`))).toEqual([]);
      } finally {
        // A failed assertion must not leave the processes running: the primary and its workers.
        for (const pid of [...childrenOf(hub.child.pid!), hub.child.pid!]) if (existsSync(`/proc/${pid}`)) process.kill(pid, 'SIGKILL');
      }
    },
    120_000,
  );

  it.runIf(inject('databaseKind') === 'postgres')('stops with an error, instead of forking forever, when its API processes cannot start', async () => {
    const res = await runCli(['api'], {
      DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/unreachable',
      CONNECTOR_ENCRYPTION_KEY: inject('encryptionKey'),
      CONNECTOR_API_PROCESSES: '2',
      PORT: '0',
    });
    expect(res.code).not.toBe(0);
    expect(res.stdout + res.stderr).toContain('an API process exited before it listened');
  }, 60_000);

  it('refuses to start on invalid configuration, naming each bad variable', async () => {
    const res = await runCli(['start'], { PORT: 'eighty', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://x' });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('PORT');
    expect(res.stderr).toContain('LOG_LEVEL');
    expect(res.stderr).toContain('DATABASE_URL: must be a postgresql:// connection URL');
  }, 60_000);

  it('requires an encryption key when DATABASE_URL is set', async () => {
    const res = await runCli(['start'], { DATABASE_URL: 'postgresql://127.0.0.1:1/x', CONNECTOR_ENCRYPTION_KEY: '' });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('CONNECTOR_ENCRYPTION_KEY: required when DATABASE_URL is set');
  }, 60_000);
});
