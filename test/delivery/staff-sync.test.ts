import type http from 'node:http';
import request from 'supertest';
import { version as uuidVersion } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Capability } from '../../adapters/contract.ts';
import { REFERENCE_CAPABILITIES } from '../../adapters/reference/index.ts';
import type { FakeReferencePartner } from '../../adapters/reference/fake.ts';
import { eventIdOf } from '../../src/store/outbox.ts';
import { eventually, settled, startRig, type Rig } from '../support/delivery-rig.ts';
import { API, userXml } from '../support/test-hub.ts';
import { xml } from '../support/xml.ts';

/**
 * Seed 001 "Staff Synchronization" / seed 003 "Synchronizing Staff": the hub
 * never creates staff in a partner; it matches them by email and sends
 * prospects with the partner's own staff ID as owner, or with none.
 */

const staffFields = (email: string, firstname = 'John') => ({ firstname, lastname: 'Staff', email, userStatus: 'ACTIVE', userType: 'STAFF' });
const prospect = { firstname: 'Pete', lastname: 'Prospect', userStatus: 'ACTIVE', userType: 'PROSPECT', email: 'pete@example.com' };
const ownedBy = (ownerID: string) => `<leadInfo><ownerID>${ownerID}</ownerID></leadInfo>`;

function saver(rig: () => Rig) {
  const post = async (path: 'user' | 'staff', who: string, recordID: string, fields: Record<string, string>, extra = '') => {
    const t = rig().partners[who].tenant;
    const res = await request(rig().hub.server).post(`${API}/${path}`).set('Authorization', t.auth).type('application/xml').send(userXml(t, recordID, fields, extra));
    expect(res.status, res.text).toBe(200);
    return xml(res.text).response.uuid as string;
  };
  return {
    staff: (who: string, recordID: string, email: string) => post('staff', who, recordID, staffFields(email)),
    prospect: (who: string, recordID: string, extra = '', fields: Record<string, string> = prospect) => post('user', who, recordID, fields, extra),
  };
}

const providerIdOf = async (rig: Rig, who: string) =>
  (await rig.hub.prisma.provider.findUniqueOrThrow({ where: { code: rig.partners[who].tenant.provider } })).id;

const staffWrites = (fake: FakeReferencePartner) => fake.requests.filter((r) => r.path.startsWith('/staff') && r.method !== 'GET');
const staffReads = (fake: FakeReferencePartner) => fake.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/staff'));
const isFind = (path: string) => new URL(path, 'http://fake').searchParams.has('email');

/** Holds the fake's requests that match until released: a partner call still in flight. */
function holdRequests(fake: FakeReferencePartner, matches: (req: http.IncomingMessage) => boolean): { release(): void; held(): number } {
  const target = fake as unknown as { handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> };
  const original = target.handle.bind(fake);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let held = 0;
  target.handle = async (req, res) => {
    if (matches(req)) {
      held += 1;
      await gate;
    }
    return original(req, res);
  };
  return {
    release() {
      target.handle = original;
      open();
    },
    held: () => held,
  };
}

describe('staff are matched by email, never created (seed 001 example: John Staff 1111 -> 9999)', () => {
  let rig: Rig;
  const save = saver(() => rig);
  let b: FakeReferencePartner;
  let bProvider: string;

  beforeAll(async () => {
    rig = await startRig([{ code: 'A' }, { code: 'B', receives: { agreement: { prospects: { staffOwner: true, leadSource: false, trial: false } } } }]);
    b = rig.partners.B.fake!;
    b.addStaff('9999', 'JStaff@Club.com', 'John Staff');
    bProvider = await providerIdOf(rig, 'B');
  });
  afterAll(() => rig?.stop());

  it('fetches B staff list when A sends staff 1111, matches jstaff@club.com to JStaff@Club.com, links 9999, and never writes staff to B', async () => {
    const uuid = await save.staff('A', '1111', 'jstaff@club.com');
    const link = await eventually(() => rig.hub.prisma.link.findFirst({ where: { providerId: bProvider, entityType: 'STAFF', entityId: uuid } }));
    expect(link.externalId).toBe('9999');
    // The staff member and the link the match wrote get time-ordered IDs (UUID version 7).
    expect([uuid, link.id].map(uuidVersion)).toEqual([7, 7]);
    await settled(rig);
    // The staff list itself, not a lookup by email.
    expect(staffReads(b).some((r) => !isFind(r.path) && r.path.includes('clientId=B-client') && r.path.includes('clubId=B-club'))).toBe(true);
    expect(staffWrites(b)).toEqual([]);
    expect(b.applied).toEqual([]);
    const delivery = await rig.hub.prisma.delivery.findFirstOrThrow({ where: { entityId: uuid, targetProviderId: bProvider } });
    expect(delivery.status).toBe('DELIVERED');
  });

  it('sends a prospect owned by 1111 to B with B staff ID 9999 as owner', async () => {
    const uuid = await save.prospect('A', 'p-1111', ownedBy('1111'));
    const delivered = await eventually(() => b.userByRef(uuid));
    expect(delivered).toMatchObject({ type: 'PROSPECT', firstName: 'Pete', ownerId: '9999' });
  });

  it('sends a prospect owned by a staff B does not have without owner, and skips that staff as unmatched', async () => {
    const staffUuid = await save.staff('A', '2222', 'nobody@club.com');
    const uuid = await save.prospect('A', 'p-2222', ownedBy('2222'));
    const delivered = await eventually(() => b.userByRef(uuid));
    expect(delivered.ownerId).toBeNull();
    await settled(rig);
    const staffDelivery = await rig.hub.prisma.delivery.findFirstOrThrow({ where: { entityId: staffUuid, targetProviderId: bProvider } });
    expect(staffDelivery.status).toBe('SKIPPED');
    expect(staffDelivery.lastError).toMatch(/unmatched/);
    expect(await rig.hub.prisma.link.count({ where: { providerId: bProvider, entityId: staffUuid } })).toBe(0);
    expect(staffWrites(b)).toEqual([]);
  });

  it('matches partner emails case-insensitively and ignoring surrounding spaces', async () => {
    b.addStaff('7777', ' Mixed@Case.Com ');
    const uuid = await save.staff('A', '3333', 'mixed@case.com');
    const link = await eventually(() => rig.hub.prisma.link.findFirst({ where: { providerId: bProvider, entityType: 'STAFF', entityId: uuid } }));
    expect(link.externalId).toBe('7777');
    const prospectUuid = await save.prospect('A', 'p-3333', ownedBy('3333'));
    expect((await eventually(() => b.userByRef(prospectUuid))).ownerId).toBe('7777');
  });

  it('gives the owner to a prospect posted before the staff match finished: the user delivery matches inline', async () => {
    b.addStaff('8888', 'late@club.com');
    // The staff delivery is held in flight at B (its calls carry the staff version's idempotency key).
    let staffKey = '';
    const hold = holdRequests(b, (req) => staffKey !== '' && req.headers['idempotency-key'] === staffKey);
    try {
      const staffUuid = await save.staff('A', '4444', 'late@club.com');
      staffKey = eventIdOf(staffUuid, 1);
      const uuid = await save.prospect('A', 'p-4444', ownedBy('4444'));
      const delivered = await eventually(() => b.userByRef(uuid));
      expect(delivered.ownerId).toBe('8888');
      // The staff's own delivery has not finished yet.
      const staffDelivery = await rig.hub.prisma.delivery.findFirstOrThrow({ where: { entityId: staffUuid, targetProviderId: bProvider } });
      expect(staffDelivery.deliveredVersion).toBe(0);
      expect(hold.held()).toBeGreaterThan(0);
      hold.release();
      await settled(rig);
      expect(await rig.hub.prisma.delivery.findFirstOrThrow({ where: { id: staffDelivery.id } })).toMatchObject({ status: 'DELIVERED', deliveredVersion: 1 });
      const links = await rig.hub.prisma.link.findMany({ where: { providerId: bProvider, entityType: 'STAFF', entityId: staffUuid } });
      expect(links.map((l) => l.externalId)).toEqual(['8888']);
    } finally {
      hold.release();
    }
  });
});

describe('what the partner API and the agreement allow decide whether prospects carry an owner', () => {
  let rig: Rig;
  const save = saver(() => rig);
  const withoutStaffCalls = (REFERENCE_CAPABILITIES as readonly Capability[]).filter((c) => c !== 'listStaff' && c !== 'findStaffByEmail');
  const agreement = { prospects: { staffOwner: true, leadSource: false, trial: false } };

  beforeAll(async () => {
    rig = await startRig([
      { code: 'A' },
      // F: only a lookup by email. N: no staff call at all. O: could match, but no staff owner agreed.
      { code: 'F', receives: { agreement, capabilities: [...withoutStaffCalls, 'findStaffByEmail'] } },
      { code: 'N', receives: { agreement, capabilities: withoutStaffCalls } },
      { code: 'O', receives: { agreement: { prospects: { staffOwner: false, leadSource: false, trial: false } } } },
    ]);
    for (const code of ['F', 'N', 'O']) rig.partners[code].fake!.addStaff('9999', 'JStaff@Club.com', 'John Staff');
  });
  afterAll(() => rig?.stop());

  it('looks the staff up by email (GET /staff?email=) when the partner has no staff list, and still matches', async () => {
    const f = rig.partners.F.fake!;
    const fProvider = await providerIdOf(rig, 'F');
    const uuid = await save.staff('A', '1111', 'jstaff@club.com');
    const link = await eventually(() => rig.hub.prisma.link.findFirst({ where: { providerId: fProvider, entityType: 'STAFF', entityId: uuid } }));
    expect(link.externalId).toBe('9999');
    const reads = staffReads(f);
    expect(reads.length).toBeGreaterThan(0);
    for (const r of reads) expect(new URL(r.path, 'http://fake').searchParams.get('email')).toBe('jstaff@club.com');
    expect(staffWrites(f)).toEqual([]);
    const prospectUuid = await save.prospect('A', 'p-f', ownedBy('1111'));
    expect((await eventually(() => f.userByRef(prospectUuid))).ownerId).toBe('9999');
  });

  it('does not deliver staff changes to a partner with neither a staff list nor a lookup by email, and sends its prospects without owner', async () => {
    const n = rig.partners.N.fake!;
    const nProvider = await providerIdOf(rig, 'N');
    const staffUuid = await save.staff('A', '5555', 'jstaff5@club.com');
    const uuid = await save.prospect('A', 'p-n', ownedBy('5555'));
    expect((await eventually(() => n.userByRef(uuid))).ownerId).toBeNull();
    await settled(rig);
    expect(await rig.hub.prisma.delivery.count({ where: { entityId: staffUuid, targetProviderId: nProvider } })).toBe(0);
    // The staff did reach the partners that can match it.
    expect(await rig.hub.prisma.delivery.count({ where: { entityId: staffUuid } })).toBeGreaterThan(0);
    expect(n.requests.filter((r) => r.path.startsWith('/staff'))).toEqual([]);
  });

  it('sends prospects without owner when no staff owner is agreed, even for a matched staff member', async () => {
    const o = rig.partners.O.fake!;
    const oProvider = await providerIdOf(rig, 'O');
    const staffUuid = await save.staff('A', '6666', 'jstaff@club.com');
    // Matched earlier (say, before the agreement changed): the link alone must not make an owner.
    const staff = await rig.hub.prisma.user.findUniqueOrThrow({ where: { id: staffUuid } });
    await rig.hub.prisma.link.create({
      data: { id: crypto.randomUUID(), providerId: oProvider, entityType: 'STAFF', entityId: staffUuid, clubId: staff.clubId, externalId: '9999' },
    });
    const uuid = await save.prospect('A', 'p-o', ownedBy('6666'));
    const delivered = await eventually(() => o.userByRef(uuid));
    expect(delivered.ownerId).toBeNull();
    await settled(rig);
    expect(await rig.hub.prisma.delivery.count({ where: { entityId: staffUuid, targetProviderId: oProvider } })).toBe(0);
    expect(o.requests.filter((r) => r.path.startsWith('/staff'))).toEqual([]);
  });
});
