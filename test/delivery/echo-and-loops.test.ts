import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeReferencePartner } from '../../adapters/reference/fake.ts';
import { eventually, settled, startRig, type Rig } from '../support/delivery-rig.ts';
import { API, userXml } from '../support/test-hub.ts';
import { xml } from '../support/xml.ts';

/**
 * A partner that receives a record usually sends it straight back (its own
 * sync sees a new or changed person). The hub must recognise the echo by
 * the partner's own ID, answer with the same record, and not start a
 * ping-pong: nothing unchanged is stored or delivered, and no change goes
 * back to the provider that made it.
 */

let rig: Rig;
beforeAll(async () => {
  rig = await startRig([{ code: 'A', receives: {} }, { code: 'B', receives: {} }]);
});
afterAll(() => rig?.stop());

const prospect = { firstname: 'Pete', lastname: 'Prospect', userStatus: 'ACTIVE', userType: 'PROSPECT', email: 'pete@example.com', city: 'Springfield' };

async function save(who: string, recordID: string, fields: Record<string, string>): Promise<string> {
  const t = rig.partners[who].tenant;
  const res = await request(rig.hub.server).post(`${API}/user`).set('Authorization', t.auth).type('application/xml').send(userXml(t, recordID, fields));
  expect(res.status, res.text).toBe(200);
  return xml(res.text).response.uuid;
}

const fake = (code: string) => rig.partners[code].fake!;
const events = (uuid: string) => rig.hub.prisma.outboxEvent.count({ where: { entityId: uuid } });
/** Requests a fake received about this record (its body names the hub UUID, or its path the partner's ID). */
const about = (f: FakeReferencePartner, uuid: string, partnerId?: string) =>
  f.requests.filter((r) => r.body.includes(uuid) || (partnerId !== undefined && r.path === `/users/${encodeURIComponent(partnerId)}`));
/** Settled, plus a moment for anything that would still be on its way. */
const quiet = async () => {
  await settled(rig);
  await new Promise((r) => setTimeout(r, 300));
  await settled(rig);
};

describe('echoes and loops between two partners that both send and receive', () => {
  it('answers B echo of A prospect (same values, under B own ID) with the same hub record, records no change, and delivers nothing to anyone', async () => {
    const uuid = await save('A', 'a-echo', prospect);
    const b = fake('B');
    const a = fake('A');
    const atB = await eventually(() => b.userByRef(uuid));
    await quiet();
    expect(await events(uuid)).toBe(1);
    const aBefore = a.requests.length;
    const bBefore = b.requests.length;

    // B's own sync sends the person it just received back to the hub, under B's ID, client and club.
    const echoed = await save('B', atB.id, prospect);
    expect(echoed).toBe(uuid);
    await quiet();
    expect(await events(uuid)).toBe(1);
    expect(a.requests.length).toBe(aBefore);
    expect(about(a, uuid)).toEqual([]);
    expect(b.requests.length).toBe(bBefore);
    expect(b.applied.filter((w) => w.id === atB.id)).toHaveLength(1);
    // The hub knows B's ID as the same person: no second record was made for it.
    expect(await rig.hub.prisma.link.count({ where: { entityId: uuid, entityType: 'USER' } })).toBe(2);
  });

  it('delivers a change B makes to A prospect back to A as an update of A own record, and the loop stops at A echo', async () => {
    const a = fake('A');
    const b = fake('B');
    // A's own system holds its record under its own ID: the hub updates it by that ID.
    a.users.set('a-loop', { id: 'a-loop', externalRef: 'a-own-record', type: 'PROSPECT', firstName: 'Pete' });
    const uuid = await save('A', 'a-loop', prospect);
    const atB = await eventually(() => b.userByRef(uuid));
    await quiet();
    expect(about(a, uuid, 'a-loop')).toEqual([]);

    expect(await save('B', atB.id, { ...prospect, firstname: 'Peter' })).toBe(uuid);
    const put = await eventually(() => a.requests.find((r) => r.method === 'PUT' && r.path === '/users/a-loop'));
    expect(JSON.parse(put.body)).toMatchObject({ externalRef: uuid, firstName: 'Peter', lastName: 'Prospect', clientId: 'A-client', clubId: 'A-club' });
    expect(put.status).toBe(200);
    expect(a.users.get('a-loop')?.firstName).toBe('Peter');
    await quiet();
    expect(about(a, uuid, 'a-loop').filter((r) => r.method === 'POST')).toEqual([]);
    expect(await rig.hub.prisma.delivery.findFirst({ where: { entityId: uuid, targetProviderId: await providerIdOf('A') } })).toMatchObject({
      status: 'DELIVERED',
      deliveredVersion: 2,
    });
    // B made the change: B is not sent its own change back.
    expect(b.applied.filter((w) => w.id === atB.id).map((w) => w.op)).toEqual(['createUser']);

    // A's system now sends the person back as it holds it: nothing changed, so nothing moves.
    const eventsBefore = await events(uuid);
    const aBefore = a.requests.length;
    const bBefore = b.requests.length;
    expect(await save('A', 'a-loop', { ...prospect, firstname: 'Peter' })).toBe(uuid);
    await quiet();
    expect(await events(uuid)).toBe(eventsBefore);
    expect(a.requests.length).toBe(aBefore);
    expect(b.requests.length).toBe(bBefore);
  });

  it('never delivers a record back to the provider that made the change', async () => {
    const a = fake('A');
    const b = fake('B');
    const fromA = await save('A', 'a-origin', { ...prospect, firstname: 'Alma' });
    const fromB = await save('B', 'b-origin', { ...prospect, firstname: 'Bea' });
    const aAtB = await eventually(() => b.userByRef(fromA));
    const bAtA = await eventually(() => a.userByRef(fromB));
    await save('A', 'a-origin', { firstname: 'Alma2' });
    await save('B', 'b-origin', { firstname: 'Bea2' });
    await eventually(() => b.users.get(aAtB.id)?.firstName === 'Alma2' && a.users.get(bAtA.id)?.firstName === 'Bea2');
    await quiet();
    // A's record: only B heard of it (a create and an update); B's record: only A.
    expect(about(a, fromA, 'a-origin')).toEqual([]);
    expect(about(b, fromB, 'b-origin')).toEqual([]);
    expect(about(b, fromA, aAtB.id).map((r) => r.method)).toEqual(['POST', 'PUT']);
    expect(about(a, fromB, bAtA.id).map((r) => r.method)).toEqual(['POST', 'PUT']);
    const deliveries = await rig.hub.prisma.delivery.findMany({ where: { entityId: { in: [fromA, fromB] } } });
    const aProvider = await providerIdOf('A');
    const bProvider = await providerIdOf('B');
    expect(deliveries.filter((d) => d.entityId === fromA).map((d) => d.targetProviderId)).toEqual([bProvider]);
    expect(deliveries.filter((d) => d.entityId === fromB).map((d) => d.targetProviderId)).toEqual([aProvider]);
  });

  it('delivers nothing for an update that changes no field, nor for one that changes only modifiedBy and modifiedDate', async () => {
    const b = fake('B');
    const uuid = await save('A', 'a-quiet', prospect);
    await eventually(() => b.userByRef(uuid));
    await quiet();
    const before = b.requests.length;
    const stored = await rig.hub.prisma.user.findUniqueOrThrow({ where: { id: uuid } });

    expect(await save('A', 'a-quiet', prospect)).toBe(uuid);
    const later = new Date(stored.modifiedDate.getTime() + 60_000).toISOString();
    expect(await save('A', 'a-quiet', { ...prospect, modifiedBy: 'somebody else', modifiedDate: later })).toBe(uuid);
    expect(await save('A', 'a-quiet', { modifiedBy: 'a third person' })).toBe(uuid);
    await quiet();
    expect(await events(uuid)).toBe(1);
    expect(b.requests.length).toBe(before);
    const after = await rig.hub.prisma.user.findUniqueOrThrow({ where: { id: uuid } });
    expect(after.version).toBe(stored.version);
    expect(after.modifiedBy).toBe(stored.modifiedBy);

    // A real change after them is delivered as usual.
    await save('A', 'a-quiet', { city: 'Shelbyville' });
    await eventually(() => b.userByRef(uuid)?.city === 'Shelbyville');
  });
});

async function providerIdOf(code: string): Promise<string> {
  return (await rig.hub.prisma.provider.findUniqueOrThrow({ where: { code: rig.partners[code].tenant.provider } })).id;
}
