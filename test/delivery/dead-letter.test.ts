import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SIGNATURE_HEADER } from '../../adapters/signature.ts';
import { eventIdOf } from '../../src/store/outbox.ts';
import { API } from '../support/test-hub.ts';
import { REDIS_TEST_URL, eventually, queueBackendUnderTest, settled, startRig, type PartnerSetup, type Rig, deliveryOf, postAs, withRig } from '../support/delivery-rig.ts';
import { runCli } from '../support/hub-process.ts';

const prospect = { firstname: 'Dana', lastname: 'Dead', userStatus: 'ACTIVE', userType: 'PROSPECT', email: 'dana@example.com' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A saves a prospect; resolves with the hub UUID. */
const post = (rig: Rig, recordID: string, fields: Record<string, string> = {}) => postAs(rig, 'A', recordID, { ...prospect, ...fields });


/** Waits for the delivery to reach `status`. */
function deliveryIn(rig: Rig, uuid: string, partner: string, status: string, timeoutMs = 10_000) {
  return eventually(async () => {
    const d = await deliveryOf(rig, uuid, partner);
    return d?.status === status ? d : undefined;
  }, timeoutMs);
}

const createsOf = (rig: Rig, partner: string, uuid: string) =>
  rig.partners[partner].fake!.applied.filter((a) => a.op === 'createUser' && a.body.externalRef === uuid).length;

const admin = (rig: Rig) => ({
  get: (path: string) => request(rig.hub.server).get(`/admin${path}`).set('Authorization', `Bearer ${rig.hub.adminToken}`).set('Accept', 'application/json'),
  post: (path: string) => request(rig.hub.server).post(`/admin${path}`).set('Authorization', `Bearer ${rig.hub.adminToken}`).set('Accept', 'application/json'),
});

/** The CLI against the rig's database and queue backend, with the key the rig's connections are encrypted with. */
const cli = (rig: Rig, args: string[]) =>
  runCli(args, {
    DATABASE_URL: inject('databaseUrl'),
    REDIS_URL: queueBackendUnderTest() === 'redis' ? REDIS_TEST_URL : '',
    CONNECTOR_ENCRYPTION_KEY: rig.encryptionKey,
  });

describe('a partner answer that retrying cannot fix', () => {
  const rig = withRig([{ code: 'B', receives: { delivery: { attempts: 5, backoffMs: 100 } } }]);
  let first: { uuid: string; deliveryId: string };

  it('dead-letters a 422 after one attempt, with the reason, and lists it over HTTP and in the CLI', async () => {
    const r = rig();
    const b = r.partners.B.fake!;
    const code = r.partners.B.tenant.provider;
    b.failNext(1, 422);
    const uuid = await post(r, 'dl-1');
    const dead = await deliveryIn(r, uuid, 'B', 'DEAD');
    first = { uuid, deliveryId: dead.id };
    expect(dead.lastError).toContain('422');
    expect(dead.attemptsLog).toHaveLength(1);
    expect(dead.attemptsLog[0]).toMatchObject({ outcome: 'DEAD', httpStatus: 422 });
    expect(dead.attemptsLog[0].calls).toMatch(/^createUser 422 \d+ms$/);
    // No retry follows.
    await sleep(500);
    expect((await deliveryOf(r, uuid, 'B'))!.attemptsLog).toHaveLength(1);
    expect(b.requests.filter((q) => q.body.includes(uuid))).toHaveLength(1);
    expect(b.userByRef(uuid)).toBeUndefined();

    const listed = await admin(r).get(`/deliveries?status=DEAD&provider=${code}`);
    expect(listed.status).toBe(200);
    expect(listed.body.deliveries).toEqual([
      expect.objectContaining({ id: dead.id, entityId: uuid, provider: code, status: 'DEAD', lastError: expect.stringContaining('422') }),
    ]);
    expect(listed.body.deliveries[0].attempts[0]).toMatchObject({ outcome: 'DEAD', httpStatus: 422 });
    // The other filters leave it out.
    expect((await admin(r).get(`/deliveries?status=DELIVERED&provider=${code}`)).body.deliveries).toEqual([]);

    const shown = await cli(r, ['deliveries', 'list', '--status', 'DEAD', '--provider', code]);
    expect(shown.stderr).toBe('');
    expect(shown.code).toBe(0);
    const line = shown.stdout.split('\n').find((l) => l.includes(dead.id));
    expect(line).toBeDefined();
    expect(line).toMatch(new RegExp(`DEAD\\s+${code}`));
    expect(line).toContain('partner answered 422');
  });

  it('replays a dead delivery over HTTP once the partner is fixed; only dead deliveries replay', async () => {
    const r = rig();
    const b = r.partners.B.fake!;
    const { uuid, deliveryId } = first;
    // The injected 422 was used up: the partner accepts the record now.
    const replayed = await admin(r).post(`/deliveries/${deliveryId}/replay`);
    expect(replayed.status).toBe(200);
    expect(replayed.body).toMatchObject({ id: deliveryId, provider: r.partners.B.tenant.provider });
    const delivered = await deliveryIn(r, uuid, 'B', 'DELIVERED');
    expect(delivered.lastError).toBeNull();
    expect(delivered.attemptsLog.map((a) => a.outcome)).toEqual(['DEAD', 'DELIVERED']);
    expect(b.userByRef(uuid)).toBeDefined();
    expect(createsOf(r, 'B', uuid)).toBe(1);

    const again = await admin(r).post(`/deliveries/${deliveryId}/replay`);
    expect(again.status).toBe(409);
    expect(again.text).toContain('CONFLICT');
    expect(again.text).toContain('not DEAD');
    const unknown = await admin(r).post(`/deliveries/${randomUUID()}/replay`);
    expect(unknown.status).toBe(404);
    expect(unknown.text).toContain('NOT_FOUND');
    expect((await admin(r).post('/deliveries/not-a-uuid/replay')).status).toBe(404);
    // The admin API wants the admin token.
    const anonymous = await request(r.hub.server).post(`/admin/deliveries/${deliveryId}/replay`);
    expect(anonymous.status).toBe(401);
  });

  it('replays a dead delivery from the CLI: the running engine picks the job up from the shared queue backend', async () => {
    const r = rig();
    const b = r.partners.B.fake!;
    await settled(r);
    b.failNext(1, 422);
    const uuid = await post(r, 'dl-2');
    const dead = await deliveryIn(r, uuid, 'B', 'DEAD');

    const replay = await cli(r, ['deliveries', 'replay', dead.id]);
    expect(replay.stderr).toBe('');
    expect(replay.code).toBe(0);
    expect(replay.stdout).toContain(`replaying delivery ${dead.id} to ${r.partners.B.tenant.provider}`);
    const delivered = await deliveryIn(r, uuid, 'B', 'DELIVERED', 20_000);
    expect(delivered.attemptsLog.map((a) => a.outcome)).toEqual(['DEAD', 'DELIVERED']);
    expect(createsOf(r, 'B', uuid)).toBe(1);

    const again = await cli(r, ['deliveries', 'replay', dead.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('not DEAD');
    const unknown = await cli(r, ['deliveries', 'replay', randomUUID()]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('No delivery');
  });

  it('shows a record with its links and every delivery attempt, over HTTP and as JSON in the CLI', async () => {
    const r = rig();
    const { uuid, deliveryId } = first;
    await settled(r);
    const partnerId = r.partners.B.fake!.userByRef(uuid)!.id;
    const res = await admin(r).get(`/records/${uuid}`);
    expect(res.status).toBe(200);
    const view = res.body;
    expect(view).toMatchObject({ uuid, type: 'USER', client: r.client, club: 'main', version: 1 });
    expect(view.values).toMatchObject({ firstname: 'Dana', lastname: 'Dead', email: 'dana@example.com' });
    expect(view.links).toEqual(
      expect.arrayContaining([
        { provider: r.partners.A.tenant.provider, club: 'main', externalId: 'dl-1' },
        { provider: r.partners.B.tenant.provider, club: 'main', externalId: partnerId },
      ]),
    );
    expect(view.links).toHaveLength(2);
    expect(view.deliveries).toHaveLength(1);
    const delivery = view.deliveries[0];
    expect(delivery).toMatchObject({ id: deliveryId, provider: r.partners.B.tenant.provider, status: 'DELIVERED', wantedVersion: 1, deliveredVersion: 1, lastError: null });
    // Newest first: the replayed delivery, then the 422.
    expect(delivery.attempts).toHaveLength(2);
    const [ok, failed] = delivery.attempts;
    expect(ok).toMatchObject({ outcome: 'DELIVERED', version: 1, error: null, idempotencyKey: eventIdOf(uuid, 1) });
    expect(ok.calls).toMatch(/^createUser 201 \d+ms/);
    expect(ok.httpStatus).toEqual(expect.any(Number));
    expect(failed).toMatchObject({ outcome: 'DEAD', httpStatus: 422, version: 1, idempotencyKey: eventIdOf(uuid, 1) });
    expect(failed.calls).toMatch(/^createUser 422 \d+ms$/);
    expect(failed.error).toContain('422');
    for (const a of delivery.attempts) {
      expect(a.durationMs).toEqual(expect.any(Number));
      expect(a.durationMs).toBeGreaterThanOrEqual(0);
      expect(Date.parse(a.at)).not.toBeNaN();
    }

    const printed = await cli(r, ['record', uuid]);
    expect(printed.stderr).toBe('');
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.stdout)).toEqual(view);

    expect((await admin(r).get(`/records/${randomUUID()}`)).status).toBe(404);
    const missing = await cli(r, ['record', randomUUID()]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('No record');
  });
});

describe('partners that refuse the hub', () => {
  const secret = 'signing-secret-of-the-hub';
  const rig = withRig([
    // Credentials the partner expects / credentials it does not.
    { code: 'K', receives: { auth: { type: 'bearer', token: 'right-token-123' }, fake: { authorization: 'Bearer right-token-123' } } },
    { code: 'W', receives: { auth: { type: 'bearer', token: 'wrong-token-456' }, fake: { authorization: 'Bearer right-token-123' } } },
    // A signed connection whose partner verifies with the same secret / with another one.
    { code: 'S', receives: { signingSecret: secret } },
    { code: 'X', receives: { signingSecret: secret, fake: { signingSecret: 'a-secret-the-hub-never-had' } } },
    // A connection that may not call private addresses (the fake listens on 127.0.0.1).
    { code: 'P', receives: { allowPrivateNetwork: false } },
  ]);
  let uuid: string;
  beforeAll(async () => {
    uuid = await post(rig(), 'refused-1');
    await settled(rig());
  });

  it('dead-letters a 401 (wrong credentials) after one attempt; the right credentials are accepted', async () => {
    const r = rig();
    const k = await deliveryOf(r, uuid, 'K');
    expect(k!.status).toBe('DELIVERED');
    expect(r.partners.K.fake!.requests[0].headers.authorization).toBe('Bearer right-token-123');
    expect(createsOf(r, 'K', uuid)).toBe(1);

    const w = (await deliveryOf(r, uuid, 'W'))!;
    expect(w.status).toBe('DEAD');
    expect(w.lastError).toContain('401');
    expect(w.lastError).toContain('bad credentials');
    expect(w.attemptsLog).toHaveLength(1);
    expect(w.attemptsLog[0]).toMatchObject({ outcome: 'DEAD', httpStatus: 401 });
    expect(r.partners.W.fake!.requests).toHaveLength(1);
    expect(r.partners.W.fake!.users.size).toBe(0);
  });

  it('signs requests with the connection secret: a partner with the same secret accepts, one with another secret answers 401 and the delivery dies with the reason', async () => {
    const r = rig();
    const s = (await deliveryOf(r, uuid, 'S'))!;
    expect(s.status).toBe('DELIVERED');
    expect(r.partners.S.fake!.requests[0].headers[SIGNATURE_HEADER]).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(r.partners.S.fake!.userByRef(uuid)).toBeDefined();

    const x = (await deliveryOf(r, uuid, 'X'))!;
    expect(x.status).toBe('DEAD');
    expect(x.lastError).toContain('401');
    expect(x.lastError).toContain('bad signature');
    expect(x.attemptsLog).toHaveLength(1);
    expect(x.attemptsLog[0]).toMatchObject({ outcome: 'DEAD', httpStatus: 401 });
    expect(r.partners.X.fake!.users.size).toBe(0);
  });

  it('refuses a partner URL in a private range unless the connection allows it: dead with the address, nothing sent', async () => {
    const r = rig();
    const p = (await deliveryOf(r, uuid, 'P'))!;
    expect(p.status).toBe('DEAD');
    expect(p.lastError).toContain('private address 127.0.0.1');
    expect(p.lastError).toContain('allowPrivateNetwork');
    expect(p.attemptsLog).toHaveLength(1);
    expect(p.attemptsLog[0]).toMatchObject({ outcome: 'DEAD', httpStatus: null, calls: 'no partner call' });
    expect(r.partners.P.fake!.requests).toHaveLength(0);
    // The same fake, allowed (every other connection of the rig): delivered.
    expect((await deliveryOf(r, uuid, 'K'))!.status).toBe('DELIVERED');
  });

  it('lists exactly the refused deliveries as dead', async () => {
    const r = rig();
    for (const [partner, dead] of [['K', false], ['W', true], ['S', false], ['X', true], ['P', true]] as const) {
      const listed = await admin(r).get(`/deliveries?status=dead&provider=${r.partners[partner].tenant.provider}`);
      expect(listed.status).toBe(200);
      expect(listed.body.deliveries.map((d: { entityId: string }) => d.entityId)).toEqual(dead ? [uuid] : []);
    }
  });
});
