import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { XMLValidator } from 'fast-xml-parser';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ISO_COUNTRIES } from '../../src/domain/countries.ts';
import { USER_SCHEMA } from '../../src/domain/user-record.ts';
import { API, createTestHub, turnUpTenant, type Tenant } from '../support/test-hub.ts';

/**
 * Spec §2: what a partner saves through /user comes back from GET with the
 * same field values, whichever of XML and JSON it was saved and fetched in.
 * Generated values stay inside the field rules of USER_SCHEMA (src/domain).
 */

const hub = createTestHub();
let tenant: Tenant;

beforeAll(async () => {
  tenant = await turnUpTenant(hub, { clubs: 1 });
});
afterAll(() => hub.close());

// ~40 runs keep the suite quick on PGlite; PROPERTY_RUNS=1000 for a deeper search.
const RUNS = Number(process.env.PROPERTY_RUNS ?? 40);
const TIMEOUT = 180_000;
const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const FIELD_ORDER = USER_SCHEMA.fields.map((f) => f.name);

type UserInfo = Record<string, string>;

// ---------------------------------------------------------------- generators

/** One "character" of free text: mostly any code point, often an XML special or something entity-like. */
const textUnit = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 2, arbitrary: fc.constantFrom('&', '<', '>', '"', "'") },
  { weight: 1, arbitrary: fc.constantFrom('&amp;', '&lt;', '&#60;', '&#x3C;', '&copy;', '&nbsp;', ']]>', '<![CDATA[', '<!--', '<?x?>', ' ') },
  { weight: 1, arbitrary: fc.constantFrom('é', 'ß', 'Ω', '中文', '🙂', '\u00a0', 'a b') },
);

/** Free text as a partner sends it: no control characters, trimmed, non-empty, at most `max` characters. */
const freeText = (max: number) =>
  fc
    .string({ unit: textUnit, minLength: 1, maxLength: Math.min(max, 40) })
    .map((s) => s.replace(/\p{Cc}/gu, '').trim())
    .filter((s) => s.length > 0 && s.length <= max);

const DAY_MS = 86_400_000;
const MIN_DATE = Date.UTC(1900, 0, 1);
const MAX_DATE = Date.UTC(2100, 11, 31);

/** A calendar date yyyy-mm-dd, 1900–2100. */
const calendarDate = fc.integer({ min: 0, max: (MAX_DATE - MIN_DATE) / DAY_MS }).map((days) => new Date(MIN_DATE + days * DAY_MS).toISOString().slice(0, 10));

/** An ISO timestamp with milliseconds and Z. */
const timestamp = fc.integer({ min: MIN_DATE, max: MAX_DATE + DAY_MS - 1 }).map((ms) => new Date(ms).toISOString());

const PHONE_CHARS = [...'0123456789+()-. /x#*X'];
const phone = fc
  .string({ unit: fc.constantFrom(...PHONE_CHARS), minLength: 3, maxLength: 40 })
  .map((s) => s.trim())
  .filter((s) => s.length >= 3);

const email = fc.emailAddress().filter((e) => e.length <= 254);

const userInfoArb: fc.Arbitrary<UserInfo> = fc
  .record(
    {
      firstname: freeText(100),
      lastname: freeText(100),
      birthdate: calendarDate,
      gender: fc.constantFrom('M', 'F', 'X', 'U'),
      userStatus: fc.constantFrom('ACTIVE', 'INACTIVE'),
      userType: fc.constantFrom('PROSPECT', 'MEMBER', 'EX_MEMBER'),
      address1: freeText(200),
      address2: freeText(200),
      city: freeText(100),
      zipcode: freeText(20),
      state: freeText(100),
      country: fc.constantFrom(...ISO_COUNTRIES),
      mobile: phone,
      email,
      homePhone: phone,
      workPhone: phone,
      company: freeText(200),
      trialStartDate: calendarDate,
      trialEndDate: calendarDate,
      createdBy: freeText(100),
      createdDate: timestamp,
      modifiedBy: freeText(100),
      modifiedDate: timestamp,
    },
    // A new record needs userType and userStatus; every other field is optional.
    { requiredKeys: ['userType', 'userStatus'] },
  )
  .map((info) => {
    // A trial may not end before it starts.
    const out: UserInfo = { ...info };
    if (out.trialStartDate && out.trialEndDate && out.trialEndDate < out.trialStartDate) {
      [out.trialStartDate, out.trialEndDate] = [out.trialEndDate, out.trialStartDate];
    }
    return out;
  });

/** The record plus the order its elements are sent in (the hub must not care). */
const sentRecord = userInfoArb.chain((info) => {
  const names = Object.keys(info);
  return fc
    .record({ order: fc.shuffledSubarray(names, { minLength: names.length, maxLength: names.length }), numericRefs: fc.boolean() })
    .map(({ order, numericRefs }) => ({ info, order, numericRefs }));
});

// ---------------------------------------------------------------- wire helpers

const NAMED: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** XML text escaping, with the predefined entities or with numeric character references. */
function escapeXml(text: string, numeric = false): string {
  return text.replace(/[&<>"']/g, (c) => (numeric ? `&#${c.charCodeAt(0)};` : NAMED[c]));
}

function unescapeXml(text: string): string {
  return text.replace(/&(?:(amp|lt|gt|quot|apos)|#(\d+)|#x([0-9a-fA-F]+));/g, (_m, name: string, dec: string, hex: string) => {
    if (name) return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[name];
    return String.fromCodePoint(dec ? Number(dec) : parseInt(hex, 16));
  });
}

function providerInfoOf(recordID: string) {
  return { identifier: tenant.provider, clientID: tenant.client, clubID: tenant.clubs[0], recordID };
}

function userXmlBody(recordID: string, info: UserInfo, order: string[], numeric: boolean): string {
  const element = (name: string, value: string) => `<${name}>${escapeXml(value, numeric)}</${name}>`;
  const ids = Object.entries(providerInfoOf(recordID))
    .map(([k, v]) => element(k, v))
    .join('');
  const fields = order.map((name) => element(name, info[name])).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<user><providerInfo>${ids}</providerInfo><userInfo>${fields}</userInfo></user>`;
}

function userJsonBody(recordID: string, info: UserInfo, order: string[]): string {
  return JSON.stringify({ user: { providerInfo: providerInfoOf(recordID), userInfo: Object.fromEntries(order.map((name) => [name, info[name]])) } });
}

/**
 * Reads a flat section (<providerInfo>, <userInfo>) of an XML answer with a
 * strict reader of its own: only `<name>text</name>` children, text escaped
 * per XML. Returns the [name, value] pairs in document order.
 */
function flatSection(text: string, section: string): [string, string][] {
  const match = new RegExp(`<${section}>(.*?)</${section}>`, 's').exec(text);
  if (!match) throw new Error(`no <${section}> in ${text}`);
  const body = match[1];
  const child = /<([A-Za-z][A-Za-z0-9]*)>([^<]*)<\/\1>/y;
  const pairs: [string, string][] = [];
  while (child.lastIndex < body.length) {
    const at = child.lastIndex;
    const m = child.exec(body);
    if (!m) throw new Error(`unexpected content in <${section}> at ${at}: ${body.slice(at, at + 80)}`);
    // Every & in text must start a reference: a bare & is not XML.
    if (/&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(m[2])) throw new Error(`unescaped & in <${m[1]}>: ${m[2]}`);
    pairs.push([m[1], unescapeXml(m[2])]);
  }
  return pairs;
}

interface Answer {
  providerInfo: Record<string, string>;
  userInfo: Record<string, string>;
  /** userInfo element names in the order they came. */
  order: string[];
}

function readXmlAnswer(res: request.Response): Answer {
  expect(res.status, res.text).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/xml/);
  expect(XMLValidator.validate(res.text)).toBe(true);
  // Exactly <user><providerInfo/><userInfo/></user>: no leadInfo was sent, so none comes back.
  const shape = res.text.replace(/^<\?xml[^>]*\?>\s*/, '').replace(/<(providerInfo|userInfo)>.*?<\/\1>/gs, '<$1/>');
  expect(shape).toBe('<user><providerInfo/><userInfo/></user>');
  const userInfo = flatSection(res.text, 'userInfo');
  return { providerInfo: Object.fromEntries(flatSection(res.text, 'providerInfo')), userInfo: Object.fromEntries(userInfo), order: userInfo.map(([n]) => n) };
}

function readJsonAnswer(res: request.Response): Answer {
  expect(res.status, res.text).toBe(200);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const doc = JSON.parse(res.text) as { user: { providerInfo: Record<string, string>; userInfo: Record<string, string> } };
  expect(Object.keys(doc)).toEqual(['user']);
  expect(Object.keys(doc.user)).toEqual(['providerInfo', 'userInfo']);
  for (const value of [...Object.values(doc.user.providerInfo), ...Object.values(doc.user.userInfo)]) expect(typeof value).toBe('string');
  return { providerInfo: doc.user.providerInfo, userInfo: doc.user.userInfo, order: Object.keys(doc.user.userInfo) };
}

/** What GET must answer: every sent value as sent, the audit fields the partner left out filled by the hub. */
function expectSameRecord(answer: Answer, recordID: string, sent: UserInfo): void {
  expect(answer.providerInfo).toEqual(providerInfoOf(recordID));
  expect(answer.userInfo).toEqual({
    ...sent,
    createdBy: sent.createdBy ?? tenant.provider,
    modifiedBy: sent.modifiedBy ?? tenant.provider,
    createdDate: sent.createdDate ?? expect.stringMatching(ISO_TIMESTAMP),
    modifiedDate: sent.modifiedDate ?? expect.stringMatching(ISO_TIMESTAMP),
  });
  // Fields come in the seed's order, whatever order they were sent in.
  expect(answer.order).toEqual(FIELD_ORDER.filter((name) => name in answer.userInfo));
}

function getUser(recordID: string, accept?: string) {
  const req = request(hub.server)
    .get(`${API}/user`)
    .query({ provider: tenant.provider, client_id: tenant.client, club_id: tenant.clubs[0], recordID })
    .set('Authorization', tenant.auth);
  return accept ? req.set('Accept', accept) : req;
}

// ---------------------------------------------------------------- properties

describe('a saved user is answered with exactly the values it was saved with (spec §2)', () => {
  it(
    'any valid user POSTed as XML comes back from GET with the same values, as XML and as JSON, omitted fields absent and only the audit fields filled in',
    async () => {
      await fc.assert(
        fc.asyncProperty(sentRecord, async ({ info, order, numericRefs }) => {
          const recordID = `x-${randomUUID()}`;
          const saved = await request(hub.server)
            .post(`${API}/user`)
            .set('Authorization', tenant.auth)
            .set('Content-Type', 'application/xml')
            .send(userXmlBody(recordID, info, order, numericRefs));
          expect(saved.status, saved.text).toBe(200);
          const uuid = /<uuid>([0-9a-f-]{36})<\/uuid>/.exec(saved.text)?.[1];
          expect(uuid).toBeDefined();

          const asXml = readXmlAnswer(await getUser(recordID));
          expectSameRecord(asXml, recordID, info);
          const asJson = readJsonAnswer(await getUser(recordID, 'application/json'));
          expectSameRecord(asJson, recordID, info);
          // One stored record, two renderings: the hub-filled values agree too.
          expect(asJson.userInfo).toEqual(asXml.userInfo);

          // Fetching by the uuid the save answered gives the same record.
          const byUuid = await request(hub.server).get(`${API}/user`).query({ provider: tenant.provider, uuid }).set('Authorization', tenant.auth);
          expect(readXmlAnswer(byUuid).userInfo).toEqual(asXml.userInfo);
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT,
  );

  it(
    'any valid user POSTed as JSON comes back from GET with the same values, as JSON and as XML, omitted fields absent and only the audit fields filled in',
    async () => {
      await fc.assert(
        fc.asyncProperty(sentRecord, async ({ info, order }) => {
          const recordID = `j-${randomUUID()}`;
          const saved = await request(hub.server)
            .post(`${API}/user`)
            .set('Authorization', tenant.auth)
            .set('Content-Type', 'application/json')
            .send(userJsonBody(recordID, info, order));
          expect(saved.status, saved.text).toBe(200);
          expect(saved.headers['content-type']).toMatch(/^application\/json/);
          expect(JSON.parse(saved.text)).toEqual({ response: { uuid: expect.stringMatching(/^[0-9a-f-]{36}$/) } });

          const asJson = readJsonAnswer(await getUser(recordID, 'application/json'));
          expectSameRecord(asJson, recordID, info);
          const asXml = readXmlAnswer(await getUser(recordID));
          expectSameRecord(asXml, recordID, info);
          expect(asXml.userInfo).toEqual(asJson.userInfo);
        }),
        { numRuns: RUNS },
      );
    },
    TIMEOUT,
  );
});
