import request from 'supertest';
import { version as uuidVersion } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, userXml } from '../support/test-hub.ts';
import { eventually, settled, startRig, type Rig } from '../support/delivery-rig.ts';
import { xml } from '../support/xml.ts';
import { eventIdOf } from '../../src/store/outbox.ts';

let rig: Rig;
beforeAll(async () => {
  rig = await startRig([{ code: 'A', receives: {} }, { code: 'B', receives: {} }, { code: 'S' }]);
});
afterAll(() => rig?.stop());

const prospect = { firstname: 'Pete', lastname: 'Prospect', userStatus: 'ACTIVE', userType: 'PROSPECT', email: 'pete@example.com' };
const save = (who: string, recordID: string, fields: Record<string, string>) => {
  const t = rig.partners[who].tenant;
  return request(rig.hub.server).post(`${API}/user`).set('Authorization', t.auth).type('application/xml').send(userXml(t, recordID, fields));
};

describe('a change reaches every other receiving partner of the client', () => {
  it('delivers A prospect to B, links B ID to the hub record, and sends the later update as an update of the same B record', async () => {
    const started = Date.now();
    const res = await save('A', 'a-1', prospect);
    expect(res.status).toBe(200);
    const uuid = xml(res.text).response.uuid;
    const b = rig.partners.B.fake!;
    const delivered = await eventually(() => b.userByRef(uuid), 5_000);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(delivered).toMatchObject({ type: 'PROSPECT', firstName: 'Pete', lastName: 'Prospect', email: 'pete@example.com', clientId: 'B-client', clubId: 'B-club' });
    const link = await eventually(() =>
      rig.hub.prisma.link.findFirst({ where: { entityId: uuid, providerId: { not: undefined }, externalId: delivered.id } }),
    );
    expect(link.entityType).toBe('USER');

    await save('A', 'a-1', { firstname: 'Peter' });
    await eventually(() => b.users.get(delivered.id)?.firstName === 'Peter', 5_000);
    expect(b.applied.filter((a) => a.op === 'createUser' && a.body.externalRef === uuid)).toHaveLength(1);
    expect(b.applied.filter((a) => a.op === 'updateUser' && a.id === delivered.id)).toHaveLength(1);
    // B now answers for the record by its own ID: the same hub record.
    const viaB = await request(rig.hub.server)
      .get(`${API}/user?provider=${rig.partners.B.tenant.provider}&client_id=B-client&club_id=B-club&recordID=${delivered.id}`)
      .set('Authorization', rig.partners.B.tenant.auth);
    expect(viaB.status).toBe(200);
    expect(xml(viaB.text).user.userInfo.firstname).toBe('Peter');
  });

  it('never delivers a change back to the provider it came from, and fans out to every other receiver', async () => {
    const res = await save('S', 's-1', { ...prospect, firstname: 'Sam' });
    const uuid = xml(res.text).response.uuid;
    await eventually(() => rig.partners.A.fake!.userByRef(uuid) && rig.partners.B.fake!.userByRef(uuid), 5_000);
    const fromA = await save('A', 'a-2', { ...prospect, firstname: 'Alma' });
    const alma = xml(fromA.text).response.uuid;
    await eventually(() => rig.partners.B.fake!.userByRef(alma), 5_000);
    await settled(rig);
    expect(rig.partners.A.fake!.userByRef(alma)).toBeUndefined();
  });

  it('sends nothing for an update that changes no field', async () => {
    const res = await save('A', 'a-3', prospect);
    const uuid = xml(res.text).response.uuid;
    const b = rig.partners.B.fake!;
    await eventually(() => b.userByRef(uuid), 5_000);
    await settled(rig);
    const before = b.requests.length;
    await save('A', 'a-3', prospect);
    await save('A', 'a-3', { firstname: 'Pete', modifiedBy: 'someone else' });
    await settled(rig);
    await new Promise((r) => setTimeout(r, 300));
    expect(b.requests.length).toBe(before);
  });

  it('keeps a per-record delivery history: version, idempotency key, calls and outcome', async () => {
    const res = await save('A', 'a-4', prospect);
    const uuid = xml(res.text).response.uuid;
    await eventually(() => rig.partners.B.fake!.userByRef(uuid), 5_000);
    await settled(rig);
    const deliveries = await rig.hub.prisma.delivery.findMany({ where: { entityId: uuid }, include: { attemptsLog: true } });
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatchObject({ status: 'DELIVERED', wantedVersion: 1, deliveredVersion: 1 });
    // Time-ordered IDs (UUID version 7), as the record's own.
    expect([uuid, deliveries[0].id, deliveries[0].attemptsLog[0].id].map(uuidVersion)).toEqual([7, 7, 7]);
    // So is the link to B's ID for it, written with the delivery's finish.
    const toB = await rig.hub.prisma.link.findFirstOrThrow({ where: { entityId: uuid, providerId: deliveries[0].targetProviderId } });
    expect(toB.externalId).toBe(rig.partners.B.fake!.userByRef(uuid)!.id);
    expect(uuidVersion(toB.id)).toBe(7);
    expect(deliveries[0].attemptsLog[0]).toMatchObject({ outcome: 'DELIVERED', version: 1, httpStatus: 201 });
    expect(deliveries[0].attemptsLog[0].calls).toMatch(/^createUser 201 \d+ms/);
    expect(deliveries[0].attemptsLog[0].idempotencyKey).toBe(eventIdOf(uuid, 1));
    // A create carries the record's creation key, the same for every version, so a repeated create is answered, not applied.
    const create = rig.partners.B.fake!.requests.find((r) => r.method === 'POST' && r.body.includes(uuid))!;
    expect(create.headers['idempotency-key']).toBe(eventIdOf(uuid, 0));
    // An update carries the event ID of the version it sends.
    await save('A', 'a-4', { firstname: 'Updated' });
    await eventually(() => rig.partners.B.fake!.requests.find((r) => r.method === 'PUT' && r.body.includes('Updated')), 5_000);
    const update = rig.partners.B.fake!.requests.find((r) => r.method === 'PUT' && r.body.includes('Updated'))!;
    expect(update.headers['idempotency-key']).toBe(eventIdOf(uuid, 2));
    const outbox = await rig.hub.prisma.outboxEvent.findFirstOrThrow({ where: { entityId: uuid, version: 2 } });
    expect(update.headers['idempotency-key']).toBe(outbox.id);
  });
});
