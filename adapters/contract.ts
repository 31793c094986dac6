/**
 * The adapter contract: what a partner adapter declares and implements.
 * An adapter translates and calls; retries, ordering, links, matching and
 * history belong to the delivery engine (src/delivery). Adapters receive
 * plain decrypted configuration and an HTTP client; they never read the
 * environment, the database or the queue.
 */

export type ReceivableUserType = 'PROSPECT' | 'MEMBER' | 'EX_MEMBER';

/**
 * What a partner's API can do (seed 001 "Requirements"). The engine uses
 * only what is declared: no `listStaff`/`findStaffByEmail`, no owners; no
 * `createLeadSource`, no lead-source creation; and so on.
 */
export const CAPABILITIES = [
  'saveProspect', 'createProspect', 'updateProspect',
  'saveMember', 'createMember', 'updateMember',
  'saveExMember', 'createExMember', 'updateExMember',
  'listStaff', 'findStaffByEmail',
  'listLeadSources', 'findLeadSourceByName', 'createLeadSource', 'updateLeadSource',
  'convertProspect',
] as const;
export type Capability = (typeof CAPABILITIES)[number];

/** A person as sent to a partner: the hub's values, references already in the partner's IDs. */
export interface OutboundUser {
  /** The hub's UUID: stable, usable by the partner as an external reference. */
  uuid: string;
  userType: ReceivableUserType;
  fields: Record<string, string | null>;
  /** The partner's staff ID of the owner, when matched (prospects with staff owner agreed). */
  ownerId?: string;
  /** The partner's lead-source ID, when synchronised (prospects with lead source agreed). */
  leadSourceId?: string;
  /** The partner's IDs of the client and club (from turn-up). */
  clientId: string;
  clubId: string;
}

export interface PartnerStaff {
  id: string;
  email: string;
}

export interface PartnerLeadSource {
  id: string;
  name: string;
  active?: boolean;
}

export interface OutboundLeadSource {
  uuid: string;
  name: string;
  active: boolean;
  clientId: string;
  clubId: string;
}

/** A partner's answer to an HTTP call. */
export interface PartnerResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Parsed JSON body, when the partner answered JSON. */
  json?: unknown;
}

export interface PartnerRequest {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path relative to the connection URL, with query string. */
  path: string;
  body?: string;
  contentType?: string;
  /** Name of the operation for the delivery history, e.g. "createUser". */
  operation: string;
}

/**
 * The engine's HTTP client as the adapter sees it: it adds the connection's
 * authentication, the idempotency key and HMAC signature, the timeout and
 * the private-network guard, and turns failures into PartnerError.
 */
export interface PartnerHttp {
  send(request: PartnerRequest): Promise<PartnerResponse>;
}

/** The receiving connection, decrypted, as declared at turn-up. */
export interface AdapterConnection {
  url: string;
  options: Record<string, unknown>;
}

export interface AdapterContext {
  connection: AdapterConnection;
  http: PartnerHttp;
}

/**
 * A partner failure as behaviour: may a retry succeed, and when. The engine
 * maps it to BullMQ's signals in one place.
 */
export class PartnerError extends Error {
  readonly retryable: boolean;
  readonly status: number | undefined;
  readonly partnerCode: string | undefined;
  /** Seconds the partner asked us to wait (Retry-After). */
  readonly retryAfter: number | undefined;

  constructor(message: string, options: { retryable: boolean; status?: number; partnerCode?: string; retryAfter?: number; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = 'PartnerError';
    this.retryable = options.retryable;
    this.status = options.status;
    this.partnerCode = options.partnerCode;
    this.retryAfter = options.retryAfter;
  }
}

/**
 * A partner adapter: declared capabilities plus the calls behind them.
 * Optional methods exist exactly when the matching capability is declared
 * (checked by the conformance suite).
 */
export interface PartnerAdapter {
  readonly name: string;
  readonly capabilities: readonly Capability[];
  /** Single save call: insert or update, returns the partner's ID. */
  saveUser?(ctx: AdapterContext, user: OutboundUser, partnerId: string | undefined): Promise<CreateResult>;
  createUser?(ctx: AdapterContext, user: OutboundUser): Promise<CreateResult>;
  updateUser?(ctx: AdapterContext, partnerId: string, user: OutboundUser): Promise<void>;
  /** Prospect -> member is per system (seed 001): the adapter decides how. */
  convertProspect?(ctx: AdapterContext, partnerId: string, user: OutboundUser): Promise<{ partnerId: string }>;
  listStaff?(ctx: AdapterContext, scope: { clientId: string; clubId: string }): Promise<PartnerStaff[]>;
  findStaffByEmail?(ctx: AdapterContext, email: string, scope: { clientId: string; clubId: string }): Promise<PartnerStaff | undefined>;
  listLeadSources?(ctx: AdapterContext, scope: { clientId: string; clubId: string }): Promise<PartnerLeadSource[]>;
  findLeadSourceByName?(ctx: AdapterContext, name: string, scope: { clientId: string; clubId: string }): Promise<PartnerLeadSource | undefined>;
  createLeadSource?(ctx: AdapterContext, leadSource: OutboundLeadSource): Promise<{ partnerId: string }>;
  updateLeadSource?(ctx: AdapterContext, partnerId: string, leadSource: OutboundLeadSource): Promise<void>;
}

/** Builds an adapter from the connection's `options` (validated by the factory; throws on bad options). */
/**
 * A create's answer. `replayed`: the partner says it answered from its
 * idempotency store (the write had landed before); false: it says it
 * applied it now; undefined: the partner does not say.
 */
export interface CreateResult {
  partnerId: string;
  replayed?: boolean;
}

export type AdapterFactory = (options: Record<string, unknown>) => PartnerAdapter;

const SUFFIX: Record<ReceivableUserType, string> = { PROSPECT: 'Prospect', MEMBER: 'Member', EX_MEMBER: 'ExMember' };

/** How the adapter takes this user type: one save call, create + update, or not at all. */
export function userDeliveryMode(capabilities: readonly Capability[], userType: ReceivableUserType): 'save' | 'createUpdate' | undefined {
  const suffix = SUFFIX[userType];
  if (capabilities.includes(`save${suffix}` as Capability)) return 'save';
  if (capabilities.includes(`create${suffix}` as Capability) && capabilities.includes(`update${suffix}` as Capability)) return 'createUpdate';
  return undefined;
}
