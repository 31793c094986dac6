import type { Request, Response } from 'express';
import type { PartnerRoutes } from './app.ts';
import { LEAD_SOURCE_SCHEMA } from '../domain/lead-source-record.ts';
import { LEAD_INFO_FIELDS, USER_SCHEMA, type UserKind } from '../domain/user-record.ts';
import type { LeadSourceService, LeadSourceView } from '../services/lead-source-service.ts';
import type { UserService, UserView } from '../services/user-service.ts';
import { parseBody, type WireFormat } from '../wire/document.ts';
import { providerInfoElement, readRecordSave, savedResponse } from '../wire/record-codec.ts';
import { fieldElements, render, type OutElement } from '../wire/render.ts';
import { principalOf } from './authentication.ts';
import { CONTENT_TYPES, negotiatedFormat, requestFormat } from './negotiation.ts';
import { queryParams, requireParams } from './query-params.ts';

const USER_FIELD_NAMES = USER_SCHEMA.fields.map((f) => f.name);
const LEAD_SOURCE_FIELD_NAMES = LEAD_SOURCE_SCHEMA.fields.map((f) => f.name);

/** A 200 with the rendered answer, written directly: no ETag, no conditional GET, no content-type parsing. */
function reply(res: Response, format: WireFormat, root: OutElement): void {
  const body = render(root, format);
  res.writeHead(200, { 'Content-Type': CONTENT_TYPES[format], 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** Reads the body in the format its Content-Type names, and picks the answer's format. */
function readBody(req: Request, res: Response) {
  const text = typeof req.body === 'string' ? req.body : '';
  const format = requestFormat(req, text);
  const answer = negotiatedFormat(req, format);
  res.locals.responseFormat = answer;
  return { doc: parseBody(text, format), format, answer };
}

function userElement(view: UserView): OutElement {
  const children: OutElement[] = [
    providerInfoElement(view.providerInfo),
    { name: 'userInfo', children: fieldElements(USER_FIELD_NAMES, view.values) },
  ];
  const lead = fieldElements(LEAD_INFO_FIELDS, view.leadInfo);
  if (lead.length) children.push({ name: 'leadInfo', children: lead });
  return { name: 'user', children };
}

/** /user and /staff (seed 002: staff are users too, on their own path). */
export function userRoutes(routes: PartnerRoutes, users: UserService, kind: UserKind): void {
  const path = `/${kind}`;
  routes.post(path, async (req, res) => {
    const { doc, format, answer } = readBody(req, res);
    const outcome = await users.save(principalOf(res), kind, readRecordSave(doc, format, 'user', USER_SCHEMA));
    reply(res, answer, savedResponse(outcome.uuid));
  });
  routes.get(path, async (req, res) => {
    const answer = negotiatedFormat(req);
    res.locals.responseFormat = answer;
    const params = queryParams(req);
    requireParams(params, ['provider']);
    if (!params.uuid) requireParams(params, ['client_id', 'club_id', 'recordID']);
    const lookup = params.uuid
      ? { uuid: params.uuid }
      : { clientID: params.client_id, clubID: params.club_id, recordID: params.recordID };
    reply(res, answer, userElement(await users.fetch(principalOf(res), kind, params.provider, lookup)));
  });
}

function leadSourceElement(view: LeadSourceView): OutElement {
  return {
    name: 'leadSource',
    children: [providerInfoElement(view.providerInfo), { name: 'leadInfo', children: fieldElements(LEAD_SOURCE_FIELD_NAMES, view.values) }],
  };
}

/** /leadsource: save one; fetch one with identifier=, or the club's list without. */
export function leadSourceRoutes(routes: PartnerRoutes, leadSources: LeadSourceService): void {
  routes.post('/leadsource', async (req, res) => {
    const { doc, format, answer } = readBody(req, res);
    const outcome = await leadSources.save(principalOf(res), readRecordSave(doc, format, 'leadSource', LEAD_SOURCE_SCHEMA));
    reply(res, answer, savedResponse(outcome.uuid));
  });
  routes.get('/leadsource', async (req, res) => {
    const answer = negotiatedFormat(req);
    res.locals.responseFormat = answer;
    const params = queryParams(req);
    requireParams(params, ['provider', 'client_id', 'club_id']);
    const ids = { provider: params.provider, clientID: params.client_id, clubID: params.club_id };
    if (params.identifier) {
      reply(res, answer, leadSourceElement(await leadSources.fetchOne(principalOf(res), { ...ids, identifier: params.identifier })));
      return;
    }
    const list = await leadSources.list(principalOf(res), ids);
    // The seed's list shape (002 "Fetch Lead Sources") has the fields
    // directly under <leadSource>; <recordID> is added first so each entry
    // can be told apart.
    reply(res, answer, {
      name: 'leadSources',
      list: true,
      children: list.map((view) => ({
        name: 'leadSource',
        children: [{ name: 'recordID', text: view.providerInfo.recordID }, ...fieldElements(LEAD_SOURCE_FIELD_NAMES, view.values)],
      })),
    });
  });
}
