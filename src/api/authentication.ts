import { timingSafeEqual, createHash } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { HubError } from '../errors/hub-error.ts';
import type { Principal, TenancyService } from '../services/tenancy.ts';
import type { RateLimiter } from './rate-limiter.ts';

const CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="connector", Basic realm="connector", charset="UTF-8"' };

const unauthenticated = (message: string) => new HubError('AUTHENTICATION_REQUIRED', message, { headers: CHALLENGE });

/** Reads `Authorization: Bearer <token>` or `Basic <base64 user:password>`. */
function credentialsOf(req: Request): { token: string } | { username: string; password: string } | undefined {
  const header = req.headers.authorization;
  if (!header) return undefined;
  const [scheme, value = ''] = header.trim().split(/\s+/, 2);
  if (/^bearer$/i.test(scheme) && value) return { token: value };
  if (/^basic$/i.test(scheme) && value) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }
  return undefined;
}

/**
 * Every partner call is authenticated (seed 002 "Security": token and/or
 * username & password) and held to the provider's agreed rate.
 */
export function authenticateProvider(tenancy: TenancyService, limiter: RateLimiter) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const credentials = credentialsOf(req);
    if (!credentials) throw unauthenticated('This call needs credentials: Authorization: Bearer <token> or HTTP Basic');
    const principal =
      'token' in credentials
        ? await tenancy.authenticateToken(credentials.token)
        : await tenancy.authenticateBasic(credentials.username, credentials.password);
    if (!principal) throw unauthenticated('The credentials are not valid');
    res.locals.principal = principal;
    if (principal.rateLimitPerSecond) {
      const wait = limiter.take(principal.providerId, principal.rateLimitPerSecond);
      if (wait > 0) {
        throw new HubError('RATE_LIMITED', `Provider ${principal.code} may send ${principal.rateLimitPerSecond} requests per second; retry after ${wait} s`, {
          retryAfter: wait,
        });
      }
    }
    next();
  };
}

export function principalOf(res: Response): Principal {
  return res.locals.principal as Principal;
}

/** /admin is for operators and support: one bearer token from configuration. */
export function authenticateAdmin(adminToken: string | undefined) {
  const expected = adminToken ? createHash('sha256').update(adminToken).digest() : undefined;
  return (req: Request, _res: Response, next: NextFunction) => {
    const credentials = credentialsOf(req);
    if (!expected) throw unauthenticated('The admin API is disabled: CONNECTOR_ADMIN_TOKEN is not set');
    if (!credentials || !('token' in credentials)) throw unauthenticated('The admin API needs Authorization: Bearer <admin token>');
    const given = createHash('sha256').update(credentials.token).digest();
    if (!timingSafeEqual(given, expected)) throw unauthenticated('The admin token is not valid');
    next();
  };
}
