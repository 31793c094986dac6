import { PartnerError, type PartnerHttp, type PartnerRequest, type PartnerResponse } from '../../adapters/contract.ts';
import { IDEMPOTENCY_HEADER, SIGNATURE_HEADER, signBody } from '../../adapters/signature.ts';
import type { Connection } from '../turnup/turnup-schema.ts';
import { assertPublicUrl } from './network-guard.ts';

/** One partner call as the delivery history records it. */
export interface CallRecord {
  operation: string;
  status: number | undefined;
  durationMs: number;
}

/**
 * The HTTP client adapters call partners through: connection auth,
 * idempotency key, HMAC signature, timeout and private-network guard, and
 * every failure classified as a PartnerError (retryable or not).
 */
export class SignedPartnerHttp implements PartnerHttp {
  readonly calls: CallRecord[] = [];

  constructor(
    private readonly connection: Connection,
    private readonly idempotencyKey: string,
    private readonly timeoutMs: number,
  ) {}

  async send(request: PartnerRequest): Promise<PartnerResponse> {
    const base = this.connection.url.endsWith('/') ? this.connection.url.slice(0, -1) : this.connection.url;
    const url = new URL(base + request.path);
    if (!this.connection.allowPrivateNetwork) await assertPublicUrl(url);
    const body = request.body ?? '';
    const headers: Record<string, string> = {
      accept: 'application/json, application/xml;q=0.9',
      [IDEMPOTENCY_HEADER]: this.idempotencyKey,
      'user-agent': 'connector-hub',
    };
    if (request.body !== undefined) headers['content-type'] = request.contentType ?? 'application/json';
    if (this.connection.signingSecret) headers[SIGNATURE_HEADER] = signBody(this.connection.signingSecret, body);
    const auth = this.connection.auth;
    if (auth.type === 'basic') headers.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    if (auth.type === 'bearer') headers.authorization = `Bearer ${auth.token}`;
    if (auth.type === 'header') headers[auth.name.toLowerCase()] = auth.value;

    const started = performance.now();
    let response: Response;
    try {
      response = await fetch(url, { method: request.method, headers, body: request.body, signal: AbortSignal.timeout(this.timeoutMs), redirect: 'manual' });
    } catch (error) {
      this.calls.push({ operation: request.operation, status: undefined, durationMs: Math.round(performance.now() - started) });
      const timedOut = (error as Error).name === 'TimeoutError';
      const cause = (error as { cause?: { code?: string } }).cause?.code;
      throw new PartnerError(
        timedOut ? `${request.operation}: no answer within ${this.timeoutMs} ms` : `${request.operation}: cannot reach ${url.host} (${cause ?? (error as Error).message})`,
        { retryable: true, cause: error },
      );
    }
    const text = await response.text();
    this.calls.push({ operation: request.operation, status: response.status, durationMs: Math.round(performance.now() - started) });
    const responseHeaders = Object.fromEntries(response.headers.entries());
    if (response.status >= 200 && response.status < 300) {
      let json: unknown;
      if (text && /json/i.test(responseHeaders['content-type'] ?? '')) {
        try {
          json = JSON.parse(text);
        } catch {
          throw new PartnerError(`${request.operation}: the partner answered invalid JSON`, { retryable: false, status: response.status });
        }
      }
      return { status: response.status, headers: responseHeaders, body: text, json };
    }
    throw classifyFailure(request.operation, response.status, responseHeaders, text);
  }
}

/**
 * Which partner answers a retry can fix: rate limits, timeouts, conflicts
 * of the moment and server errors. Other 4xx (bad data, bad credentials,
 * unknown IDs) fail the same way every time: straight to dead-letter.
 */
export function classifyFailure(operation: string, status: number, headers: Record<string, string>, body: string): PartnerError {
  const retryAfter = parseRetryAfter(headers['retry-after']);
  const retryable = status === 408 || status === 425 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
  const snippet = body.length > 300 ? `${body.slice(0, 300)}…` : body;
  return new PartnerError(`${operation}: partner answered ${status}${snippet ? ` ${snippet}` : ''}`, { retryable, status, retryAfter });
}

export function parseRetryAfter(value: string | undefined): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}
