import { PartnerError, type AdapterContext, type OutboundLeadSource, type OutboundUser, type PartnerLeadSource, type PartnerStaff } from '../contract.ts';

/**
 * HTTP calls of the reference partner API (REST + JSON, see README.md in
 * this folder). Only translation: the engine's PartnerHttp does auth,
 * signing, idempotency keys, timeouts and failure classification.
 */

// Hub field name -> the partner's JSON field name.
const USER_FIELDS: Record<string, string> = {
  firstname: 'firstName', lastname: 'lastName', userStatus: 'status', birthdate: 'birthDate', gender: 'gender',
  address1: 'address1', address2: 'address2', city: 'city', zipcode: 'postalCode', state: 'state', country: 'country',
  mobile: 'mobile', email: 'email', homePhone: 'homePhone', workPhone: 'workPhone', company: 'company',
  trialStartDate: 'trialStart', trialEndDate: 'trialEnd', createdDate: 'createdAt', modifiedDate: 'modifiedAt',
};

export function userBody(user: OutboundUser): Record<string, unknown> {
  const body: Record<string, unknown> = { externalRef: user.uuid, clientId: user.clientId, clubId: user.clubId, type: user.userType };
  for (const [hub, partner] of Object.entries(USER_FIELDS)) {
    if (hub in user.fields) body[partner] = user.fields[hub];
  }
  body.ownerId = user.ownerId ?? null;
  body.leadSourceId = user.leadSourceId ?? null;
  return body;
}

async function send(ctx: AdapterContext, operation: string, method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown) {
  return ctx.http.send({ operation, method, path, body: body === undefined ? undefined : JSON.stringify(body), contentType: 'application/json' });
}

async function call(ctx: AdapterContext, operation: string, method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<unknown> {
  return (await send(ctx, operation, method, path, body)).json;
}

function idOf(answer: unknown, operation: string): string {
  const id = (answer as { id?: unknown } | undefined)?.id;
  if (typeof id !== 'string' && typeof id !== 'number') {
    throw new PartnerError(`${operation}: the partner answered without an id`, { retryable: false });
  }
  return String(id);
}

function listOf<T>(answer: unknown, key: string, operation: string): T[] {
  const list = (answer as Record<string, unknown> | undefined)?.[key];
  if (!Array.isArray(list)) throw new PartnerError(`${operation}: the partner answered without a "${key}" list`, { retryable: false });
  return list as T[];
}

const scopeQuery = (scope: { clientId: string; clubId: string }) =>
  `clientId=${encodeURIComponent(scope.clientId)}&clubId=${encodeURIComponent(scope.clubId)}`;

export const referenceClient = {
  async createUser(ctx: AdapterContext, user: OutboundUser) {
    const res = await send(ctx, 'createUser', 'POST', '/users', userBody(user));
    // The reference API marks answers from its idempotency store (as Stripe does).
    return { partnerId: idOf(res.json, 'createUser'), replayed: res.headers['idempotent-replayed'] === 'true' };
  },
  async updateUser(ctx: AdapterContext, partnerId: string, user: OutboundUser) {
    await call(ctx, 'updateUser', 'PUT', `/users/${encodeURIComponent(partnerId)}`, userBody(user));
  },
  async listStaff(ctx: AdapterContext, scope: { clientId: string; clubId: string }): Promise<PartnerStaff[]> {
    const staff = listOf<{ id: unknown; email?: unknown }>(await call(ctx, 'listStaff', 'GET', `/staff?${scopeQuery(scope)}`), 'staff', 'listStaff');
    return staff.filter((s) => typeof s.email === 'string').map((s) => ({ id: String(s.id), email: s.email as string }));
  },
  async findStaffByEmail(ctx: AdapterContext, email: string, scope: { clientId: string; clubId: string }): Promise<PartnerStaff | undefined> {
    const staff = listOf<{ id: unknown; email?: unknown }>(
      await call(ctx, 'findStaffByEmail', 'GET', `/staff?${scopeQuery(scope)}&email=${encodeURIComponent(email)}`),
      'staff',
      'findStaffByEmail',
    );
    const first = staff.find((s) => typeof s.email === 'string');
    return first ? { id: String(first.id), email: first.email as string } : undefined;
  },
  async listLeadSources(ctx: AdapterContext, scope: { clientId: string; clubId: string }): Promise<PartnerLeadSource[]> {
    const list = listOf<{ id: unknown; name?: unknown; active?: unknown }>(
      await call(ctx, 'listLeadSources', 'GET', `/lead-sources?${scopeQuery(scope)}`),
      'leadSources',
      'listLeadSources',
    );
    return list.filter((l) => typeof l.name === 'string').map((l) => ({ id: String(l.id), name: l.name as string, active: l.active !== false }));
  },
  async createLeadSource(ctx: AdapterContext, leadSource: OutboundLeadSource) {
    const answer = await call(ctx, 'createLeadSource', 'POST', '/lead-sources', {
      name: leadSource.name, active: leadSource.active, clientId: leadSource.clientId, clubId: leadSource.clubId, externalRef: leadSource.uuid,
    });
    return { partnerId: idOf(answer, 'createLeadSource') };
  },
  async updateLeadSource(ctx: AdapterContext, partnerId: string, leadSource: OutboundLeadSource) {
    await call(ctx, 'updateLeadSource', 'PUT', `/lead-sources/${encodeURIComponent(partnerId)}`, { name: leadSource.name, active: leadSource.active });
  },
};
