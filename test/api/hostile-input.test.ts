import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API, createTestHub, leadSourceXml, turnUpTenant, userXml, type Tenant, type TestHub } from '../support/test-hub.ts';
import { errorOf, xml } from '../support/xml.ts';

/**
 * Seed 002 "Security": malformed, oversized and hostile bodies get a clear
 * 4xx in the seed's <error> envelope, never crash or hang the hub, and
 * never store anything.
 */
const hub = createTestHub();
let tenant: Tenant;
/** The hub ID of the tenant's first club: hostile requests all target it. */
let clubId: string;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const newRecordID = () => `hostile-${randomUUID()}`;
const validUser = { userStatus: 'ACTIVE', userType: 'MEMBER', firstname: 'Ada' };

beforeAll(async () => {
  tenant = await turnUpTenant(hub);
  clubId = (await hub.prisma.providerClub.findFirstOrThrow({ where: { externalId: tenant.clubs[0] } })).clubId;
});
afterAll(() => hub.close());

function post(target: TestHub, path: string, contentType: string | undefined, body: string | undefined) {
  let req = request(target.server).post(`${API}${path}`).set('Authorization', tenant.auth);
  if (contentType) req = req.set('Content-Type', contentType);
  return body === undefined ? req : req.send(body);
}

/** The seed <error> envelope with this status and reason; returns its message. */
function expectError(res: request.Response, status: number, reason: string): string {
  expect(res.status, res.text).toBe(status);
  expect(res.type).toBe('application/xml');
  const error = errorOf(res.text);
  expect(error.reason).toBe(reason);
  expect(error.errorUUID).toMatch(UUID);
  expect(typeof error.message).toBe('string');
  expect(error.message.length).toBeGreaterThan(10);
  expect(error.message).not.toMatch(/\n\s+at /);
  return error.message;
}

/** Nothing of the record reached the store: no link for its recordID, no user in the club. */
async function expectNothingStored(recordID: string) {
  expect(await hub.prisma.link.count({ where: { externalId: recordID } })).toBe(0);
  expect(await hub.prisma.user.count({ where: { clubId } })).toBe(0);
  expect(await hub.prisma.leadSource.count({ where: { clubId } })).toBe(0);
}

describe('a body larger than the hub accepts', () => {
  const small = createTestHub({ bodyLimitBytes: 4096 });
  afterAll(() => small.close());

  it('is refused with 413 VALIDATION and nothing is stored', async () => {
    const recordID = newRecordID();
    const body = userXml(tenant, recordID, { ...validUser, company: 'x'.repeat(200), address1: 'y'.repeat(200) }).replace(
      '</userInfo>',
      `</userInfo>${' '.repeat(10 * 1024)}`,
    );
    expect(body.length).toBeGreaterThan(10 * 1024);
    const res = await post(small, '/user', 'application/xml', body);
    const message = expectError(res, 413, 'VALIDATION');
    expect(message).toMatch(/larger than/i);
    await expectNothingStored(recordID);
  });

  it('is refused the same way when it is JSON', async () => {
    const recordID = newRecordID();
    const body = JSON.stringify({ user: { providerInfo: { identifier: tenant.provider, clientID: tenant.client, clubID: tenant.clubs[0], recordID }, userInfo: { ...validUser, company: 'z'.repeat(10 * 1024) } } });
    const res = await post(small, '/user', 'application/json', body).set('Accept', 'application/xml');
    expectError(res, 413, 'VALIDATION');
    await expectNothingStored(recordID);
  });
});

describe('XML that is not well-formed', () => {
  const cases: [string, (recordID: string) => string][] = [
    ['an unclosed tag', (id) => userXml(tenant, id, validUser).replace('</user>', '')],
    ['a mismatched closing tag', (id) => userXml(tenant, id, validUser).replace('<firstname>Ada</firstname>', '<firstname>Ada</lastname>')],
    ['garbage text', () => 'this is not XML, it is just a sentence'],
    ['garbage after a valid prefix', (id) => `${userXml(tenant, id, validUser).slice(0, 120)}&&& <<< >>>`],
  ];

  it.each(cases)('with %s is refused with 400 VALIDATION saying it is not well-formed', async (_name, build) => {
    const recordID = newRecordID();
    const res = await post(hub, '/user', 'application/xml', build(recordID));
    expect(expectError(res, 400, 'VALIDATION')).toMatch(/well-formed/);
    await expectNothingStored(recordID);
  });
});

describe('XML with a DOCTYPE', () => {
  const billionLaughs = (recordID: string) => `<?xml version="1.0"?>
<!DOCTYPE user [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
${userXml(tenant, recordID, { ...validUser, firstname: '&lol9;' })}`;

  const externalEntity = (recordID: string) => `<?xml version="1.0"?>
<!DOCTYPE user [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
${userXml(tenant, recordID, { ...validUser, firstname: '&xxe;' })}`;

  it.each([
    ['internal entity expansion (billion laughs)', billionLaughs],
    ['an external entity (file:///etc/passwd)', externalEntity],
  ])('with %s is refused with 400 naming the DOCTYPE, promptly, and nothing is stored', async (_name, build) => {
    const recordID = newRecordID();
    const res = await post(hub, '/user', 'application/xml', build(recordID));
    const message = expectError(res, 400, 'VALIDATION');
    expect(message).toMatch(/DOCTYPE/);
    expect(res.text).not.toContain('root:');
    await expectNothingStored(recordID);
  });
});

describe('deeply nested XML', () => {
  // 10,000 levels take ~70 KB, more than the default 64 KB: this hub allows 1 MB.
  const roomy = createTestHub({ bodyLimitBytes: 1024 * 1024 });
  afterAll(() => roomy.close());
  const nested = (depth: number) => `${'<a>'.repeat(depth)}x${'</a>'.repeat(depth)}`;

  it.each([
    ['10,000', 10_000],
    ['50', 50],
  ])('with %s nested elements inside userInfo is refused with 400 naming the nesting limit', async (_name, depth) => {
    const recordID = newRecordID();
    const body = userXml(tenant, recordID, validUser).replace('</userInfo>', `${nested(depth)}</userInfo>`);
    const res = await post(roomy, '/user', 'application/xml', body);
    expect(expectError(res, 400, 'VALIDATION')).toMatch(/nest at most \d+ levels deep/);
    await expectNothingStored(recordID);
  });

  it('is refused the same way when it is deeply nested JSON', async () => {
    const recordID = newRecordID();
    const body = `{"user":{"providerInfo":{"identifier":"${tenant.provider}","clientID":"${tenant.client}","clubID":"${tenant.clubs[0]}","recordID":"${recordID}"},"userInfo":${'{"a":'.repeat(5000)}"x"${'}'.repeat(5000)}}}`;
    const res = await post(roomy, '/user', 'application/json', body).set('Accept', 'application/xml');
    expect(expectError(res, 400, 'VALIDATION')).toMatch(/nest at most \d+ levels deep/);
    await expectNothingStored(recordID);
  });
});

describe('a Content-Type that is neither XML nor JSON', () => {
  it.each(['text/plain', 'application/x-www-form-urlencoded'])('(%s) is refused with 415 VALIDATION naming the accepted types', async (type) => {
    const recordID = newRecordID();
    const res = await post(hub, '/user', type, userXml(tenant, recordID, validUser));
    const message = expectError(res, 415, 'VALIDATION');
    expect(message).toContain(type);
    expect(message).toMatch(/application\/xml or application\/json/);
    await expectNothingStored(recordID);
  });

  it('(multipart/form-data) is refused with 415 VALIDATION', async () => {
    const recordID = newRecordID();
    const res = await request(hub.server).post(`${API}/user`).set('Authorization', tenant.auth).field('user', userXml(tenant, recordID, validUser));
    expect(expectError(res, 415, 'VALIDATION')).toContain('multipart/form-data');
    await expectNothingStored(recordID);
  });
});

describe('the wrong document shape', () => {
  it('a <member> root on /user is refused with 400 naming <user> as the expected root', async () => {
    const recordID = newRecordID();
    const body = userXml(tenant, recordID, validUser).replace(/^<user>/, '<member>').replace(/<\/user>$/, '</member>');
    const message = expectError(await post(hub, '/user', 'application/xml', body), 400, 'VALIDATION');
    expect(message).toContain('<user>');
    expect(message).toContain('<member>');
    await expectNothingStored(recordID);
  });

  it('a <user> root on /leadsource is refused with 400 naming <leadSource> as the expected root', async () => {
    const recordID = newRecordID();
    const message = expectError(await post(hub, '/leadsource', 'application/xml', userXml(tenant, recordID, validUser)), 400, 'VALIDATION');
    expect(message).toContain('<leadSource>');
    await expectNothingStored(recordID);
  });

  it('two root elements are refused with 400', async () => {
    const [a, b] = [newRecordID(), newRecordID()];
    const body = userXml(tenant, a, validUser) + userXml(tenant, b, validUser);
    expect(expectError(await post(hub, '/user', 'application/xml', body), 400, 'VALIDATION')).toMatch(/root/i);
    await expectNothingStored(a);
    await expectNothingStored(b);
  });

  it('a repeated element (two <firstname>) is refused with 400 naming the element', async () => {
    const recordID = newRecordID();
    const body = userXml(tenant, recordID, validUser).replace('<firstname>Ada</firstname>', '<firstname>Ada</firstname><firstname>Eve</firstname>');
    const message = expectError(await post(hub, '/user', 'application/xml', body), 400, 'VALIDATION');
    expect(message).toContain('user/userInfo/firstname');
    expect(message).toMatch(/appears 2 times/);
    await expectNothingStored(recordID);
  });

  it('a repeated key in a lead source body is refused too', async () => {
    const recordID = newRecordID();
    const body = leadSourceXml(tenant, recordID, { name: 'Web', active: 'true' }).replace('<name>Web</name>', '<name>Web</name><name>Mail</name>');
    expect(expectError(await post(hub, '/leadsource', 'application/xml', body), 400, 'VALIDATION')).toContain('leadSource/leadInfo/name');
    await expectNothingStored(recordID);
  });

  it('an unknown element inside userInfo (<firstName>) is refused with 400 naming userInfo/firstName', async () => {
    const recordID = newRecordID();
    const body = userXml(tenant, recordID, { ...validUser, firstName: 'Ada' });
    expect(expectError(await post(hub, '/user', 'application/xml', body), 400, 'VALIDATION')).toContain('userInfo/firstName');
    await expectNothingStored(recordID);
  });
});

describe('prototype pollution attempts', () => {
  const prototypeKeys = () => Object.getOwnPropertyNames(Object.prototype).sort();
  let before: string[];
  beforeAll(() => {
    before = prototypeKeys();
  });

  const expectPrototypeUntouched = () => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
    expect(prototypeKeys()).toEqual(before);
  };

  it.each([
    ['an element <__proto__>', '<__proto__>', '<__proto__><polluted>yes</polluted></__proto__>'],
    ['an element <constructor>', '<constructor>', '<constructor><prototype><polluted>yes</polluted></prototype></constructor>'],
    ['a text-only <__proto__>', '<__proto__>', '<__proto__>yes</__proto__>'],
  ])('%s inside userInfo is refused with 400 naming it, and Object.prototype is untouched', async (_name, name, inner) => {
    const recordID = newRecordID();
    const body = userXml(tenant, recordID, validUser).replace('</userInfo>', `${inner}</userInfo>`);
    const message = expectError(await post(hub, '/user', 'application/xml', body), 400, 'VALIDATION');
    expect(message).toContain(name);
    expectPrototypeUntouched();
    await expectNothingStored(recordID);
  });

  it('a JSON body with a "__proto__" key (top level and inside userInfo) is refused with 400 and Object.prototype is untouched', async () => {
    const recordID = newRecordID();
    const providerInfo = `"providerInfo":{"identifier":"${tenant.provider}","clientID":"${tenant.client}","clubID":"${tenant.clubs[0]}","recordID":"${recordID}"}`;
    const bodies = [
      `{"__proto__":{"polluted":"yes"},"user":{${providerInfo},"userInfo":{"userStatus":"ACTIVE","userType":"MEMBER"}}}`,
      `{"user":{${providerInfo},"userInfo":{"userStatus":"ACTIVE","userType":"MEMBER","__proto__":{"polluted":"yes"}}}}`,
      `{"user":{${providerInfo},"userInfo":{"userStatus":"ACTIVE","userType":"MEMBER","constructor":{"prototype":{"polluted":"yes"}}}}}`,
    ];
    for (const body of bodies) {
      const res = await post(hub, '/user', 'application/json', body).set('Accept', 'application/xml');
      expect(expectError(res, 400, 'VALIDATION')).toMatch(/__proto__|constructor/);
      expectPrototypeUntouched();
    }
    await expectNothingStored(recordID);
  });
});

describe('invalid field values', () => {
  it.each([
    ['birthdate', '12/03/1972', 'userInfo/birthdate must be a date in the form yyyy-mm-dd'],
    ['country', 'USA', 'userInfo/country must be an ISO 3166-1 alpha-2 country code'],
    ['email', 'not-an-email', 'userInfo/email must be an email address'],
    ['userType', 'VIP', 'userInfo/userType must be one of PROSPECT, MEMBER, EX_MEMBER, STAFF'],
  ])('%s %j is refused with 400 naming the field', async (field, value, expected) => {
    const recordID = newRecordID();
    const res = await post(hub, '/user', 'application/xml', userXml(tenant, recordID, { ...validUser, [field]: value }));
    expect(expectError(res, 400, 'VALIDATION')).toContain(expected);
    await expectNothingStored(recordID);
  });

  it('a new record without userStatus is refused with 400 naming userInfo/userStatus', async () => {
    const recordID = newRecordID();
    const res = await post(hub, '/user', 'application/xml', userXml(tenant, recordID, { userType: 'MEMBER', firstname: 'Ada' }));
    expect(expectError(res, 400, 'VALIDATION')).toContain('userInfo/userStatus is required');
    await expectNothingStored(recordID);
  });

  it('several problems in one body are all listed in one message', async () => {
    const recordID = newRecordID();
    const body = userXml(tenant, recordID, { userType: 'VIP', birthdate: '12/03/1972', country: 'USA', email: 'not-an-email' });
    const message = expectError(await post(hub, '/user', 'application/xml', body), 400, 'VALIDATION');
    expect(message).toMatch(/^5 problems: /);
    for (const field of ['birthdate', 'country', 'email', 'userType']) expect(message).toContain(`userInfo/${field} must`);
    expect(message).toContain('userInfo/userStatus is required');
    await expectNothingStored(recordID);
  });

  it('a 60 KB firstname within the 64 KB body limit is refused with 400: at most 100 characters', async () => {
    const recordID = newRecordID();
    const body = userXml(tenant, recordID, { ...validUser, firstname: 'A'.repeat(60 * 1024) });
    expect(body.length).toBeLessThan(64 * 1024);
    expect(expectError(await post(hub, '/user', 'application/xml', body), 400, 'VALIDATION')).toContain('userInfo/firstname must be at most 100 characters');
    await expectNothingStored(recordID);
  });

  it('an element with a huge number of attributes is accepted as structure but the attributes are ignored, and an invalid value still refuses it', async () => {
    const recordID = newRecordID();
    const attributes = Array.from({ length: 3000 }, (_, i) => `a${i}="${i}"`).join(' ');
    const body = userXml(tenant, recordID, { ...validUser, country: 'USA' }).replace('<userInfo>', `<userInfo ${attributes}>`);
    expect(expectError(await post(hub, '/user', 'application/xml', body), 400, 'VALIDATION')).toContain('userInfo/country');
    await expectNothingStored(recordID);
  });
});

describe('empty and non-object bodies', () => {
  it.each([
    ['an empty XML body', 'application/xml', '', /empty/],
    ['a whitespace-only body', 'application/xml', '   \n  ', /empty/],
    ['an empty JSON body', 'application/json', '', /empty/],
    ['a JSON array', 'application/json', '[{"user":{}}]', /must be an object/],
    ['invalid JSON', 'application/json', '{"user": {"providerInfo": ', /not valid JSON/],
    ['a JSON string', 'application/json', '"just a string"', /must be an object/],
  ])('%s is refused with 400 VALIDATION', async (_name, type, body, expected) => {
    const res = await post(hub, '/user', type, body).set('Accept', 'application/xml');
    expect(expectError(res, 400, 'VALIDATION')).toMatch(expected);
    await expectNothingStored('never-sent');
  });

  it('a POST with no body at all is refused with 400 VALIDATION', async () => {
    const res = await post(hub, '/user', undefined, undefined);
    expect(expectError(res, 400, 'VALIDATION')).toMatch(/empty/);
  });
});

describe('after all the hostile requests', () => {
  it('the same hub still saves a valid record and returns it', async () => {
    const recordID = newRecordID();
    const club = tenant.clubs[1];
    const saved = await post(hub, '/user', 'application/xml', userXml(tenant, recordID, validUser, '', club));
    expect(saved.status, saved.text).toBe(200);
    const uuid = xml(saved.text).response.uuid as string;
    expect(uuid).toMatch(UUID);
    const fetched = await request(hub.server)
      .get(`${API}/user?provider=${tenant.provider}&client_id=${tenant.client}&club_id=${club}&recordID=${recordID}`)
      .set('Authorization', tenant.auth);
    expect(fetched.status).toBe(200);
    expect(xml(fetched.text).user.userInfo.firstname).toBe('Ada');
    // Nothing at all landed in the club every hostile request targeted.
    expect(await hub.prisma.user.count({ where: { clubId } })).toBe(0);
  });
});
