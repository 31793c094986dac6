import request from 'supertest';
import { version as uuidVersion } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Capability } from '../../adapters/contract.ts';
import { REFERENCE_CAPABILITIES } from '../../adapters/reference/index.ts';
import type { FakeReferencePartner } from '../../adapters/reference/fake.ts';
import type { Agreement } from '../../src/turnup/turnup-schema.ts';
import { eventually, settled, startRig, type Rig } from '../support/delivery-rig.ts';
import { API, leadSourceXml, userXml } from '../support/test-hub.ts';
import { xml } from '../support/xml.ts';

/**
 * Seed 001 "Lead Source Synchronization" / seed 003 "Synchronizing Lead
 * Sources": matched by name (case-insensitive); when there is no match and
 * the partner can create, created; renamed only where the partner can update;
 * otherwise prospects go without a lead source.
 */

const ALL = REFERENCE_CAPABILITIES as readonly Capability[];
const USER_CALLS = ALL.filter((c) => /Prospect$|Member$/.test(c));
const without = (...names: Capability[]) => ALL.filter((c) => !names.includes(c));
const prospects = (p: Partial<Agreement['prospects']>): Partial<Agreement> => ({ prospects: { staffOwner: false, leadSource: true, trial: false, ...p } });

const prospect = { firstname: 'Pete', lastname: 'Prospect', userStatus: 'ACTIVE', userType: 'PROSPECT', email: 'pete@example.com' };
const fromNewspaper = '<leadInfo><leadSource>NEWSPAPER</leadSource></leadInfo>';

let rig: Rig;
beforeAll(async () => {
  rig = await startRig([
    { code: 'A' },
    // B: the whole reference API. M: the same, already holding "newspaper".
    { code: 'B', receives: { agreement: prospects({}) } },
    { code: 'M', receives: { agreement: prospects({}) } },
    // X: a list but no create. K: a create but no list. C: no update.
    { code: 'X', receives: { agreement: prospects({}), capabilities: without('createLeadSource') } },
    { code: 'K', receives: { agreement: prospects({}), capabilities: [...USER_CALLS, 'createLeadSource'] } },
    { code: 'C', receives: { agreement: prospects({}), capabilities: without('updateLeadSource') } },
    // L: no lead source agreed. T: trial information agreed (B has it off).
    { code: 'L', receives: { agreement: prospects({ leadSource: false }) } },
    { code: 'T', receives: { agreement: prospects({ leadSource: false, trial: true }) } },
  ]);
  rig.partners.M.fake!.addLeadSource('LS-77', 'newspaper');
});
afterAll(() => rig?.stop());

const fake = (code: string) => rig.partners[code].fake!;
const providerIdOf = async (code: string) => (await rig.hub.prisma.provider.findUniqueOrThrow({ where: { code: rig.partners[code].tenant.provider } })).id;
const leadSourceCalls = (f: FakeReferencePartner, method?: string) => f.requests.filter((r) => r.path.startsWith('/lead-sources') && (!method || r.method === method));

async function saveLeadSource(recordID: string, name: string): Promise<string> {
  const t = rig.partners.A.tenant;
  const res = await request(rig.hub.server).post(`${API}/leadsource`).set('Authorization', t.auth).type('application/xml').send(leadSourceXml(t, recordID, { name }));
  expect(res.status, res.text).toBe(200);
  return xml(res.text).response.uuid;
}

async function saveUser(recordID: string, fields: Record<string, string>, extra = ''): Promise<string> {
  const t = rig.partners.A.tenant;
  const res = await request(rig.hub.server).post(`${API}/user`).set('Authorization', t.auth).type('application/xml').send(userXml(t, recordID, fields, extra));
  expect(res.status, res.text).toBe(200);
  return xml(res.text).response.uuid;
}

/** A's lead source NEWSPAPER "Newspaper" (an identical re-send changes nothing), synchronised everywhere it goes. */
async function newspaper(): Promise<string> {
  const uuid = await saveLeadSource('NEWSPAPER', 'Newspaper');
  await settled(rig);
  return uuid;
}

const linkOf = async (code: string, entityId: string) =>
  rig.hub.prisma.link.findFirst({ where: { providerId: await providerIdOf(code), entityType: 'LEAD_SOURCE', entityId } });
const deliveryOf = async (code: string, entityId: string) =>
  rig.hub.prisma.delivery.findFirst({ where: { targetProviderId: await providerIdOf(code), entityId } });

describe('lead sources are matched by name, created when the partner can, and sent with prospects as the partner ID', () => {
  it('creates NEWSPAPER "Newspaper" in B when B has no lead source of that name, links it, and sends prospects from NEWSPAPER with B lead-source ID', async () => {
    const uuid = await newspaper();
    const b = fake('B');
    const created = b.leadSources.find((l) => l.name === 'Newspaper');
    expect(created).toBeDefined();
    expect(leadSourceCalls(b, 'POST')).toHaveLength(1);
    expect(JSON.parse(leadSourceCalls(b, 'POST')[0].body)).toMatchObject({ name: 'Newspaper', active: true, clientId: 'B-client', clubId: 'B-club', externalRef: uuid });
    expect((await linkOf('B', uuid))?.externalId).toBe(created!.id);
    // The lead source and its link to B get time-ordered IDs (UUID version 7).
    expect([uuid, (await linkOf('B', uuid))!.id].map(uuidVersion)).toEqual([7, 7]);
    expect(await deliveryOf('B', uuid)).toMatchObject({ status: 'DELIVERED', deliveredVersion: 1 });

    const prospectUuid = await saveUser('p-news', prospect, fromNewspaper);
    expect(await eventually(() => b.userByRef(prospectUuid))).toMatchObject({ type: 'PROSPECT', leadSourceId: created!.id });
    expect(b.leadSources).toHaveLength(1);
  });

  it('matches a partner lead source case-insensitively ("newspaper" in M) and creates nothing', async () => {
    const uuid = await newspaper();
    const m = fake('M');
    expect((await linkOf('M', uuid))?.externalId).toBe('LS-77');
    expect(leadSourceCalls(m, 'GET').length).toBeGreaterThan(0);
    expect(leadSourceCalls(m, 'POST')).toEqual([]);
    expect(m.leadSources).toEqual([{ id: 'LS-77', name: 'newspaper', active: true }]);
    const prospectUuid = await saveUser('p-news-m', prospect, fromNewspaper);
    expect((await eventually(() => m.userByRef(prospectUuid))).leadSourceId).toBe('LS-77');
  });

  it('creates nothing in a partner without lead-source creation when no name matches, sends prospects without lead source, and skips the lead source with the reason', async () => {
    const uuid = await newspaper();
    const x = fake('X');
    expect(leadSourceCalls(x, 'GET').length).toBeGreaterThan(0);
    expect(leadSourceCalls(x, 'POST')).toEqual([]);
    expect(x.leadSources).toEqual([]);
    expect(await linkOf('X', uuid)).toBeNull();
    const delivery = await deliveryOf('X', uuid);
    expect(delivery?.status).toBe('SKIPPED');
    expect(delivery?.lastError).toMatch(/unmatched/);
    expect(delivery?.lastError).toMatch(/without/);
    const prospectUuid = await saveUser('p-news-x', prospect, fromNewspaper);
    const delivered = await eventually(() => x.userByRef(prospectUuid));
    expect(delivered.leadSourceId).toBeNull();
    expect(leadSourceCalls(x, 'POST')).toEqual([]);
  });

  it('creates the lead source directly in a partner that can only create lead sources (no list to match against)', async () => {
    const uuid = await newspaper();
    const k = fake('K');
    expect(leadSourceCalls(k, 'GET')).toEqual([]);
    expect(leadSourceCalls(k, 'POST')).toHaveLength(1);
    const created = k.leadSources.find((l) => l.name === 'Newspaper');
    expect((await linkOf('K', uuid))?.externalId).toBe(created!.id);
    const prospectUuid = await saveUser('p-news-k', prospect, fromNewspaper);
    expect((await eventually(() => k.userByRef(prospectUuid))).leadSourceId).toBe(created!.id);
  });

  it('sends no lead source to a partner whose agreement leaves it out: no lead-source delivery, prospects without lead source', async () => {
    const uuid = await newspaper();
    const l = fake('L');
    const prospectUuid = await saveUser('p-news-l', prospect, fromNewspaper);
    expect((await eventually(() => l.userByRef(prospectUuid))).leadSourceId).toBeNull();
    await settled(rig);
    expect(await deliveryOf('L', uuid)).toBeNull();
    expect(leadSourceCalls(l)).toEqual([]);
    expect(await linkOf('L', uuid)).toBeNull();
  });

  it('renames the lead source in partners that can update it (PUT /lead-sources/<id>) and sends no update to one that cannot', async () => {
    const uuid = await newspaper();
    const b = fake('B');
    const c = fake('C');
    const bId = (await linkOf('B', uuid))!.externalId;
    const cId = (await linkOf('C', uuid))!.externalId;
    expect(c.leadSources.find((l) => l.id === cId)?.name).toBe('Newspaper');

    expect(await saveLeadSource('NEWSPAPER', 'Newspapers')).toBe(uuid);
    await eventually(() => b.leadSources.find((l) => l.id === bId)?.name === 'Newspapers');
    const put = leadSourceCalls(b, 'PUT');
    expect(put.map((r) => r.path)).toEqual([`/lead-sources/${encodeURIComponent(bId)}`]);
    expect(JSON.parse(put[0].body)).toMatchObject({ name: 'Newspapers' });
    await settled(rig);
    expect(leadSourceCalls(c, 'PUT')).toEqual([]);
    expect(leadSourceCalls(c, 'POST')).toHaveLength(1);
    expect(c.leadSources.find((l) => l.id === cId)?.name).toBe('Newspaper');
    // C keeps its link: prospects from the renamed source still carry C's ID.
    expect((await deliveryOf('C', uuid))?.deliveredVersion).toBe(2);
    expect((await linkOf('C', uuid))?.externalId).toBe(cId);
  });
});

describe('trial dates follow the trial agreement', () => {
  const trial = { trialStartDate: '2026-01-01', trialEndDate: '2026-01-15' };

  it('sends trial dates of a prospect only to partners with trial agreed, and never those of a member', async () => {
    const t = fake('T');
    const b = fake('B');
    const prospectUuid = await saveUser('p-trial', { ...prospect, ...trial });
    const toT = await eventually(() => t.userByRef(prospectUuid));
    expect(toT).toMatchObject({ type: 'PROSPECT', trialStart: '2026-01-01', trialEnd: '2026-01-15' });
    const toB = await eventually(() => b.userByRef(prospectUuid));
    expect(toB.trialStart ?? null).toBeNull();
    expect(toB.trialEnd ?? null).toBeNull();

    const memberUuid = await saveUser('m-trial', { ...prospect, firstname: 'Mary', userType: 'MEMBER', ...trial });
    const member = await eventually(() => t.userByRef(memberUuid));
    expect(member.type).toBe('MEMBER');
    expect(member.trialStart ?? null).toBeNull();
    expect(member.trialEnd ?? null).toBeNull();
    await settled(rig);
    for (const r of [...t.requests, ...b.requests].filter((r) => r.body.includes(memberUuid))) expect(r.body).not.toContain('2026-01-');
  });
});

describe('a prospect that arrives with a brand-new lead source', () => {
  it('carries the lead source to the partner, created there once, even when its delivery races the lead source own one', async () => {
    const b = fake('B');
    const uuid = await saveLeadSource('MAGAZINE', 'Magazine');
    const prospectUuid = await saveUser('p-magazine', prospect, '<leadInfo><leadSource>MAGAZINE</leadSource></leadInfo>');
    const delivered = await eventually(() => b.userByRef(prospectUuid));
    await settled(rig);
    const created = b.leadSources.filter((l) => l.name === 'Magazine');
    expect(created).toHaveLength(1);
    expect(delivered.leadSourceId).toBe(created[0].id);
    expect((await linkOf('B', uuid))?.externalId).toBe(created[0].id);
    expect(await deliveryOf('B', uuid)).toMatchObject({ status: 'DELIVERED' });
    expect(b.applied.filter((a) => a.op === 'createLeadSource' && a.body.name === 'Magazine')).toHaveLength(1);
  });
});
