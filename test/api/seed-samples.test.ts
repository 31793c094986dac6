import { readFileSync } from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, createTestHub, turnUpTenant, type Tenant } from '../support/test-hub.ts';
import { xml } from '../support/xml.ts';

const fixture = (name: string) => readFileSync(path.join(import.meta.dirname, '../fixtures/seed', name), 'utf8');
const hub = createTestHub();
let seedTenant: Tenant;
let intouch: Tenant;

// The seed samples' own IDs; only this file uses them.
const SAMPLE_ID = 'xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx';

beforeAll(async () => {
  seedTenant = await turnUpTenant(hub, { provider: 'PROVIDER_ID', client: SAMPLE_ID, clubIds: [SAMPLE_ID] });
  intouch = await turnUpTenant(hub, { provider: 'INTOUCH', client: '1111', clubIds: ['11111111-1111-1111-1111-111111111111'] });
});
afterAll(() => hub.close());

describe('the seed API guide samples (002), posted byte for byte', () => {
  it('saves the full fetch sample and returns it from GET in the same shape, with the seed query typo tolerated', async () => {
    const saved = await request(hub.server).post(`${API}/user`).set('Authorization', seedTenant.auth).set('Content-Type', 'application/xml').send(fixture('user-fetch.xml'));
    expect(saved.status).toBe(200);
    // The seed's own URL: `?provider=PROVIDER_ID?client_id=…`
    const res = await request(hub.server)
      .get(`${API}/user?provider=PROVIDER_ID?client_id=${SAMPLE_ID}&club_id=${SAMPLE_ID}&recordID=${SAMPLE_ID}`)
      .set('Authorization', seedTenant.auth);
    expect(res.status).toBe(200);
    expect(xml(res.text)).toEqual(xml(fixture('user-fetch.xml')));
  });

  it('saves the user sample, including its `</ providerInfo >`, and answers the seed response with the same uuid (nothing in it differs, so nothing changes)', async () => {
    const before = await hub.prisma.user.findFirstOrThrow({ where: { email: 'foo@bar.com', firstname: 'Foo', clubId: (await hub.prisma.link.findFirstOrThrow({ where: { externalId: SAMPLE_ID, entityType: 'USER' } })).clubId } });
    const res = await request(hub.server).post(`${API}/user`).set('Authorization', seedTenant.auth).set('Content-Type', 'application/xml').send(fixture('user-save.xml'));
    expect(res.status).toBe(200);
    expect(res.type).toBe('application/xml');
    expect(res.text).toContain(`<response xmlns="http://www.intouchfollowup.com/api/2011-11"><uuid>${before.id}</uuid></response>`);
    const after = await hub.prisma.user.findUniqueOrThrow({ where: { id: before.id } });
    expect(after.version).toBe(before.version);
  });

  it('saves the lead-source sample', async () => {
    const res = await request(hub.server).post(`${API}/leadsource`).set('Authorization', seedTenant.auth).set('Content-Type', 'application/xml').send(fixture('leadsource-save.xml'));
    expect(res.status).toBe(200);
    expect(xml(res.text).response.uuid).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers the single and list lead-source fetches in the seed shapes', async () => {
    const one = xml(fixture('leadsource-fetch-one.xml')).leadSource;
    // Save FACEBOOK and CORPORATE with the sample's own audit values.
    for (const [id, name] of [['FACEBOOK', 'Facebook'], ['CORPORATE', 'Corporate']]) {
      const body = fixture('leadsource-fetch-one.xml').replace('<recordID>FACEBOOK</recordID>', `<recordID>${id}</recordID>`).replace('<name>Facebook</name>', `<name>${name}</name>`);
      const saved = await request(hub.server).post(`${API}/leadsource`).set('Authorization', intouch.auth).type('application/xml').send(body);
      expect(saved.status).toBe(200);
    }
    const single = await request(hub.server)
      .get(`${API}/leadsource?provider=INTOUCH&client_id=1111&club_id=11111111-1111-1111-1111-111111111111&identifier=FACEBOOK`)
      .set('Authorization', intouch.auth);
    expect(single.status).toBe(200);
    expect(xml(single.text)).toEqual({ leadSource: one });

    const list = await request(hub.server)
      .get(`${API}/leadsource?provider=INTOUCH&client_id=1111&club_id=11111111-1111-1111-1111-111111111111`)
      .set('Authorization', intouch.auth);
    expect(list.status).toBe(200);
    const expected = xml(fixture('leadsource-fetch-list.xml')).leadSources.leadSource as Record<string, string>[];
    const got = xml(list.text).leadSources.leadSource as Record<string, string>[];
    // Sorted by name (Corporate, Facebook); each entry also names its recordID.
    expect(got).toEqual([
      { recordID: 'CORPORATE', ...expected[1] },
      { recordID: 'FACEBOOK', ...expected[0] },
    ]);
  });
});
