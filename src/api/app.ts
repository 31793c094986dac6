import http from 'node:http';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { HubError } from '../errors/hub-error.ts';
import type { Logger } from '../log.ts';
import type { HubServices } from '../services/hub-services.ts';
import { adminRouter } from './admin-routes.ts';
import { authenticateAdmin, authenticateProvider } from './authentication.ts';
import { errorResponder } from './error-responder.ts';
import { RateLimiter } from './rate-limiter.ts';
import { leadSourceRoutes, userRoutes } from './record-routes.ts';

export const API_BASE = '/connector/api/2011-11';

/** Where the record routes register: paths below API_BASE, each behind the gate and authentication. */
export interface PartnerRoutes {
  get(path: string, handler: RequestHandler): void;
  post(path: string, handler: RequestHandler): void;
}

export interface AppOptions {
  services: HubServices;
  logger: Logger;
  bodyLimitBytes: number;
  adminToken: string | undefined;
  /** Answers /ready: true when the database answers. */
  isReady: () => Promise<boolean>;
  /** Set while shutting down: new partner calls get UNAVAILABLE. */
  isDraining?: () => boolean;
}

const ROUTES: Record<string, string[]> = {
  [`${API_BASE}/user`]: ['GET', 'POST'],
  [`${API_BASE}/staff`]: ['GET', 'POST'],
  [`${API_BASE}/leadsource`]: ['GET', 'POST'],
};

export function createApp(options: AppOptions): express.Express {
  const { services, logger } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/ready', async (_req, res) => {
    const ready = !options.isDraining?.() && (await options.isReady().catch(() => false));
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'unavailable' });
  });

  // Raw text for every content type: the codecs decide what it is, so a
  // wrong Content-Type gets a precise answer instead of an empty body.
  const body = express.text({ type: () => true, limit: options.bodyLimitBytes, defaultCharset: 'utf-8' });
  // Every partner call passes one gate first: not while draining, only the path's methods.
  const gate = (req: Request, _res: Response, next: NextFunction) => {
    if (options.isDraining?.()) throw new HubError('UNAVAILABLE', 'The hub is restarting; retry shortly', { retryAfter: 2 });
    const path = `${req.baseUrl}${req.path}`.replace(/\/$/, '');
    const allowed = ROUTES[path];
    if (allowed && !allowed.includes(req.method)) {
      throw new HubError('METHOD_NOT_ALLOWED', `${req.method} is not supported on ${path}; use ${allowed.join(' or ')}`, {
        headers: { Allow: allowed.join(', ') },
      });
    }
    next();
  };
  const authenticate = authenticateProvider(services.tenancy, new RateLimiter());
  // Each record route is one route of the app with the gate, authentication and the body reader in
  // front of its handler: no mounted router to enter and leave on every call.
  const partner: PartnerRoutes = {
    get: (path, handler) => void app.get(`${API_BASE}${path}`, gate, authenticate, handler),
    post: (path, handler) => void app.post(`${API_BASE}${path}`, gate, authenticate, body, handler),
  };
  userRoutes(partner, services.users, 'user');
  userRoutes(partner, services.users, 'staff');
  leadSourceRoutes(partner, services.leadSources);
  // Any other call under the API base: a method the path does not take (405), then credentials (401), then 404 below.
  app.use(API_BASE, gate, authenticate);

  app.use('/admin', authenticateAdmin(options.adminToken), express.json({ limit: options.bodyLimitBytes }), adminRouter(services.errors, services.deliveries));

  app.use((req: Request) => {
    throw new HubError('ROUTE_NOT_FOUND', `No such path: ${req.method} ${req.path}. Partner paths start with ${API_BASE}/ (user, staff, leadsource)`);
  });
  app.use(errorResponder(services.errors, logger));
  return app;
}

/**
 * The HTTP server for `app`, building each request and response with the
 * app's own prototypes. Express otherwise gives both their prototypes as
 * they enter the app (Object.setPrototypeOf), and V8 keeps objects
 * re-prototyped after they are built far longer than their request: under
 * a steady 1,000 saves/s the API promoted ~11 MB/s to the old generation,
 * ran a full collection every ~3 s (the requests queued behind each one
 * were the slowest 1%) and spent ~1.5 times the CPU time per request it
 * spends now. Built like this, Express finds the prototype in place and changes
 * nothing; the request and response behave as before (their prototypes
 * still lead to Express's).
 */
export function appServer(app: express.Express): http.Server {
  class AppRequest extends http.IncomingMessage {}
  class AppResponse<R extends http.IncomingMessage> extends http.ServerResponse<R> {}
  Object.setPrototypeOf(AppRequest.prototype, app.request);
  Object.setPrototypeOf(AppResponse.prototype, app.response);
  app.request = AppRequest.prototype as typeof app.request;
  app.response = AppResponse.prototype as typeof app.response;
  return http.createServer({ IncomingMessage: AppRequest, ServerResponse: AppResponse }, app);
}
