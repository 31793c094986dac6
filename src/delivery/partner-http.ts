import http from 'node:http';
import https from 'node:https';
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
    private readonly agent?: PartnerAgent,
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
    if (request.body !== undefined) {
      headers['content-type'] = request.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    if (this.connection.signingSecret) headers[SIGNATURE_HEADER] = signBody(this.connection.signingSecret, body);
    const auth = this.connection.auth;
    if (auth.type === 'basic') headers.authorization = `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    if (auth.type === 'bearer') headers.authorization = `Bearer ${auth.token}`;
    if (auth.type === 'header') headers[auth.name.toLowerCase()] = auth.value;

    const started = performance.now();
    const record = (status: number | undefined) =>
      this.calls.push({ operation: request.operation, status, durationMs: Math.round(performance.now() - started) });
    let answer: Answer;
    try {
      answer = await exchange({ url, method: request.method, headers, body: request.body, timeoutMs: this.timeoutMs, agent: this.agent });
    } catch (error) {
      record(undefined);
      const timedOut = (error as Error).name === 'TimeoutError';
      const code = (error as { code?: string }).code;
      // Too large an answer comes back the same every time: no retry, and say so.
      if ((error as Error).name === 'AnswerTooLarge') throw new PartnerError(`${request.operation}: ${(error as Error).message}`, { retryable: false, cause: error });
      throw new PartnerError(
        timedOut ? `${request.operation}: no answer within ${this.timeoutMs} ms` : `${request.operation}: cannot reach ${url.host} (${code ?? (error as Error).message})`,
        { retryable: true, cause: error },
      );
    }
    record(answer.status);
    if (answer.status >= 200 && answer.status < 300) {
      let json: unknown;
      if (answer.text && /json/i.test(answer.headers['content-type'] ?? '')) {
        try {
          json = JSON.parse(answer.text);
        } catch {
          throw new PartnerError(`${request.operation}: the partner answered invalid JSON`, { retryable: false, status: answer.status });
        }
      }
      return { status: answer.status, headers: answer.headers, body: answer.text, json };
    }
    throw classifyFailure(request.operation, answer.status, answer.headers, answer.text);
  }
}

/** Keep-alive sockets to one partner (node:http rather than fetch: a fraction of the CPU per call). */
export interface PartnerAgent {
  http: http.Agent;
  https: https.Agent;
  destroy(): void;
}

export function partnerAgent(conn: { settings: { concurrency: number } }): PartnerAgent {
  const options = { keepAlive: true, maxSockets: conn.settings.concurrency, maxFreeSockets: conn.settings.concurrency };
  const agents = { http: new http.Agent(options), https: new https.Agent(options) };
  return { ...agents, destroy: () => (agents.http.destroy(), agents.https.destroy()) };
}

/**
 * The largest partner answer read. Staff and lead-source lists are the
 * large ones: 50,000 staff with their fields are ~4 MB, so this leaves room
 * for a big club chain while a partner answering without end still cannot
 * exhaust the worker's memory.
 */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** One HTTP call to a partner, as sent. */
interface Exchange {
  url: URL;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
  timeoutMs: number;
  agent: PartnerAgent | undefined;
}

/** The partner's answer, its body read whole (up to MAX_ANSWER_BYTES). */
interface Answer {
  status: number;
  headers: Record<string, string>;
  text: string;
}

/**
 * A kept-alive socket the partner closed while idle fails on reuse with
 * ECONNRESET before the request reached it: that one is sent again at once
 * on a new socket, instead of costing an attempt (and tripping the breaker).
 */
async function exchange(call: Exchange): Promise<Answer> {
  try {
    return await exchangeOnce(call);
  } catch (error) {
    const stale = (error as { reusedSocket?: boolean; code?: string }).reusedSocket && ['ECONNRESET', 'EPIPE'].includes((error as { code?: string }).code ?? '');
    if (!stale) throw error;
    return exchangeOnce(call);
  }
}

function exchangeOnce({ url, method, headers, body, timeoutMs, agent }: Exchange): Promise<Answer> {
  const secure = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(url, { method, headers, agent: agent ? (secure ? agent.https : agent.http) : undefined });
    const timer = setTimeout(() => {
      const error = new Error(`no answer within ${timeoutMs} ms`);
      error.name = 'TimeoutError';
      req.destroy(error);
    }, timeoutMs);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(Object.assign(error, { reusedSocket: req.reusedSocket }));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_ANSWER_BYTES) {
          const error = new Error(`the partner's answer is larger than ${MAX_ANSWER_BYTES / 2 ** 20} MiB; the hub reads no more`);
          error.name = 'AnswerTooLarge';
          req.destroy(error);
        } else chunks.push(chunk);
      });
      res.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      res.on('end', () => {
        clearTimeout(timer);
        const flat: Record<string, string> = {};
        for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
        resolve({ status: res.statusCode ?? 0, headers: flat, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.end(body);
  });
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
