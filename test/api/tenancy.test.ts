import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyTurnup } from '../../src/turnup/apply-turnup.ts';
import type { TurnupFile } from '../../src/turnup/turnup-schema.ts';
import { API, createTestHub, turnUpTenant, userXml, type Tenant } from '../support/test-hub.ts';
import { errorOf, xml } from '../support/xml.ts';

/**
 * Spec §2 "Security": each provider authenticates and is granted
 * per-client/per-club access; one tenant never sees or writes another's data.
 */

const hub = createTestHub();
/** Provider A with its own client, provider B with another. */
let a: Tenant;
let b: Tenant;

beforeAll(async () => {
  a = await turnUpTenant(hub);
  b = await turnUpTenant(hub);
});
afterAll(() => hub.close());

const MEMBER = { firstname: 'Pat', userStatus: 'ACTIVE', userType: 'MEMBER' };
const STAFF = { firstname: 'Coach', userStatus: 'ACTIVE', userType: 'STAFF' };
const fresh = (prefix = 'r') => `${prefix}-${randomUUID()}`;
type Path = 'user' | 'staff';

/** POSTs a record as `as`, into `into`'s client and club (its own by default). */
function save(as: Tenant, recordID: string, info: Record<string, string> = MEMBER, options: { into?: Tenant; club?: string; path?: Path; auth?: string; identifier?: string } = {}) {
  const into = options.into ?? as;
  const ids = { provider: options.identifier ?? as.provider, client: into.client, clubs: into.clubs };
  return request(hub.server)
    .post(`${API}/${options.path ?? 'user'}`)
    .set('Authorization', options.auth ?? as.auth)
    .type('application/xml')
    .send(userXml(ids, recordID, info, '', options.club ?? into.clubs[0]));
}

function fetchByIds(as: Tenant, recordID: string, options: { into?: Tenant; club?: string; path?: Path; auth?: string; identifier?: string } = {}) {
  const into = options.into ?? as;
  return request(hub.server)
    .get(`${API}/${options.path ?? 'user'}`)
    .query({ provider: options.identifier ?? as.provider, client_id: into.client, club_id: options.club ?? into.clubs[0], recordID })
    .set('Authorization', options.auth ?? as.auth);
}

function fetchByUuid(as: Tenant, uuid: string, path: Path = 'user') {
  return request(hub.server).get(`${API}/${path}`).query({ provider: as.provider, uuid }).set('Authorization', as.auth);
}

const uuidOf = (res: request.Response): string => {
  expect(res.status, res.text).toBe(200);
  return xml(res.text).response.uuid as string;
};

/** The turn-up file turnUpTenant applied for `t`, with the grant limited to `clubs` (every club still declared on the client). */
function turnupFileOf(t: Tenant, clubs: number[]): TurnupFile {
  const id = t.clientCode.slice('client-'.length);
  return {
    providers: [
      {
        code: t.provider,
        name: `Provider ${id}`,
        unknownReferences: 'reject',
        credentials: [
          { type: 'token', token: t.token },
          { type: 'basic', username: t.username, password: t.password },
        ],
      },
    ],
    clients: [
      {
        code: t.clientCode,
        name: `Client ${id}`,
        clubs: t.clubCodes.map((code) => ({ code, name: code })),
        providers: [
          {
            provider: t.provider,
            clientId: t.client,
            clubs: Object.fromEntries(clubs.map((i) => [t.clubCodes[i], t.clubs[i]])),
            agreement: { direction: 'send', userTypes: ['PROSPECT', 'MEMBER', 'EX_MEMBER'], prospects: { staffOwner: false, leadSource: false, trial: false } },
          },
        ],
      },
    ],
  };
}

describe('tenant isolation between providers and clients', () => {
  it('the same recordID sent by provider A and by provider B is two different records with two uuids', async () => {
    const recordID = fresh('shared');
    const uuidA = uuidOf(await save(a, recordID, { ...MEMBER, firstname: 'Alice' }));
    const uuidB = uuidOf(await save(b, recordID, { ...MEMBER, firstname: 'Bob' }));
    expect(uuidA).not.toBe(uuidB);
    expect(xml((await fetchByIds(a, recordID)).text).user.userInfo.firstname).toBe('Alice');
    expect(xml((await fetchByIds(b, recordID)).text).user.userInfo.firstname).toBe('Bob');
  });

  it("provider A cannot GET provider B's record by its IDs: 403 FORBIDDEN for B's client ID", async () => {
    const recordID = fresh('b-only');
    uuidOf(await save(b, recordID));
    const res = await fetchByIds(a, recordID, { into: b });
    expect(res.status).toBe(403);
    const error = errorOf(res.text);
    expect(error.reason).toBe('FORBIDDEN');
    expect(error.message).not.toContain('Pat');
  });

  it("provider A asking for provider B's record by uuid gets 404, exactly like a uuid that does not exist", async () => {
    const uuidB = uuidOf(await save(b, fresh('b-uuid')));
    const nowhere = randomUUID();
    const other = await fetchByUuid(a, uuidB);
    const missing = await fetchByUuid(a, nowhere);
    expect(other.status).toBe(404);
    expect(missing.status).toBe(404);
    const [e1, e2] = [errorOf(other.text), errorOf(missing.text)];
    expect(e1.reason).toBe('NOT_FOUND');
    expect(e2.reason).toBe('NOT_FOUND');
    // Same sentence, only the asked-for uuid differs: nothing tells A the record exists.
    expect(e1.message.replace(uuidB, '<uuid>')).toBe(e2.message.replace(nowhere, '<uuid>'));
    expect(e1.message).not.toContain('Pat');
  });

  it("provider A cannot POST into provider B's client: 403, and nothing is stored", async () => {
    const recordID = fresh('intrusion');
    const firstname = `Intruder ${recordID}`;
    const res = await save(a, recordID, { ...MEMBER, firstname }, { into: b });
    expect(res.status).toBe(403);
    expect(errorOf(res.text).reason).toBe('FORBIDDEN');
    expect(await hub.prisma.link.count({ where: { externalId: recordID } })).toBe(0);
    expect(await hub.prisma.user.count({ where: { firstname } })).toBe(0);
    // B does not find it either.
    expect((await fetchByIds(b, recordID)).status).toBe(404);
  });

  it('a provider granted two clubs of its client keeps the same recordID in club 1 and club 2 as two records', async () => {
    const recordID = fresh('two-clubs');
    const uuid1 = uuidOf(await save(a, recordID, { ...MEMBER, firstname: 'One' }, { club: a.clubs[0] }));
    const uuid2 = uuidOf(await save(a, recordID, { ...MEMBER, firstname: 'Two' }, { club: a.clubs[1] }));
    expect(uuid1).not.toBe(uuid2);
    const one = xml((await fetchByIds(a, recordID, { club: a.clubs[0] })).text).user;
    const two = xml((await fetchByIds(a, recordID, { club: a.clubs[1] })).text).user;
    expect([one.userInfo.firstname, one.providerInfo.clubID]).toEqual(['One', a.clubs[0]]);
    expect([two.userInfo.firstname, two.providerInfo.clubID]).toEqual(['Two', a.clubs[1]]);
  });

  it('/user and /staff are separate ID spaces: recordID 7 as a member and as staff are two records', async () => {
    const t = await turnUpTenant(hub, { clubs: 1 });
    const member = uuidOf(await save(t, '7', { ...MEMBER, firstname: 'Member Seven' }));
    const staff = uuidOf(await save(t, '7', { ...STAFF, firstname: 'Staff Seven' }, { path: 'staff' }));
    expect(member).not.toBe(staff);
    const asUser = xml((await fetchByIds(t, '7')).text).user.userInfo;
    const asStaff = xml((await fetchByIds(t, '7', { path: 'staff' })).text).user.userInfo;
    expect([asUser.firstname, asUser.userType]).toEqual(['Member Seven', 'MEMBER']);
    expect([asStaff.firstname, asStaff.userType]).toEqual(['Staff Seven', 'STAFF']);
    // Nor does one path answer the other's uuid.
    expect((await fetchByUuid(t, staff, 'user')).status).toBe(404);
    expect((await fetchByUuid(t, member, 'staff')).status).toBe(404);
  });
});

describe('authentication and grants', () => {
  it('HTTP Basic works the same as the bearer token: same provider, same records', async () => {
    const recordID = fresh('basic');
    const viaBasic = uuidOf(await save(a, recordID, { ...MEMBER, firstname: 'Basic' }, { auth: a.basicAuth }));
    const viaBearer = uuidOf(await save(a, recordID, { ...MEMBER, firstname: 'Bearer' }));
    expect(viaBasic).toBe(viaBearer);
    const [withBasic, withBearer] = [await fetchByIds(a, recordID, { auth: a.basicAuth }), await fetchByIds(a, recordID)];
    expect(withBasic.status).toBe(200);
    expect(withBasic.text).toBe(withBearer.text);
    expect(xml(withBasic.text).user.userInfo.firstname).toBe('Bearer');
    // And Basic is refused just like a token for another provider's client.
    expect((await fetchByIds(a, recordID, { into: b, auth: a.basicAuth })).status).toBe(403);
  });

  it("provider A's credentials with identifier B are refused with 403, on POST and on GET, over bearer and Basic", async () => {
    const recordID = fresh('impersonate');
    uuidOf(await save(b, recordID));
    const attempted: string[] = [];
    for (const auth of [a.auth, a.basicAuth]) {
      attempted.push(fresh('impersonate'));
      const posted = await save(a, attempted.at(-1)!, MEMBER, { into: b, identifier: b.provider, auth });
      expect(posted.status).toBe(403);
      expect(errorOf(posted.text).reason).toBe('FORBIDDEN');
      const fetched = await fetchByIds(a, recordID, { into: b, identifier: b.provider, auth });
      expect(fetched.status).toBe(403);
      expect(errorOf(fetched.text).reason).toBe('FORBIDDEN');
      const byUuid = await request(hub.server).get(`${API}/user`).query({ provider: b.provider, uuid: randomUUID() }).set('Authorization', auth);
      expect(byUuid.status).toBe(403);
    }
    // Nothing was stored under A's credentials.
    expect(await hub.prisma.link.count({ where: { externalId: { in: attempted } } })).toBe(0);
  });

  it('a club dropped from the grant by re-applying turn-up is refused with 403 at once, the other club keeps working', async () => {
    const t = await turnUpTenant(hub);
    const recordID = fresh('revoke');
    uuidOf(await save(t, recordID, MEMBER, { club: t.clubs[0] }));
    const uuid2 = uuidOf(await save(t, recordID, MEMBER, { club: t.clubs[1] }));

    // Re-applying the same file changes nothing.
    const same = await applyTurnup({ prisma: hub.prisma, secretBox: hub.secretBox }, turnupFileOf(t, [0, 1]));
    expect(same.changes.every((c) => c.action === 'unchanged')).toBe(true);
    expect((await fetchByIds(t, recordID, { club: t.clubs[1] })).status).toBe(200);

    const report = await applyTurnup({ prisma: hub.prisma, secretBox: hub.secretBox }, turnupFileOf(t, [0]));
    expect(report.changes).toContainEqual({ entity: 'club-grant', key: `${t.provider}:${t.clientCode}/${t.clubCodes[1]}`, action: 'removed' });

    const fetched = await fetchByIds(t, recordID, { club: t.clubs[1] });
    expect(fetched.status).toBe(403);
    expect(errorOf(fetched.text).reason).toBe('FORBIDDEN');
    const posted = await save(t, fresh('revoked'), MEMBER, { club: t.clubs[1] });
    expect(posted.status).toBe(403);
    // By uuid the record in the revoked club is as invisible as one that never existed.
    expect((await fetchByUuid(t, uuid2)).status).toBe(404);

    // Club 1 is still granted.
    expect((await fetchByIds(t, recordID, { club: t.clubs[0] })).status).toBe(200);
    expect((await save(t, fresh('kept'), MEMBER, { club: t.clubs[0] })).status).toBe(200);
  });
});
