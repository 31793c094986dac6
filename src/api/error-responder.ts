import { randomUUID } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { HubError } from '../errors/hub-error.ts';
import type { Logger } from '../log.ts';
import type { ErrorLog } from '../services/error-log.ts';
import type { Principal } from '../services/tenancy.ts';
import { render } from '../wire/render.ts';
import { errorEnvelope } from '../wire/record-codec.ts';
import { CONTENT_TYPES, responseFormat } from './negotiation.ts';

/** Anything thrown -> a HubError. The one place foreign errors get a reason. */
export function toHubError(error: unknown): HubError {
  if (error instanceof HubError) return error;
  const e = error as { type?: string; status?: number; name?: string; code?: string; message?: string; cause?: unknown };
  const detail = `${e?.name ?? 'Error'}: ${e?.message ?? String(error)}`;
  // body-parser (Express) errors carry a `type`.
  if (e?.type === 'entity.too.large') return new HubError('BODY_TOO_LARGE', 'The request body is larger than this hub accepts', { detail });
  if (e?.type === 'charset.unsupported' || e?.type === 'encoding.unsupported') {
    return new HubError('UNSUPPORTED_MEDIA_TYPE', 'The request body uses a character set or encoding this hub does not read; send UTF-8', { detail });
  }
  if (e?.type === 'request.aborted' || e?.type === 'request.size.invalid') return new HubError('MALFORMED_BODY', 'The request body was cut short', { detail });
  if (isUnavailable(e)) {
    return new HubError('UNAVAILABLE', 'The hub cannot reach its database right now; retry shortly', { detail, retryAfter: 5 });
  }
  // A row another transaction holds past the lock timeout, or a deadlock or serialization failure: the next try works.
  if (['55P03', '40P01', '40001'].includes(e?.code ?? '')) {
    return new HubError('UNAVAILABLE', 'The record is being changed by another save right now; retry shortly', { detail, retryAfter: 1 });
  }
  // Prisma's errors (P1234) and PostgreSQL's own SQLSTATE codes (42P01, 23505, ...) from the plain-SQL paths.
  if (e?.name?.startsWith('PrismaClient') || e?.name === 'DriverAdapterError' || /^P\d{4}$/.test(e?.code ?? '') || /^[0-9A-Z]{5}$/.test(e?.code ?? '')) {
    return new HubError('DATABASE', 'The database refused the operation; support can look it up by errorUUID', { detail, cause: error });
  }
  return new HubError('UNKNOWN', 'Something unexpected went wrong; support can look it up by errorUUID', { detail, cause: error });
}

/** Whether `error` (or an error it was caused by) says the database could not be reached. */
function isUnavailable(error: unknown): boolean {
  const e = error as { name?: string; code?: string; message?: string; cause?: unknown } | undefined;
  if (!e) return false;
  if (e.name === 'PrismaClientInitializationError') return true;
  // P1001 can't reach server, P1017 server closed connection, P2024 pool timeout, P2028 transaction could not start.
  if (['P1001', 'P1002', 'P1017', 'P2024', 'P2028', 'ECONNREFUSED', 'ECONNRESET', '57P01', '57P03', '53300'].includes(e.code ?? '')) return true;
  // SQLSTATE class 08: connection exceptions.
  if (/^08[0-9A-Z]{3}$/.test(e.code ?? '')) return true;
  if (/ECONNREFUSED|ECONNRESET|Connection terminated|connection is closed|Can't reach database|Timed out fetching a new connection|timeout exceeded when trying to connect/i.test(e.message ?? '')) return true;
  return e.cause ? isUnavailable(e.cause) : false;
}

/**
 * Answers every failure with the seed's <error> envelope (or its JSON twin),
 * stores it by errorUUID with a redacted copy of the request, and logs it
 * with the same errorUUID. Stack traces stay in the log.
 */
export function errorResponder(errorLog: ErrorLog, logger: Logger) {
  return async (error: unknown, req: Request, res: Response, _next: NextFunction) => {
    const hubError = toHubError(error);
    const errorUUID = randomUUID();
    const principal = res.locals.principal as Principal | undefined;
    const provider = principal?.code;
    const level = hubError.status >= 500 ? 'error' : 'warn';
    logger[level](
      {
        errorUUID,
        reason: hubError.reason,
        code: hubError.code,
        status: hubError.status,
        provider,
        method: req.method,
        route: req.path,
        detail: hubError.detail,
        err: hubError.status >= 500 ? (hubError.cause ?? hubError) : undefined,
      },
      hubError.message,
    );
    const storing = errorLog
      .record(errorUUID, hubError, provider, {
        method: req.method,
        route: req.path,
        query: req.query as Record<string, unknown>,
        headers: req.headers,
        body: typeof req.body === 'string' ? req.body : undefined,
      })
      .catch((storeError: unknown) => logger.error({ errorUUID, err: storeError }, 'could not store the error record'));
    // Stored before the answer, so support finds it as soon as the partner has it; but not when the
    // database could not be reached: the record would wait for the pool (or the server) that just
    // made the request wait, and the partner would wait twice. It is stored once the database takes
    // it, and the log line above carries the same errorUUID meanwhile.
    if (!isUnavailable(error)) await storing;
    if (res.headersSent) return;
    const format = res.locals.responseFormat ?? responseFormat(req);
    res.status(hubError.status).set(hubError.headers).type(CONTENT_TYPES[format as 'xml' | 'json']);
    if (hubError.retryAfter) res.set('Retry-After', String(hubError.retryAfter));
    res.send(render(errorEnvelope(hubError.reason, errorUUID, hubError.message), format));
  };
}
