/**
 * The one catalogue of errors the API can answer. `reason` is the seed's
 * <reason> value (what partners switch on); `code` names the case for logs
 * and support. README.md's error table is checked against this list by
 * test/errors/catalogue.test.ts.
 */
export const REASONS = [
  'VALIDATION',
  'NOT_FOUND',
  'AUTHENTICATION',
  'FORBIDDEN',
  'CONFLICT',
  'RATE_LIMITED',
  'DATABASE',
  'UNAVAILABLE',
  'UNKNOWN',
] as const;
export type Reason = (typeof REASONS)[number];

export const ERROR_CATALOGUE = {
  INVALID_RECORD: { reason: 'VALIDATION', status: 400, summary: 'A field is missing, malformed or not allowed.' },
  MALFORMED_BODY: { reason: 'VALIDATION', status: 400, summary: 'The body is not well-formed XML/JSON, has the wrong root element, a DOCTYPE, or nests too deeply.' },
  UNKNOWN_REFERENCE: { reason: 'VALIDATION', status: 400, summary: 'leadInfo names a lead source or staff the hub does not know (provider policy `reject`).' },
  BODY_TOO_LARGE: { reason: 'VALIDATION', status: 413, summary: 'The body is larger than the configured limit.' },
  UNSUPPORTED_MEDIA_TYPE: { reason: 'VALIDATION', status: 415, summary: 'Content-Type is neither XML nor JSON.' },
  METHOD_NOT_ALLOWED: { reason: 'VALIDATION', status: 405, summary: 'The path exists but not with this HTTP method.' },
  NOT_ACCEPTABLE: { reason: 'VALIDATION', status: 406, summary: 'Accept asks for neither XML nor JSON.' },
  RECORD_NOT_FOUND: { reason: 'NOT_FOUND', status: 404, summary: 'No record with these IDs in this club.' },
  ROUTE_NOT_FOUND: { reason: 'NOT_FOUND', status: 404, summary: 'No such path.' },
  AUTHENTICATION_REQUIRED: { reason: 'AUTHENTICATION', status: 401, summary: 'Credentials are missing or wrong.' },
  FORBIDDEN: { reason: 'FORBIDDEN', status: 403, summary: 'The credentials are valid but not for this provider, client or club.' },
  STALE_UPDATE: { reason: 'CONFLICT', status: 409, summary: 'modifiedDate is older than the stored record: the update was not applied.' },
  RATE_LIMITED: { reason: 'RATE_LIMITED', status: 429, summary: 'The provider sends faster than its agreed rate; retry after Retry-After seconds.' },
  DATABASE: { reason: 'DATABASE', status: 500, summary: 'The database refused the operation.' },
  UNAVAILABLE: { reason: 'UNAVAILABLE', status: 503, summary: 'The hub cannot reach its database or is shutting down; retry later.' },
  UNKNOWN: { reason: 'UNKNOWN', status: 500, summary: 'An unexpected failure; support can look it up by errorUUID.' },
} as const satisfies Record<string, { reason: Reason; status: number; summary: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;
