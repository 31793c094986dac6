import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, createTestHub, turnUpTenant, userXml, type Tenant } from '../support/test-hub.ts';
import { xml } from '../support/xml.ts';

/**
 * Spec §2 "JSON": the same paths and field names in JSON, negotiated by
 * Content-Type and Accept, XML staying the default.
 */

const hub = createTestHub();
let t: Tenant;

beforeAll(async () => {
  t = await turnUpTenant(hub, { clubs: 1 });
});
afterAll(() => hub.close());

const ISO_TIMESTAMP = expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
const UUID = expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
let counter = 0;
const freshId = (prefix: string) => `${prefix}-${Date.now()}-${++counter}`;

const ids = (recordID: string | number) => ({ identifier: t.provider, clientID: t.client, clubID: t.clubs[0], recordID });
const query = (extra: Record<string, string>) => ({ provider: t.provider, client_id: t.client, club_id: t.clubs[0], ...extra });

function post(path: 'user' | 'staff' | 'leadsource', body: string, contentType: string | null = 'application/json') {
  const req = request(hub.server).post(`${API}/${path}`).set('Authorization', t.auth);
  // superagent would label a string body as a form: unset the header to really send none.
  return contentType === null ? req.send(body).unset('Content-Type') : req.set('Content-Type', contentType).send(body);
}

function get(path: 'user' | 'staff' | 'leadsource', params: Record<string, string>, accept?: string) {
  const req = request(hub.server).get(`${API}/${path}`).query(query(params)).set('Authorization', t.auth);
  return accept === undefined ? req : req.set('Accept', accept);
}

const json = (res: request.Response) => {
  expect(res.headers['content-type'], res.text).toMatch(/^application\/json; charset=utf-8/);
  return JSON.parse(res.text);
};
const isXml = (res: request.Response) => {
  expect(res.headers['content-type'], res.text).toMatch(/^application\/xml; charset=utf-8/);
  expect(res.text.startsWith('<?xml')).toBe(true);
  return xml(res.text);
};

describe('JSON is accepted and answered on the same paths with the same field names', () => {
  it('a user POSTed as JSON to /user is fetched as {"user":{"providerInfo","userInfo","leadInfo"}} with the XML element names', async () => {
    const source = freshId('ls');
    expect((await post('leadsource', JSON.stringify({ leadSource: { providerInfo: ids(source), leadInfo: { name: 'Walk-in' } } }))).status).toBe(200);
    const recordID = freshId('u');
    const userInfo = { firstname: 'Zoë', lastname: "O'Brien & <Sons>", userStatus: 'ACTIVE', userType: 'PROSPECT', email: 'zoe@example.com', country: 'IE' };
    const saved = await post('user', JSON.stringify({ user: { providerInfo: ids(recordID), userInfo, leadInfo: { leadSource: source } } }));
    expect(saved.status, saved.text).toBe(200);
    const { uuid } = json(saved).response;
    expect(uuid).toEqual(UUID);

    const res = await get('user', { recordID }, 'application/json');
    expect(res.status).toBe(200);
    expect(json(res)).toEqual({
      user: {
        providerInfo: ids(recordID),
        userInfo: { ...userInfo, createdBy: t.provider, createdDate: ISO_TIMESTAMP, modifiedBy: t.provider, modifiedDate: ISO_TIMESTAMP },
        leadInfo: { leadSource: source },
      },
    });
    // The same record in XML has the same names and values.
    const asXml = isXml(await get('user', { recordID }));
    expect(asXml.user.userInfo).toEqual(json(res).user.userInfo);
    expect(asXml.user.leadInfo).toEqual({ leadSource: source });
  });

  it('a staff member POSTed as JSON to /staff is fetched as JSON from /staff', async () => {
    const recordID = freshId('s');
    const userInfo = { firstname: 'Sam', lastname: 'Trainer', userStatus: 'ACTIVE', userType: 'STAFF', mobile: '+1 (555) 010-0000' };
    const saved = await post('staff', JSON.stringify({ user: { providerInfo: ids(recordID), userInfo } }));
    expect(saved.status, saved.text).toBe(200);
    expect(json(saved)).toEqual({ response: { uuid: UUID } });
    const res = await get('staff', { recordID }, 'application/json');
    expect(res.status).toBe(200);
    expect(json(res)).toEqual({
      user: { providerInfo: ids(recordID), userInfo: { ...userInfo, createdBy: t.provider, createdDate: ISO_TIMESTAMP, modifiedBy: t.provider, modifiedDate: ISO_TIMESTAMP } },
    });
  });

  it('a lead source POSTed as JSON is fetched as JSON by identifier, and the club list comes as {"leadSources":[…]} with each recordID', async () => {
    const local = await turnUpTenant(hub, { clubs: 1 });
    const send = (recordID: string, leadInfo: Record<string, unknown>) =>
      request(hub.server)
        .post(`${API}/leadsource`)
        .set('Authorization', local.auth)
        .type('application/json')
        .send(JSON.stringify({ leadSource: { providerInfo: { identifier: local.provider, clientID: local.client, clubID: local.clubs[0], recordID }, leadInfo } }));
    expect((await send('FB', { name: 'Facebook', active: 'true' })).status).toBe(200);
    expect((await send('CORP', { name: 'Corporate', active: 'false' })).status).toBe(200);
    const listParams = { provider: local.provider, client_id: local.client, club_id: local.clubs[0] };

    const one = await request(hub.server).get(`${API}/leadsource`).query({ ...listParams, identifier: 'FB' }).set('Authorization', local.auth).set('Accept', 'application/json');
    expect(one.status).toBe(200);
    const audit = { createdBy: local.provider, createdDate: ISO_TIMESTAMP, modifiedBy: local.provider, modifiedDate: ISO_TIMESTAMP };
    expect(json(one)).toEqual({
      leadSource: {
        providerInfo: { identifier: local.provider, clientID: local.client, clubID: local.clubs[0], recordID: 'FB' },
        leadInfo: { ...audit, name: 'Facebook', active: 'true' },
      },
    });

    const list = await request(hub.server).get(`${API}/leadsource`).query(listParams).set('Authorization', local.auth).set('Accept', 'application/json');
    expect(list.status).toBe(200);
    expect(json(list)).toEqual({
      leadSources: [
        { recordID: 'CORP', ...audit, name: 'Corporate', active: 'false' },
        { recordID: 'FB', ...audit, name: 'Facebook', active: 'true' },
      ],
    });
  });

  it('an empty lead-source list is {"leadSources":[]} in JSON', async () => {
    const local = await turnUpTenant(hub, { clubs: 1 });
    const list = await request(hub.server)
      .get(`${API}/leadsource`)
      .query({ provider: local.provider, client_id: local.client, club_id: local.clubs[0] })
      .set('Authorization', local.auth)
      .set('Accept', 'application/json');
    expect(list.status).toBe(200);
    expect(json(list)).toEqual({ leadSources: [] });
  });

  it('a JSON body may leave out the root: {"providerInfo":…,"userInfo":…} saves a user and {"providerInfo":…,"leadInfo":…} a lead source', async () => {
    const recordID = freshId('noroot');
    const saved = await post('user', JSON.stringify({ providerInfo: ids(recordID), userInfo: { firstname: 'Rootless', userStatus: 'ACTIVE', userType: 'MEMBER' } }));
    expect(saved.status, saved.text).toBe(200);
    const fetched = json(await get('user', { recordID }, 'application/json'));
    expect(fetched.user.userInfo).toMatchObject({ firstname: 'Rootless', userStatus: 'ACTIVE', userType: 'MEMBER' });
    // Same record, same uuid, whether the root is there or not.
    const again = await post('user', JSON.stringify({ user: { providerInfo: ids(recordID), userInfo: { firstname: 'Rooted' } } }));
    expect(json(again).response.uuid).toBe(json(saved).response.uuid);

    const source = freshId('noroot-ls');
    expect((await post('leadsource', JSON.stringify({ providerInfo: ids(source), leadInfo: { name: 'No root' } }))).status).toBe(200);
    expect(json(await get('leadsource', { identifier: source }, 'application/json')).leadSource.leadInfo.name).toBe('No root');
  });

  it('in a JSON update, null and "" clear a field while an absent field keeps its value', async () => {
    const recordID = freshId('clear');
    const first = { firstname: 'Ada', lastname: 'Lovelace', company: 'Analytical', city: 'London', userStatus: 'ACTIVE', userType: 'MEMBER' };
    expect((await post('user', JSON.stringify({ user: { providerInfo: ids(recordID), userInfo: first } }))).status).toBe(200);
    const update = await post('user', JSON.stringify({ user: { providerInfo: ids(recordID), userInfo: { lastname: null, company: '', city: '   ' } } }));
    expect(update.status, update.text).toBe(200);
    const info = json(await get('user', { recordID }, 'application/json')).user.userInfo;
    expect(info).toMatchObject({ firstname: 'Ada', userStatus: 'ACTIVE', userType: 'MEMBER' });
    expect(info).not.toHaveProperty('lastname');
    expect(info).not.toHaveProperty('company');
    expect(info).not.toHaveProperty('city');
  });

  it('JSON numbers and booleans are accepted as their text and answered as strings', async () => {
    const recordID = 900_000_000 + Math.floor(Math.random() * 99_999_999);
    const saved = await post('user', JSON.stringify({ user: { providerInfo: ids(recordID), userInfo: { zipcode: 12345, company: 3.5, userStatus: 'ACTIVE', userType: 'MEMBER' } } }));
    expect(saved.status, saved.text).toBe(200);
    const fetched = json(await get('user', { recordID: String(recordID) }, 'application/json')).user;
    expect(fetched.providerInfo.recordID).toBe(String(recordID));
    expect(fetched.userInfo).toMatchObject({ zipcode: '12345', company: '3.5' });

    const source = freshId('bool');
    expect((await post('leadsource', JSON.stringify({ leadSource: { providerInfo: ids(source), leadInfo: { name: 'Flags', active: false } } }))).status).toBe(200);
    expect(json(await get('leadsource', { identifier: source }, 'application/json')).leadSource.leadInfo.active).toBe('false');
    expect((await post('leadsource', JSON.stringify({ leadSource: { providerInfo: ids(source), leadInfo: { active: true } } }))).status).toBe(200);
    expect(json(await get('leadsource', { identifier: source }, 'application/json')).leadSource.leadInfo.active).toBe('true');
  });
});

describe('content negotiation: Content-Type says what the body is, Accept what the answer is, XML by default', () => {
  const member = (recordID: string) => userXml(t, recordID, { firstname: 'Neg', userStatus: 'ACTIVE', userType: 'MEMBER' });

  it('an XML body with Accept: application/json is answered in JSON', async () => {
    const res = await post('user', member(freshId('x2j')), 'application/xml').set('Accept', 'application/json');
    expect(res.status, res.text).toBe(200);
    expect(json(res)).toEqual({ response: { uuid: UUID } });
  });

  it('a JSON body without Accept is answered in JSON', async () => {
    const res = await post('user', JSON.stringify({ user: { providerInfo: ids(freshId('j')), userInfo: { userStatus: 'ACTIVE', userType: 'MEMBER' } } }));
    expect(res.status, res.text).toBe(200);
    expect(json(res)).toEqual({ response: { uuid: UUID } });
  });

  it('a JSON body with Accept: application/xml is answered in XML', async () => {
    const res = await post('user', JSON.stringify({ user: { providerInfo: ids(freshId('j2x')), userInfo: { userStatus: 'ACTIVE', userType: 'MEMBER' } } })).set(
      'Accept',
      'application/xml',
    );
    expect(res.status, res.text).toBe(200);
    expect(res.text).toMatch(/<response xmlns="http:\/\/www\.intouchfollowup\.com\/api\/2011-11"><uuid>[0-9a-f-]{36}<\/uuid><\/response>/);
    isXml(res);
  });

  it('an XML body without Accept is answered in XML', async () => {
    const res = await post('user', member(freshId('x')), 'application/xml');
    expect(res.status, res.text).toBe(200);
    expect(isXml(res).response.uuid).toEqual(UUID);
  });

  it('a GET without Accept (or with */*) is answered in XML; Accept: application/json gets JSON', async () => {
    const recordID = freshId('get');
    expect((await post('user', member(recordID), 'application/xml')).status).toBe(200);
    const plain = await get('user', { recordID });
    expect(plain.status).toBe(200);
    expect(isXml(plain).user.userInfo.firstname).toBe('Neg');
    const any = await get('user', { recordID }, '*/*');
    expect(isXml(any).user.providerInfo.recordID).toBe(recordID);
    const asJson = await get('user', { recordID }, 'application/json');
    expect(json(asJson).user.userInfo.firstname).toBe('Neg');
  });

  it.each(['text/xml', 'application/xml; charset=utf-8', 'text/xml; charset=UTF-8'])('Content-Type %s is accepted as XML', async (contentType) => {
    const recordID = freshId('ct');
    const res = await post('user', member(recordID), contentType);
    expect(res.status, res.text).toBe(200);
    expect(isXml(res).response.uuid).toEqual(UUID);
    expect(isXml(await get('user', { recordID })).user.userInfo.firstname).toBe('Neg');
  });

  it('Content-Type application/json; charset=utf-8 is accepted as JSON', async () => {
    const recordID = freshId('ctj');
    const res = await post('user', JSON.stringify({ user: { providerInfo: ids(recordID), userInfo: { userStatus: 'ACTIVE', userType: 'MEMBER' } } }), 'application/json; charset=utf-8');
    expect(res.status, res.text).toBe(200);
    expect(json(res).response.uuid).toEqual(UUID);
  });

  it('an XML body without Content-Type is sniffed as XML (2012-era clients sent none), and answered in XML', async () => {
    const recordID = freshId('sniff');
    const res = await post('user', member(recordID), null);
    expect(res.status, res.text).toBe(200);
    expect(isXml(res).response.uuid).toEqual(UUID);
    expect(isXml(await get('user', { recordID })).user.userInfo.firstname).toBe('Neg');
  });

  it('a JSON body without Content-Type is sniffed as JSON', async () => {
    const recordID = freshId('sniffj');
    const res = await post('user', JSON.stringify({ user: { providerInfo: ids(recordID), userInfo: { userStatus: 'ACTIVE', userType: 'MEMBER' } } }), null);
    expect(res.status, res.text).toBe(200);
    expect(json(res).response.uuid).toEqual(UUID);
  });

  it('errors follow the same negotiation: a failing JSON request gets the JSON twin of <error>, a failing GET without Accept gets XML', async () => {
    const bad = await post('user', JSON.stringify({ user: { providerInfo: ids(freshId('bad')), userInfo: { userStatus: 'ACTIVE', userType: 'MEMBER', country: 'XX' } } }));
    expect(bad.status).toBe(400);
    expect(json(bad)).toEqual({ error: { reason: 'VALIDATION', errorUUID: UUID, message: expect.stringContaining('country') } });

    const missing = await get('user', { recordID: freshId('none') });
    expect(missing.status).toBe(404);
    expect(isXml(missing).error.reason).toBe('NOT_FOUND');
    const missingJson = await get('user', { recordID: freshId('none') }, 'application/json');
    expect(missingJson.status).toBe(404);
    expect(json(missingJson).error.reason).toBe('NOT_FOUND');
  });
});
