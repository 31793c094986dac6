import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { REASONS } from '../../src/errors/catalogue.ts';
import { createPrisma } from '../../src/store/database.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/store/embedded-postgres.ts';
import { API, createTestHub, turnUpTenant, userXml, type Tenant, type TestHub } from '../support/test-hub.ts';
import { freshDatabase } from '../support/fresh-database.ts';
import { errorOf, xml } from '../support/xml.ts';

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, '../..');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const hub = createTestHub();
let tenant: Tenant;
let other: Tenant;

/** Every error answered by a hub whose database works, to check each was stored. */
const answered: { errorUUID: string; reason: string; status: number }[] = [];
/** Reasons seen through the API, to check the catalogue is covered. */
const reached = new Set<string>();

beforeAll(async () => {
  tenant = await turnUpTenant(hub);
  other = await turnUpTenant(hub);
});
afterAll(() => hub.close());

const member = { userStatus: 'ACTIVE', userType: 'MEMBER', firstname: 'Ada' };
const fetchPath = (t: Pick<Tenant, 'provider' | 'client' | 'clubs'>, recordID: string) =>
  `${API}/user?provider=${t.provider}&client_id=${t.client}&club_id=${t.clubs[0]}&recordID=${encodeURIComponent(recordID)}`;

/**
 * Checks the seed <error> envelope (namespace, reason, errorUUID, a sentence
 * without a stack trace) and returns it. `stored: false` for hubs whose
 * database is broken on purpose.
 */
function expectError(res: request.Response, status: number, reason: string, options: { stored?: boolean } = {}) {
  expect(res.status, res.text).toBe(status);
  expect(res.type).toBe('application/xml');
  const error = errorOf(res.text);
  expect(error.reason).toBe(reason);
  expect(error.errorUUID).toMatch(UUID);
  expect(error.message).toMatch(/^[A-Z<a-z].{10,}/);
  expect(error.message).not.toMatch(/\bat .+\(.*:\d+:\d+\)|\n\s+at /);
  reached.add(reason);
  if (options.stored !== false) answered.push({ errorUUID: error.errorUUID, reason, status });
  return error;
}

const postUser = (target: TestHub, auth: string, body: string) =>
  request(target.server).post(`${API}/user`).set('Authorization', auth).set('Content-Type', 'application/xml').send(body);

describe('VALIDATION', () => {
  it('an invalid field answers 400 VALIDATION naming the field', async () => {
    const res = await postUser(hub, tenant.auth, userXml(tenant, `v-${randomUUID()}`, { ...member, country: 'USA' }));
    expect(expectError(res, 400, 'VALIDATION').message).toContain('userInfo/country');
  });

  it('PUT and DELETE on /user answer 405 with an Allow header', async () => {
    for (const method of ['put', 'delete'] as const) {
      const res = await request(hub.server)[method](`${API}/user`).set('Authorization', tenant.auth);
      expect(expectError(res, 405, 'VALIDATION').message).toContain(method.toUpperCase());
      expect(res.headers.allow).toBe('GET, POST');
    }
  });

  it('Accept: text/csv answers 406 naming the formats the API speaks', async () => {
    const get = await request(hub.server).get(fetchPath(tenant, 'anything')).set('Authorization', tenant.auth).set('Accept', 'text/csv');
    expect(expectError(get, 406, 'VALIDATION').message).toMatch(/application\/xml or application\/json/);
    const post = await postUser(hub, tenant.auth, userXml(tenant, `v-${randomUUID()}`, member)).set('Accept', 'text/csv');
    expectError(post, 406, 'VALIDATION');
  });
});

describe('NOT_FOUND', () => {
  it('an unknown recordID answers 404 NOT_FOUND naming the recordID', async () => {
    const res = await request(hub.server).get(fetchPath(tenant, 'no-such-record')).set('Authorization', tenant.auth);
    expect(expectError(res, 404, 'NOT_FOUND').message).toContain("'no-such-record'");
  });

  it('an unknown path answers 404 NOT_FOUND, inside and outside the API', async () => {
    const outside = await request(hub.server).get('/no/such/path');
    expect(expectError(outside, 404, 'NOT_FOUND').message).toContain('/no/such/path');
    const inside = await request(hub.server).get(`${API}/members`).set('Authorization', tenant.auth);
    expectError(inside, 404, 'NOT_FOUND');
  });
});

describe('AUTHENTICATION', () => {
  it.each([
    ['no Authorization header', undefined],
    ['a wrong bearer token', `Bearer ${randomBytes(24).toString('hex')}`],
    ['a malformed Authorization header', 'Token abc'],
  ])('%s answers 401 AUTHENTICATION with a WWW-Authenticate challenge', async (_name, auth) => {
    let req = request(hub.server).get(fetchPath(tenant, 'x'));
    if (auth) req = req.set('Authorization', auth);
    const res = await req;
    expectError(res, 401, 'AUTHENTICATION');
    expect(res.headers['www-authenticate']).toMatch(/Bearer realm="connector"/);
    expect(res.headers['www-authenticate']).toMatch(/Basic realm="connector"/);
  });

  it('a right username with a wrong Basic password answers 401 AUTHENTICATION', async () => {
    const wrong = `Basic ${Buffer.from(`${tenant.username}:${tenant.password}x`).toString('base64')}`;
    const res = await request(hub.server).get(fetchPath(tenant, 'x')).set('Authorization', wrong);
    expectError(res, 401, 'AUTHENTICATION');
    expect(res.headers['www-authenticate']).toMatch(/Basic/);
    // The right password works, so the 401 was about the password.
    const right = await request(hub.server).get(fetchPath(tenant, 'x')).set('Authorization', tenant.basicAuth);
    expect(right.status).toBe(404);
  });
});

describe('FORBIDDEN', () => {
  it("another provider's identifier answers 403 FORBIDDEN", async () => {
    const body = userXml({ ...tenant, provider: other.provider }, `f-${randomUUID()}`, member);
    const res = await postUser(hub, tenant.auth, body);
    expect(expectError(res, 403, 'FORBIDDEN').message).toContain(`belong to provider ${tenant.provider}, not ${other.provider}`);
  });

  it('a club that is not granted answers 403 FORBIDDEN', async () => {
    const res = await postUser(hub, tenant.auth, userXml(tenant, `f-${randomUUID()}`, member, '', 'not-my-club'));
    expect(expectError(res, 403, 'FORBIDDEN').message).toContain("'not-my-club'");
  });

  it("another tenant's real client answers exactly like a client that does not exist, so nothing leaks", async () => {
    const recordID = `f-${randomUUID()}`;
    const foreign = await postUser(hub, tenant.auth, userXml({ ...tenant, client: other.client }, recordID, member, '', other.clubs[0]));
    const missingClient = `C-${randomUUID().slice(0, 8)}`;
    const missingClub = `K1-${randomUUID().slice(0, 8)}`;
    const missing = await postUser(hub, tenant.auth, userXml({ ...tenant, client: missingClient }, recordID, member, '', missingClub));
    const a = expectError(foreign, 403, 'FORBIDDEN').message;
    const b = expectError(missing, 403, 'FORBIDDEN').message;
    expect(a.replace(other.client, '<client>').replace(other.clubs[0], '<club>')).toBe(b.replace(missingClient, '<client>').replace(missingClub, '<club>'));
    expect(a).not.toContain(other.provider);
    expect(a).not.toContain(other.clientCode);
    expect(await hub.prisma.link.count({ where: { externalId: recordID } })).toBe(0);
  });
});

describe('CONFLICT', () => {
  it('an update whose modifiedDate is older than the stored one answers 409 CONFLICT and changes nothing', async () => {
    const recordID = `c-${randomUUID()}`;
    const newer = await postUser(hub, tenant.auth, userXml(tenant, recordID, { ...member, modifiedDate: '2020-01-02T00:00:00Z' }));
    expect(newer.status, newer.text).toBe(200);
    const stale = await postUser(hub, tenant.auth, userXml(tenant, recordID, { ...member, firstname: 'Stale', modifiedDate: '2020-01-01T00:00:00Z' }));
    expect(expectError(stale, 409, 'CONFLICT').message).toMatch(/not applied/);
    const fetched = await request(hub.server).get(fetchPath(tenant, recordID)).set('Authorization', tenant.auth);
    expect(xml(fetched.text).user.userInfo.firstname).toBe('Ada');
  });
});

describe('RATE_LIMITED', () => {
  it('a provider sending faster than its agreed rate gets 429 RATE_LIMITED with Retry-After', async () => {
    const limited = await turnUpTenant(hub, { rateLimitPerSecond: 2 });
    const responses = await Promise.all(
      Array.from({ length: 10 }, () => request(hub.server).get(fetchPath(limited, 'nobody')).set('Authorization', limited.auth)),
    );
    const refused = responses.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThanOrEqual(3);
    expect(responses.filter((r) => r.status === 404).length).toBeGreaterThanOrEqual(1);
    for (const res of refused) {
      expect(expectError(res, 429, 'RATE_LIMITED').message).toContain('2 requests per second');
      expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    }
  });
});

describe('DATABASE', () => {
  let broken: TestHub;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    // A database without the hub's tables: the first query (the credential lookup) fails.
    if (inject('databaseKind') === 'pglite') {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'connector-empty-'));
      const embedded: EmbeddedPostgres = await startEmbeddedPostgres(dir);
      broken = createTestHub({ databaseUrl: embedded.url });
      cleanup = async () => {
        await broken.close();
        await embedded.stop();
        rmSync(dir, { recursive: true, force: true });
      };
    } else {
      const empty = await freshDatabase(inject('databaseUrl'), `connector_empty_${process.pid}`, { migrate: false });
      broken = createTestHub({ databaseUrl: empty.url });
      cleanup = async () => {
        await broken.close();
        await empty.drop();
      };
    }
  });
  afterAll(() => cleanup?.());

  it('a database that refuses the query answers 500 DATABASE without internals in the message', async () => {
    const res = await postUser(broken, tenant.auth, userXml(tenant, `d-${randomUUID()}`, member));
    const error = expectError(res, 500, 'DATABASE', { stored: false });
    expect(error.message).not.toMatch(/provider_credential|relation|Prisma|does not exist/i);
    expect(error.message).toContain('errorUUID');
  });
});

describe('UNAVAILABLE', () => {
  const down = createTestHub({ databaseUrl: 'postgresql://postgres@127.0.0.1:1/postgres' });
  afterAll(() => down.close());

  it('a database nobody answers on answers 503 UNAVAILABLE with Retry-After', async () => {
    const res = await postUser(down, tenant.auth, userXml(tenant, `u-${randomUUID()}`, member));
    const error = expectError(res, 503, 'UNAVAILABLE', { stored: false });
    expect(error.message).toMatch(/retry/i);
    expect(error.message).not.toMatch(/ECONNREFUSED|127\.0\.0\.1/);
    expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
  });

  describe('a hub whose pool stays taken longer than the wait for a connection', () => {
    // One connection per pool, and a wait of 1 s instead of POOL_WAIT_MS (10 s).
    const busy = createTestHub({ poolSize: 1, poolWaitMs: 1_000 });
    afterAll(() => busy.close());

    it('answers a save 503 UNAVAILABLE after the wait instead of holding the request, and saves again once a connection is free', async () => {
      const held = await busy.store.pool.connect();
      const recordID = `busy-${randomUUID()}`;
      let res: request.Response;
      const started = performance.now();
      try {
        res = await postUser(busy, tenant.auth, userXml(tenant, recordID, member));
      } finally {
        held.release();
      }
      const waited = performance.now() - started;
      expect(waited).toBeGreaterThanOrEqual(990);
      expect(waited).toBeLessThan(5_000);
      const error = expectError(res, 503, 'UNAVAILABLE', { stored: false });
      expect(res.headers['retry-after']).toMatch(/^[1-9]\d*$/);
      expect(await hub.prisma.link.count({ where: { externalId: recordID } })).toBe(0);
      // The error's record is stored without holding the answer (the API's pool was free here).
      await vi.waitFor(async () => expect((await hub.prisma.errorRecord.findUnique({ where: { errorUuid: error.errorUUID } }))?.httpStatus).toBe(503), { timeout: 10_000 });
      expect((await postUser(busy, tenant.auth, userXml(tenant, recordID, member))).status).toBe(200);
    });

    it('answers any request 503 UNAVAILABLE after one wait when the pool that authenticates it stays taken, stores the error once it can, and serves again', async () => {
      let began!: () => void;
      const inside = new Promise<void>((resolve) => (began = resolve));
      let free!: () => void;
      const released = new Promise<void>((resolve) => (free = resolve));
      const holding = busy.prisma.$transaction(
        async (tx) => {
          await tx.$queryRaw`SELECT 1`;
          began();
          await released;
        },
        { timeout: 30_000 },
      );
      // A transaction that fails to start fails the test here, with its reason.
      await Promise.race([inside, holding]);
      let res: request.Response;
      const started = performance.now();
      try {
        res = await request(busy.server).get(fetchPath(tenant, 'anyone')).set('Authorization', tenant.auth);
      } finally {
        free();
        await holding;
      }
      // One wait for authentication; the error's record waits on its own, not in front of the answer.
      const waited = performance.now() - started;
      expect(waited).toBeGreaterThanOrEqual(990);
      expect(waited).toBeLessThan(1_900);
      const error = expectError(res, 503, 'UNAVAILABLE', { stored: false });
      await vi.waitFor(async () => expect((await hub.prisma.errorRecord.findUnique({ where: { errorUuid: error.errorUUID } }))?.httpStatus).toBe(503), { timeout: 10_000 });
      expect((await request(busy.server).get(fetchPath(tenant, 'anyone')).set('Authorization', tenant.auth)).status).toBe(404);
    });
  });
});

describe('UNKNOWN', () => {
  const exploding = createTestHub({
    clock: () => {
      throw new Error('boom');
    },
  });
  afterAll(() => exploding.close());

  it('an unexpected failure answers 500 UNKNOWN; the message hides it, the stored record keeps it', async () => {
    const recordID = `x-${randomUUID()}`;
    const res = await postUser(exploding, tenant.auth, userXml(tenant, recordID, member));
    const error = expectError(res, 500, 'UNKNOWN');
    expect(error.message).not.toContain('boom');
    expect(error.message).not.toMatch(/\bat /);
    expect(res.text).not.toContain('boom');
    const stored = await hub.prisma.errorRecord.findUniqueOrThrow({ where: { errorUuid: error.errorUUID } });
    expect(stored.detail).toContain('boom');
    expect(stored.httpStatus).toBe(500);
    expect(stored.providerCode).toBe(tenant.provider);
    expect(await hub.prisma.link.count({ where: { externalId: recordID } })).toBe(0);
  });
});

describe('the JSON twin of the error envelope', () => {
  it('Accept: application/json gets {"error":{"reason","errorUUID","message"}}', async () => {
    const res = await request(hub.server).get(fetchPath(tenant, 'nobody-json')).set('Authorization', tenant.auth).set('Accept', 'application/json');
    expect(res.status).toBe(404);
    expect(res.type).toBe('application/json');
    expect(Object.keys(res.body)).toEqual(['error']);
    expect(Object.keys(res.body.error)).toEqual(['reason', 'errorUUID', 'message']);
    expect(res.body.error.reason).toBe('NOT_FOUND');
    expect(res.body.error.errorUUID).toMatch(UUID);
    expect(res.body.error.message).toContain("'nobody-json'");
    answered.push({ errorUUID: res.body.error.errorUUID, reason: 'NOT_FOUND', status: 404 });
  });

  it('a JSON body without an Accept header gets its error in JSON too', async () => {
    const res = await request(hub.server).post(`${API}/user`).set('Authorization', tenant.auth).set('Content-Type', 'application/json').send('{"user": ');
    expect(res.status).toBe(400);
    expect(res.type).toBe('application/json');
    expect(res.body.error.reason).toBe('VALIDATION');
    answered.push({ errorUUID: res.body.error.errorUUID, reason: 'VALIDATION', status: 400 });
  });
});

describe('looking an error up by errorUUID', () => {
  const tag = randomUUID().slice(0, 8);
  const personal = {
    firstname: `Zebedee${tag}`,
    lastname: `Quixote${tag}`,
    email: `zeb.${tag}@example.com`,
    mobile: `+44 7700 ${tag.replace(/\D/g, '').padEnd(6, '9').slice(0, 6)}`,
    birthdate: '1972-03-12',
    address1: `${tag} Acacia Avenue`,
  };
  let recordID: string;
  let errorUUID: string;

  beforeAll(async () => {
    recordID = `lookup-${randomUUID()}`;
    // Valid personal data; the save fails on userType.
    const res = await postUser(hub, tenant.auth, userXml(tenant, recordID, { userStatus: 'ACTIVE', userType: 'VIP', ...personal }));
    errorUUID = expectError(res, 400, 'VALIDATION').errorUUID;
  });

  it('GET /admin/errors/<uuid> returns what support needs, with personal data and credentials redacted', async () => {
    const res = await request(hub.server).get(`/admin/errors/${errorUUID}`).set('Authorization', `Bearer ${hub.adminToken}`);
    expect(res.status).toBe(200);
    expect(res.type).toBe('application/json');
    expect(res.body).toMatchObject({
      errorUUID,
      provider: tenant.provider,
      route: `${API}/user`,
      method: 'POST',
      reason: 'VALIDATION',
      httpStatus: 400,
      code: 'INVALID_RECORD',
    });
    expect(res.body.message).toContain('userInfo/userType');
    expect(res.body).toHaveProperty('detail');
    expect(Date.parse(res.body.time)).not.toBeNaN();
    expect(Math.abs(Date.now() - Date.parse(res.body.time))).toBeLessThan(5 * 60_000);

    const stored = res.body.request as { body: string; headers: Record<string, string> };
    expect(stored.body).toContain('[redacted]');
    expect(stored.body).toContain(recordID);
    expect(stored.body).toContain(tenant.client);
    expect(stored.body).toContain(tenant.clubs[0]);
    expect(stored.body).toContain('<userType>VIP</userType>');
    expect(stored.headers.authorization).toBe('Bearer [redacted]');

    const everything = JSON.stringify(res.body);
    for (const [field, value] of Object.entries(personal)) expect(everything, field).not.toContain(value);
    expect(everything).not.toContain(tenant.token);
  });

  it('the admin API refuses a missing or wrong token with 401 and an unknown errorUUID with 404', async () => {
    const none = await request(hub.server).get(`/admin/errors/${errorUUID}`);
    expectError(none, 401, 'AUTHENTICATION');
    const wrong = await request(hub.server).get(`/admin/errors/${errorUUID}`).set('Authorization', `Bearer ${randomBytes(24).toString('hex')}`);
    expectError(wrong, 401, 'AUTHENTICATION');
    const partnerToken = await request(hub.server).get(`/admin/errors/${errorUUID}`).set('Authorization', tenant.auth);
    expectError(partnerToken, 401, 'AUTHENTICATION');
    const unknown = await request(hub.server).get(`/admin/errors/${randomUUID()}`).set('Authorization', `Bearer ${hub.adminToken}`);
    expectError(unknown, 404, 'NOT_FOUND');
    const notAUuid = await request(hub.server).get('/admin/errors/not-a-uuid').set('Authorization', `Bearer ${hub.adminToken}`);
    expectError(notAUuid, 404, 'NOT_FOUND');
  });

  it('GET /admin/errors?provider=<code> lists it', async () => {
    const res = await request(hub.server).get(`/admin/errors?provider=${tenant.provider}&limit=500`).set('Authorization', `Bearer ${hub.adminToken}`);
    expect(res.status).toBe(200);
    const list = res.body.errors as { errorUUID: string; provider: string }[];
    expect(list.map((e) => e.errorUUID)).toContain(errorUUID);
    expect(list.every((e) => e.provider === tenant.provider)).toBe(true);
  });

  describe('through the CLI', () => {
    const cli = (...args: string[]) =>
      run(process.execPath, ['bin/connector.js', ...args], {
        cwd: REPO,
        timeout: 60_000,
        env: { ...process.env, DATABASE_URL: inject('databaseUrl'), CONNECTOR_ENCRYPTION_KEY: inject('encryptionKey'), LOG_LEVEL: 'silent' },
      });

    it('`connector errors show <uuid>` prints the stored error as JSON', { timeout: 90_000 }, async () => {
      const { stdout } = await cli('errors', 'show', errorUUID);
      const shown = JSON.parse(stdout);
      expect(shown).toMatchObject({ errorUUID, reason: 'VALIDATION', provider: tenant.provider, route: `${API}/user` });
      expect(stdout).not.toContain(personal.firstname);
      expect(stdout).not.toContain(personal.email);
    });

    it('`connector errors show <unknown uuid>` says so and exits 1', { timeout: 90_000 }, async () => {
      const unknown = randomUUID();
      const failure = await cli('errors', 'show', unknown).then(
        () => undefined,
        (error: { code?: number; stderr?: string }) => error,
      );
      expect(failure?.code).toBe(1);
      expect(failure?.stderr).toContain(`No error with errorUUID ${unknown}`);
    });
  });
});

describe('the error catalogue', () => {
  it('every reason in REASONS was reached through the API with its status', () => {
    expect([...reached].sort()).toEqual([...REASONS].sort());
  });

  it('every error answered by a hub with a working database was stored by its errorUUID, with the same reason and status', async () => {
    expect(answered.length).toBeGreaterThan(20);
    const uuids = answered.map((a) => a.errorUUID);
    expect(new Set(uuids).size).toBe(uuids.length);
    const rows = await hub.prisma.errorRecord.findMany({ where: { errorUuid: { in: uuids } } });
    expect(rows.length).toBe(uuids.length);
    const byUuid = new Map(rows.map((r) => [r.errorUuid, r]));
    for (const a of answered) {
      expect(byUuid.get(a.errorUUID), a.errorUUID).toMatchObject({ reason: a.reason, httpStatus: a.status });
    }
  });
});
