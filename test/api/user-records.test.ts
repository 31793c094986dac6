import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, createTestHub, leadSourceXml, turnUpTenant, userXml, type Tenant } from '../support/test-hub.ts';
import { errorOf, xml } from '../support/xml.ts';

const hub = createTestHub();
let t: Tenant;
let deferring: Tenant;

beforeAll(async () => {
  t = await turnUpTenant(hub);
  deferring = await turnUpTenant(hub, { unknownReferences: 'defer' });
});
afterAll(() => hub.close());

const post = (tenant: Tenant, path: string, body: string) =>
  request(hub.server).post(`${API}/${path}`).set('Authorization', tenant.auth).type('application/xml').send(body);
const getUser = (tenant: Tenant, recordID: string, path = 'user', club = tenant.clubs[0]) =>
  request(hub.server)
    .get(`${API}/${path}?provider=${tenant.provider}&client_id=${tenant.client}&club_id=${club}&recordID=${encodeURIComponent(recordID)}`)
    .set('Authorization', tenant.auth);
const uuidOf = (text: string) => xml(text).response.uuid as string;

const prospect = { firstname: 'Pete', lastname: 'Prospect', userStatus: 'ACTIVE', userType: 'PROSPECT' };

describe('saving users is an upsert keyed by provider, client, club and recordID', () => {
  it('answers the same uuid when the same record is posted again with changed fields', async () => {
    const first = await post(t, 'user', userXml(t, 'r-upsert', prospect));
    const second = await post(t, 'user', userXml(t, 'r-upsert', { ...prospect, firstname: 'Peter', userType: 'MEMBER' }));
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(uuidOf(second.text)).toBe(uuidOf(first.text));
    const got = xml((await getUser(t, 'r-upsert')).text).user.userInfo;
    expect(got.firstname).toBe('Peter');
    expect(got.userType).toBe('MEMBER');
  });

  it('accepts any string as recordID, not only GUIDs', async () => {
    const res = await post(t, 'user', userXml(t, 'Ärger & Co #42 / x', prospect).replace('Ärger & Co', 'Ärger &amp; Co'));
    expect(res.status).toBe(200);
    expect(xml((await getUser(t, 'Ärger & Co #42 / x')).text).user.providerInfo.recordID).toBe('Ärger & Co #42 / x');
  });

  it('fetches the record by uuid too, with created/modified metadata', async () => {
    const uuid = uuidOf((await post(t, 'user', userXml(t, 'r-uuid', prospect))).text);
    const res = await request(hub.server).get(`${API}/user?provider=${t.provider}&uuid=${uuid}`).set('Authorization', t.auth);
    expect(res.status).toBe(200);
    const user = xml(res.text).user;
    expect(user.providerInfo).toEqual({ identifier: t.provider, clientID: t.client, clubID: t.clubs[0], recordID: 'r-uuid' });
    expect(user.userInfo.createdBy).toBe(t.provider);
    expect(user.userInfo.createdDate).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(user.userInfo.modifiedDate).toBe(user.userInfo.createdDate);
  });

  it('answers RECORD_NOT_FOUND for a uuid that is not one, as for a missing record', async () => {
    for (const uuid of ['not-a-uuid', '00000000-0000-4000-8000-000000000000']) {
      const res = await request(hub.server).get(`${API}/user?provider=${t.provider}&uuid=${uuid}`).set('Authorization', t.auth);
      expect(res.status).toBe(404);
      expect(errorOf(res.text).reason).toBe('NOT_FOUND');
    }
  });

  it('lists every missing required field of a new record in one answer', async () => {
    const res = await post(t, 'user', userXml(t, 'r-missing', { firstname: 'X', email: 'broken' }));
    expect(res.status).toBe(400);
    const { message } = errorOf(res.text);
    expect(message).toContain('userInfo/email');
    expect(message).toContain('userInfo/userStatus is required');
    expect(message).toContain('userInfo/userType is required');
  });
});

describe('updates are partial', () => {
  it('keeps a field that is absent and clears a field that is an empty element', async () => {
    await post(t, 'user', userXml(t, 'r-partial', { ...prospect, email: 'pete@example.com', mobile: '555-555-5555', city: 'Spuzzum' }));
    const res = await post(t, 'user', userXml(t, 'r-partial', { city: '', lastname: 'Member' }));
    expect(res.status).toBe(200);
    const got = xml((await getUser(t, 'r-partial')).text).user.userInfo;
    expect(got.email).toBe('pete@example.com');
    expect(got.mobile).toBe('555-555-5555');
    expect(got.lastname).toBe('Member');
    expect(got.city).toBeUndefined();
    expect(got.firstname).toBe('Pete');
  });

  it('refuses to clear a required field', async () => {
    await post(t, 'user', userXml(t, 'r-clear-required', prospect));
    const res = await post(t, 'user', userXml(t, 'r-clear-required', { userType: '' }));
    expect(res.status).toBe(400);
    expect(errorOf(res.text).message).toContain('userInfo/userType cannot be empty');
  });

  it('changes nothing, not even the modified metadata, when a re-send has no changed field', async () => {
    const uuid = uuidOf((await post(t, 'user', userXml(t, 'r-resend', prospect))).text);
    const before = await hub.prisma.user.findUniqueOrThrow({ where: { id: uuid } });
    await post(t, 'user', userXml(t, 'r-resend', prospect));
    const after = await hub.prisma.user.findUniqueOrThrow({ where: { id: uuid } });
    expect(after.version).toBe(before.version);
    expect(after.modifiedDate).toEqual(before.modifiedDate);
  });
});

describe('stale updates do not overwrite newer data', () => {
  it('answers 409 CONFLICT for an older modifiedDate and keeps the stored values', async () => {
    await post(t, 'user', userXml(t, 'r-stale', { ...prospect, modifiedDate: '2024-05-02T10:00:00.000Z' }));
    const stale = await post(t, 'user', userXml(t, 'r-stale', { firstname: 'Old', modifiedDate: '2024-05-01T10:00:00Z' }));
    expect(stale.status).toBe(409);
    expect(errorOf(stale.text).reason).toBe('CONFLICT');
    expect(errorOf(stale.text).message).toContain('2024-05-02T10:00:00.000Z');
    const got = xml((await getUser(t, 'r-stale')).text).user.userInfo;
    expect(got.firstname).toBe('Pete');
    expect(got.modifiedDate).toBe('2024-05-02T10:00:00.000Z');
  });

  it('applies an update with the same or a newer modifiedDate, in any time zone notation', async () => {
    await post(t, 'user', userXml(t, 'r-newer', { ...prospect, modifiedDate: '2024-05-02T10:00:00.000Z' }));
    const same = await post(t, 'user', userXml(t, 'r-newer', { firstname: 'Same', modifiedDate: '2024-05-02T12:00:00+02:00' }));
    expect(same.status).toBe(200);
    const newer = await post(t, 'user', userXml(t, 'r-newer', { firstname: 'Newer', modifiedDate: '2024-05-03T00:00:00Z' }));
    expect(newer.status).toBe(200);
    const got = xml((await getUser(t, 'r-newer')).text).user.userInfo;
    expect(got.firstname).toBe('Newer');
    expect(got.modifiedDate).toBe('2024-05-03T00:00:00.000Z');
  });
});

describe('prospects carry trial dates and ex-members have their own type', () => {
  it('stores trialStartDate/trialEndDate and EX_MEMBER', async () => {
    const res = await post(t, 'user', userXml(t, 'r-trial', { ...prospect, trialStartDate: '2024-01-01', trialEndDate: '2024-01-15' }));
    expect(res.status).toBe(200);
    expect(xml((await getUser(t, 'r-trial')).text).user.userInfo).toMatchObject({ trialStartDate: '2024-01-01', trialEndDate: '2024-01-15' });
    await post(t, 'user', userXml(t, 'r-trial', { userType: 'EX_MEMBER', userStatus: 'INACTIVE' }));
    expect(xml((await getUser(t, 'r-trial')).text).user.userInfo).toMatchObject({ userType: 'EX_MEMBER', userStatus: 'INACTIVE' });
  });

  it('refuses a trial that ends before it starts', async () => {
    const res = await post(t, 'user', userXml(t, 'r-trial-bad', { ...prospect, trialStartDate: '2024-01-15', trialEndDate: '2024-01-01' }));
    expect(res.status).toBe(400);
    expect(errorOf(res.text).message).toContain('trialEndDate must not be before');
  });
});

describe('staff are users too, on /staff, with userType STAFF', () => {
  it('saves and fetches staff on /staff', async () => {
    const res = await post(t, 'staff', userXml(t, 's-1', { firstname: 'John', lastname: 'Staff', email: 'jstaff@club.com', userStatus: 'ACTIVE', userType: 'STAFF' }));
    expect(res.status).toBe(200);
    const got = await getUser(t, 's-1', 'staff');
    expect(xml(got.text).user.userInfo.email).toBe('jstaff@club.com');
    expect((await getUser(t, 's-1', 'user')).status).toBe(404);
  });

  it('refuses another user type on /staff and STAFF on /user', async () => {
    const onStaff = await post(t, 'staff', userXml(t, 's-2', prospect));
    expect(onStaff.status).toBe(400);
    expect(errorOf(onStaff.text).message).toContain('must be STAFF');
    const onUser = await post(t, 'user', userXml(t, 'u-2', { ...prospect, userType: 'STAFF' }));
    expect(onUser.status).toBe(400);
    expect(errorOf(onUser.text).message).toContain('/staff');
  });
});

describe('leadInfo references are the provider own lead-source and staff IDs', () => {
  it('links a prospect to the lead source and owner saved before it and answers them back by the provider IDs', async () => {
    await post(t, 'leadsource', leadSourceXml(t, 'FACEBOOK', { name: 'Facebook', active: 'true' }));
    await post(t, 'staff', userXml(t, '1111', { firstname: 'John', email: 'jstaff@club.com', userStatus: 'ACTIVE', userType: 'STAFF' }));
    const res = await post(t, 'user', userXml(t, 'r-lead', prospect, '<leadInfo><leadSource>FACEBOOK</leadSource><ownerID>1111</ownerID></leadInfo>'));
    expect(res.status).toBe(200);
    const stored = await hub.prisma.user.findUniqueOrThrow({ where: { id: uuidOf(res.text) } });
    expect(stored.leadSourceId).not.toBeNull();
    expect(stored.ownerId).not.toBeNull();
    expect(xml((await getUser(t, 'r-lead')).text).user.leadInfo).toEqual({ leadSource: 'FACEBOOK', ownerID: '1111' });
  });

  it('resolves a reference saved in another club of the same client', async () => {
    await post(t, 'leadsource', leadSourceXml(t, 'RADIO', { name: 'Radio' }, t.clubs[1]));
    const res = await post(t, 'user', userXml(t, 'r-other-club', prospect, '<leadInfo><leadSource>RADIO</leadSource></leadInfo>'));
    expect(res.status).toBe(200);
  });

  it('rejects an unknown lead source or owner by default, naming the missing reference, and stores nothing', async () => {
    const res = await post(t, 'user', userXml(t, 'r-unknown-ref', prospect, '<leadInfo><leadSource>NEWSPAPER</leadSource><ownerID>4242</ownerID></leadInfo>'));
    expect(res.status).toBe(400);
    const { reason, message } = errorOf(res.text);
    expect(reason).toBe('VALIDATION');
    expect(message).toContain("leadSource 'NEWSPAPER'");
    expect(message).toContain("ownerID '4242'");
    expect((await getUser(t, 'r-unknown-ref')).status).toBe(404);
  });

  it('clears both references with an empty <leadInfo/>', async () => {
    await post(t, 'leadsource', leadSourceXml(t, 'WEB', { name: 'Web' }));
    await post(t, 'user', userXml(t, 'r-clear-lead', prospect, '<leadInfo><leadSource>WEB</leadSource></leadInfo>'));
    await post(t, 'user', userXml(t, 'r-clear-lead', {}, '<leadInfo/>'));
    expect(xml((await getUser(t, 'r-clear-lead')).text).user.leadInfo).toBeUndefined();
  });

  it('under the defer policy accepts unknown references, keeps them, and resolves them when the staff and lead source arrive', async () => {
    const d = deferring;
    const res = await post(d, 'user', userXml(d, 'r-deferred', prospect, '<leadInfo><leadSource>NEWSPAPER</leadSource><ownerID>1111</ownerID></leadInfo>'));
    expect(res.status).toBe(200);
    const uuid = uuidOf(res.text);
    let stored = await hub.prisma.user.findUniqueOrThrow({ where: { id: uuid } });
    expect(stored).toMatchObject({ leadSourceId: null, ownerId: null, pendingLeadSourceRef: 'NEWSPAPER', pendingOwnerRef: '1111' });
    // The pending references are answered back as sent.
    expect(xml((await getUser(d, 'r-deferred')).text).user.leadInfo).toEqual({ leadSource: 'NEWSPAPER', ownerID: '1111' });

    await post(d, 'staff', userXml(d, '1111', { firstname: 'John', email: 'jstaff@club.com', userStatus: 'ACTIVE', userType: 'STAFF' }));
    stored = await hub.prisma.user.findUniqueOrThrow({ where: { id: uuid } });
    expect(stored.ownerId).not.toBeNull();
    expect(stored.pendingOwnerRef).toBeNull();
    expect(stored.pendingProviderId).not.toBeNull();

    await post(d, 'leadsource', leadSourceXml(d, 'NEWSPAPER', { name: 'Newspaper' }));
    stored = await hub.prisma.user.findUniqueOrThrow({ where: { id: uuid } });
    expect(stored).toMatchObject({ pendingLeadSourceRef: null, pendingProviderId: null });
    expect(stored.leadSourceId).not.toBeNull();
    expect(stored.version).toBe(3);
  });

  it('refuses leadInfo on staff', async () => {
    const res = await post(t, 'staff', userXml(t, 's-lead', { firstname: 'S', userStatus: 'ACTIVE', userType: 'STAFF' }, '<leadInfo><ownerID>1111</ownerID></leadInfo>'));
    expect(res.status).toBe(400);
    expect(errorOf(res.text).message).toContain('does not apply to staff');
  });
});

describe('lead sources', () => {
  it('are upserted by identifier, renamed in place, and default to active', async () => {
    const first = await post(t, 'leadsource', leadSourceXml(t, 'TV', { name: 'Television' }));
    const second = await post(t, 'leadsource', leadSourceXml(t, 'TV', { name: 'TV ads', active: 'false' }));
    expect(uuidOf(second.text)).toBe(uuidOf(first.text));
    const res = await request(hub.server)
      .get(`${API}/leadsource?provider=${t.provider}&client_id=${t.client}&club_id=${t.clubs[0]}&identifier=TV`)
      .set('Authorization', t.auth);
    expect(xml(res.text).leadSource.leadInfo).toMatchObject({ name: 'TV ads', active: 'false' });
    const fresh = await post(t, 'leadsource', leadSourceXml(t, 'MAIL', { name: 'Mail' }));
    expect((await hub.prisma.leadSource.findUniqueOrThrow({ where: { id: uuidOf(fresh.text) } })).active).toBe(true);
  });

  it('answers 404 NOT_FOUND for an unknown identifier and an empty list for a club without lead sources', async () => {
    const missing = await request(hub.server)
      .get(`${API}/leadsource?provider=${t.provider}&client_id=${t.client}&club_id=${t.clubs[0]}&identifier=NOPE`)
      .set('Authorization', t.auth);
    expect(missing.status).toBe(404);
    expect(errorOf(missing.text).reason).toBe('NOT_FOUND');
    const other = await turnUpTenant(hub);
    const empty = await request(hub.server)
      .get(`${API}/leadsource?provider=${other.provider}&client_id=${other.client}&club_id=${other.clubs[0]}`)
      .set('Authorization', other.auth);
    expect(empty.status).toBe(200);
    expect(empty.text).toContain('<leadSources></leadSources>');
  });
});
