import { randomUUID } from 'node:crypto';
import pg from 'pg';
import request from 'supertest';
import { version as uuidVersion } from 'uuid';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { USER_SCHEMA } from '../../src/domain/user-record.ts';
import { API, createTestHub, turnUpTenant, userXml, type Tenant, type TestHub } from '../support/test-hub.ts';
import { errorOf, xml } from '../support/xml.ts';

const prospect = { firstname: 'Gina', lastname: 'Group', userStatus: 'ACTIVE', userType: 'PROSPECT', email: 'gina@example.com' };

describe('group commit of saves', () => {
  let hub: TestHub;
  let tenant: Tenant;
  beforeAll(async () => {
    hub = createTestHub();
    tenant = await turnUpTenant(hub);
  });
  afterAll(() => hub.close());

  const post = (body: string) => request(hub.server).post(`${API}/user`).set('Authorization', tenant.auth).set('Content-Type', 'application/xml').send(body);

  it('answers every one of many saves posted at once, and writes each record, version and event once', async () => {
    const distinct = Array.from({ length: 60 }, (_, i) => post(userXml(tenant, `gc-${i}`, { ...prospect, firstname: `Gina${i}` })));
    // Six different versions of one record, racing each other and the rest.
    const same = Array.from({ length: 6 }, (_, i) => post(userXml(tenant, 'gc-same', { ...prospect, firstname: `Same${i}` })));
    const responses = await Promise.all([...distinct, ...same]);
    expect(responses.map((r) => r.status)).toEqual(responses.map(() => 200));
    const uuids = responses.map((r) => xml(r.text).response.uuid as string);
    expect(new Set(uuids.slice(0, 60)).size).toBe(60);
    expect(new Set(uuids.slice(60)).size).toBe(1);

    const sameId = uuids[60];
    const users = await hub.prisma.user.findMany({ where: { id: { in: uuids } } });
    expect(users).toHaveLength(61);
    for (let i = 0; i < 60; i++) expect(users.find((u) => u.id === uuids[i])?.firstname).toBe(`Gina${i}`);
    const raced = users.find((u) => u.id === sameId)!;
    // Every save changed the first name, so each made a version with its own event; the last one written is stored.
    expect(raced.version).toBe(6);
    expect(raced.firstname).toMatch(/^Same[0-5]$/);
    const events = await hub.prisma.outboxEvent.findMany({ where: { entityId: { in: uuids } }, select: { entityId: true, version: true } });
    expect(events.filter((e) => e.entityId === sameId).map((e) => e.version).sort()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(events.filter((e) => e.entityId !== sameId)).toHaveLength(60);
    expect(await hub.prisma.link.count({ where: { externalId: { startsWith: 'gc-' }, entityId: { in: uuids } } })).toBe(61);
  });

  it('gives new records and their links time-ordered IDs (UUID version 7): each one made later sorts after the ones before', async () => {
    const uuids: string[] = [];
    for (let i = 0; i < 3; i++) uuids.push(xml((await post(userXml(tenant, `gc-ordered-${i}`, prospect))).text).response.uuid as string);
    expect(uuids.map(uuidVersion)).toEqual([7, 7, 7]);
    expect([...uuids].sort()).toEqual(uuids);
    const links = await hub.prisma.link.findMany({ where: { entityId: { in: uuids } }, select: { id: true, entityId: true } });
    const linkIds = uuids.map((uuid) => links.find((l) => l.entityId === uuid)!.id);
    expect(linkIds.map(uuidVersion)).toEqual([7, 7, 7]);
    expect([...linkIds].sort()).toEqual(linkIds);
  });

  // PostgreSQL only: PGlite serves one session, so a second transaction holding a row lock cannot exist there.
  it.runIf(inject('databaseKind') === 'postgres')('answers 503 to retry when another transaction holds the record too long, and other saves are not held up', async () => {
    const uuid = xml((await post(userXml(tenant, 'gc-locked', prospect))).text).response.uuid as string;
    const locker = new pg.Client({ connectionString: inject('databaseUrl') });
    await locker.connect();
    try {
      await locker.query('BEGIN');
      await locker.query('SELECT 1 FROM user_record WHERE id = $1 FOR UPDATE', [uuid]);
      const started = Date.now();
      let stuckAt = 0;
      const stuck = post(userXml(tenant, 'gc-locked', { ...prospect, firstname: 'Changed' })).then((r) => ((stuckAt = Date.now() - started), r));
      const others = await Promise.all(Array.from({ length: 10 }, (_, i) => post(userXml(tenant, `gc-free-${i}`, prospect))));
      const othersAt = Date.now() - started;
      expect(others.map((r) => r.status)).toEqual(Array(10).fill(200));
      const res = await stuck;
      expect(res.status).toBe(503);
      expect(errorOf(res.text).reason).toBe('UNAVAILABLE');
      expect(res.headers['retry-after']).toBe('1');
      expect(othersAt).toBeLessThan(stuckAt);
    } finally {
      await locker.query('ROLLBACK');
      await locker.end();
    }
    // Once the lock is gone, the retry goes through.
    expect((await post(userXml(tenant, 'gc-locked', { ...prospect, firstname: 'Changed' }))).status).toBe(200);
  }, 30_000);

  it('fails only the row the database refuses; the rest of its statement is written', async () => {
    const providerId = (await hub.prisma.provider.findUniqueOrThrow({ where: { code: tenant.provider } })).id;
    const grants = await hub.services.tenancy.grantsOf(providerId);
    const client = grants.clients.get(tenant.client)!;
    const clubId = client.clubs.get(tenant.clubs[0])!;
    const now = new Date().toISOString();
    const write = (externalId: string, firstname: string) => {
      const row = {
        id: randomUUID(),
        clientId: client.clientId,
        clubId,
        version: 1,
        values: { ...prospect, firstname, createdBy: tenant.provider, createdDate: now, modifiedBy: tenant.provider, modifiedDate: now },
        extra: { leadSourceId: null, ownerId: null, pendingProviderId: null, pendingLeadSourceRef: null, pendingOwnerRef: null },
      };
      const key = { providerId, entityType: 'USER' as const, clubId, externalId };
      return hub.store.create('user_record', USER_SCHEMA, key, row, { entityType: 'USER', originProviderId: providerId }).then(
        (outcome) => ({ created: outcome.created, id: row.id }),
        (error: Error) => ({ error }),
      );
    };
    // Called in one turn of the event loop, so they share one statement; one is longer than its column.
    const outcomes = await Promise.all([write('gc-batch-1', 'Ann'), write('gc-batch-2', 'x'.repeat(101)), write('gc-batch-3', 'Bea')]);
    expect(outcomes[1]).toHaveProperty('error');
    expect((outcomes[1] as { error: { code?: string } }).error.code).toBe('22001'); // value too long for its column
    for (const outcome of [outcomes[0], outcomes[2]]) {
      expect(outcome).toMatchObject({ created: true });
      expect(await hub.prisma.user.count({ where: { id: (outcome as { id: string }).id } })).toBe(1);
    }
    expect(await hub.prisma.link.count({ where: { externalId: { startsWith: 'gc-batch-' } } })).toBe(2);

    // A create of a record that exists writes nothing and answers with the stored record, read in the same statement.
    const again = await write('gc-batch-1', 'Other');
    expect(again).toMatchObject({ created: false });
    const stored = await hub.store.create(
      'user_record',
      USER_SCHEMA,
      { providerId, entityType: 'USER', clubId, externalId: 'gc-batch-3' },
      { id: randomUUID(), clientId: client.clientId, clubId, version: 1, values: { ...prospect, createdDate: now, modifiedDate: now }, extra: {} },
      { entityType: 'USER', originProviderId: providerId },
    ).catch((error: Error) => error);
    expect(stored).toMatchObject({ created: false, found: { entityId: (outcomes[2] as { id: string }).id, row: { firstname: 'Bea', version: 1 } } });
    expect(await hub.prisma.user.count({ where: { firstname: 'Other' } })).toBe(0);
  });
});
